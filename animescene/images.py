"""Images in and out of the library: files and arrays <-> ``(B, 3, H, W)`` tensors in ``[-1, 1]``.

Everything at the API boundary is a float tensor, RGB, in ``[-1, 1]``. This module converts files and
NumPy arrays into that form (grayscale, RGBA and 16-bit files included) and back, and holds the checks
that turn a wrong shape, dtype or range into an error that names the problem and the fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(ValueError):
    """A file that is not a readable image (missing, corrupt, truncated or of an unknown format)."""


def check_batch(x, name: str = "x", *, channels: int | tuple[int, ...] | None = None) -> None:
    """Raise a clear ``TypeError``/``ValueError`` unless ``x`` is a non-empty ``(B, C, H, W)`` float tensor.

    Args:
        x: the value to check.
        name: how the error message calls it.
        channels: the allowed channel count(s), or None for any.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got {x.dtype}; "
            f"convert uint8 images with animescene.images.to_tensor"
        )
    if x.ndim != 4:
        hint = " (add a batch dimension with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0); pass at least one image")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(x.shape[2:])}")
    if channels is not None:
        allowed = (channels,) if isinstance(channels, int) else tuple(channels)
        if x.shape[1] not in allowed:
            want = " or ".join(str(c) for c in allowed)
            raise ValueError(f"{name} must have {want} channels, got {x.shape[1]} (shape {tuple(x.shape)})")


def check_range(x: torch.Tensor, name: str = "x", low: float = -1.0, high: float = 1.0, slack: float = 1e-3):
    """Raise ``ValueError`` when ``x`` leaves ``[low, high]``: the usual sign of a [0, 255] or [0, 1] image."""
    lo, hi = float(x.min()), float(x.max())
    if lo < low - slack or hi > high + slack:
        raise ValueError(
            f"{name} has values in [{lo:.3g}, {hi:.3g}] but must lie in [{low:g}, {high:g}]; "
            f"map uint8 images with animescene.images.to_tensor (x / 127.5 - 1)"
        )


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of ``x`` against ``reference``, both in [-1, 1] (peak-to-peak 2).

    ``inf`` when they are equal. Any shapes that broadcast; computed in float64.
    """
    mse = float((x.double() - reference.double()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(4.0 / mse))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W)``, ``(H, W, 1|3|4)`` uint8/uint16/float array -> a ``(1, 3, H, W)`` float32 tensor in [-1, 1].

    Grayscale is repeated to RGB; an alpha channel is composited over white (what a viewer shows);
    uint16 is scaled by 65535 and float arrays are taken to be in [0, 1].
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be (H, W) or (H, W, 1|3|4), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {array.shape})")
    if array.dtype == np.uint8:
        unit = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        unit = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        unit = array.astype(np.float32)
        if unit.min() < -1e-3 or unit.max() > 1 + 1e-3:
            raise ValueError(
                f"a float image array must be in [0, 1], got [{unit.min():.3g}, {unit.max():.3g}]; "
                "pass uint8/uint16 arrays as they are"
            )
    else:
        raise TypeError(f"image arrays must be uint8, uint16 or float, got {array.dtype}")
    if unit.shape[2] == 4:
        rgb, alpha = unit[:, :, :3], unit[:, :, 3:]
        unit = rgb * alpha + (1.0 - alpha)
    elif unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    tensor = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)[None]
    return tensor * 2.0 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """A ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [-1, 1] -> an ``(H, W, 3)`` uint8 RGB array (clipped)."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {x.shape[0]}; index it first")
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"to_uint8 expects (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    array = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return array.permute(1, 2, 0).to(torch.uint8).numpy()


def read_image(path) -> torch.Tensor:
    """Read an image file into a ``(1, 3, H, W)`` float32 tensor in [-1, 1].

    Grayscale, RGBA, palette and 16-bit files are converted (see :func:`to_tensor`). A missing,
    corrupt or truncated file raises :class:`ImageReadError` naming the file and the problem.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now, so a truncated file fails here and not later
                array = _pil_to_array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{path}: not a readable image ({err}); re-export or remove the file") from err
    return to_tensor(array)


def _pil_to_array(img) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(img, dtype=np.int64)
        return np.clip(array, 0, 65535).astype(np.uint16)
    if img.mode in ("RGB", "RGBA", "L"):
        return np.asarray(img)
    if img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def write_image(path, x: torch.Tensor) -> None:
    """Write a ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [-1, 1] to an image file (format from the suffix)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(x)).save(path)


def list_images(folder) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
