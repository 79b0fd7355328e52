"""Lesson 07: reading the benchmark and cartoonizing large images."""

from __future__ import annotations

from .common import _report


def check_speedups(fn, table: dict[str, float]) -> None:
    """Lesson 07: ``fn(table)`` turns ``{backend: ms per frame}`` into ``{backend: (frames/s, speed-up)}``.

    The speed-up is relative to ``"eager fp32"``.
    """
    got = fn(table)
    base = table["eager fp32"]
    for name, ms in table.items():
        if name not in got:
            raise AssertionError(f"reading the benchmark: no entry for {name!r}")
        fps, speedup = got[name]
        if abs(fps - 1000.0 / ms) > 1e-6 * (1000.0 / ms) or abs(speedup - base / ms) > 1e-9 * (base / ms):
            raise AssertionError(
                f"reading the benchmark: {name}: expected ({1000 / ms:.3f} frames/s, {base / ms:.3f}x), got {got[name]}"
            )
    _report(True, "reading the benchmark")
