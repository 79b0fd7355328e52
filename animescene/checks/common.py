"""What every checker shares: the verdict lines a student reads."""

from __future__ import annotations

import torch


def _report(ok: bool, what: str, detail: str = "") -> None:
    if not ok:
        raise AssertionError(f"{what}: not yet. {detail}".strip())
    print(f"✓ {what}: correct")


def _close(got, expected, atol: float, what: str) -> None:
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: return a torch.Tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    error = (got.detach().double() - expected.detach().double()).abs().max().item()
    _report(error <= atol, what, f"largest difference from the reference is {error:.3g} (allowed {atol:g})")


def _verdict_or(what: str, got: torch.Tensor, expected: torch.Tensor, faults, atol: float) -> bool:
    """True (and the ✓ line) when ``got`` matches ``expected``; else fail naming the first known fault that
    ``got`` matches, and return False when none does.

    ``faults``: ``(hint, compute)`` pairs, ``compute()`` giving what that mistake returns on the same inputs.
    ``atol`` grows with the compared values' size above 1 (a sum of float32 terms is far from 1).
    """
    def near(value) -> bool:
        value = torch.as_tensor(value).detach().double()
        if value.shape != got.shape:
            return False
        return (got.detach().double() - value).abs().max().item() <= atol * max(1.0, value.abs().max().item())

    if near(expected):
        _report(True, what)
        return True
    for hint, compute in faults:
        if near(compute()):
            _report(False, what, hint)
    return False


def _verdict(what: str, got, expected: torch.Tensor, faults, atol: float) -> None:
    """:func:`_verdict_or`, then a message with the shape or the largest difference when no fault matched."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: return a torch.Tensor, got {type(got).__name__}")
    if not _verdict_or(what, got, expected, faults, atol):
        _close(got, expected, atol, what)
