"""Where a run happens: the smoke switch, the device and what its CPU can do, and the folders the course reads.

Every heavy notebook cell and script asks this module, and only this module, whether it runs in smoke
mode (``ANIMESCENE_SMOKE=1``, set by the test suite): tiny images, a few steps, random-init VGG.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch

SMOKE_ENV = "ANIMESCENE_SMOKE"
HOME_ENV = "ANIMESCENE_HOME"
SHARED_ENV = "ANIMESCENE_SHARED_DATA"

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def smoke_mode() -> bool:
    """True when ``ANIMESCENE_SMOKE`` is set to anything but ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def pick(full, smoke):
    """Return ``smoke`` in smoke mode and ``full`` otherwise, e.g. ``steps = pick(2000, 3)``."""
    return smoke if smoke_mode() else full


def default_device() -> torch.device:
    """The GPU when there is one (CUDA, then Apple MPS), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` -> :func:`default_device`; any other name or ``torch.device`` -> that device, checked.

    Raises :class:`~animescene.errors.UsageError` for a malformed name or a device this machine lacks
    (``"cuda"`` without a GPU), instead of failing later inside the first tensor operation.
    """
    from .errors import UsageError

    if isinstance(device, str) and device == "auto":
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"device {str(device)!r} is not available: this machine has "
                         f"{torch.cuda.device_count()} CUDA GPU(s); use --device auto or cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' is not available on this machine; use --device auto or cpu")
    return device


def cpu_flags(cpuinfo="/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none: not Linux)."""
    try:
        with open(cpuinfo) as info:
            return frozenset(next(line for line in info if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return frozenset()


def native_bf16(device: torch.device) -> bool:
    """True where ``device`` computes bfloat16 natively, so that bf16 is faster than float32: a CUDA GPU
    that supports it, or a CPU with AVX-512 BF16 or AMX (on AVX2 CPUs bf16 is emulated and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cache_dir() -> Path:
    """Folder for downloaded and converted weights: ``$ANIMESCENE_HOME`` or ``~/.cache/animescene``."""
    home = os.environ.get(HOME_ENV)
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "animescene"
    return path


def torch_hub_checkpoint(url: str) -> Path:
    """Where torch hub caches the file at ``url``: ``<torch.hub.get_dir()>/checkpoints/<file name>``.

    torchvision's pretrained weights load from there (and are downloaded there when online), so this
    is the path an offline machine needs the file copied to.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def shared_data_dir() -> Path | None:
    """The course's local data folder (photos, frames, weights), or None where this machine has none.

    ``$ANIMESCENE_SHARED_DATA`` wins; otherwise ``../shared/data`` beside the project checkout.
    """
    env = os.environ.get(SHARED_ENV)
    candidates = [Path(env).expanduser()] if env else [_PROJECT_ROOT.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return None
