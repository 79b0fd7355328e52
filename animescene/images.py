"""Images in and out of the library: files and arrays <-> ``(B, 3, H, W)`` tensors in ``[-1, 1]``.

Everything at the API boundary is a float tensor, RGB, in ``[-1, 1]``. This module converts files and
NumPy arrays into that form and back, and holds the checks that turn a wrong shape, dtype or range into
an error that names the problem and the fix.

Reading a file (:func:`read_image`, :func:`read_animation`):

- the picture comes out as a viewer shows it: EXIF orientation applied, alpha composited over white,
  grayscale, palette, 16-bit and float files converted;
- float files (PIL mode ``F``, and 3- or 4-channel float TIFFs, read with OpenCV) hold [0, 1]; values
  above 1 (HDR highlights) are clipped to white and below 0 to black, as an 8-bit viewer shows them;
  NaN or infinite pixels are refused;
- every problem with the file (missing, corrupt, truncated, a decompression bomb that declares a huge
  image) raises :class:`ImageReadError` naming the file and the reason.

Writing a file (:func:`write_image`, :func:`write_animation`, and any writer through
:func:`atomic_output`) goes to a hidden temporary name in the target folder, renamed over the final
name only when complete: an error, a full disk or Ctrl-C never leaves a broken file under the final
name, nor the temporary file.
"""

from __future__ import annotations

import os
import secrets
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# formats that may hold several frames: read_animation reads them all, write_animation writes them back
ANIMATED_SUFFIXES = (".gif", ".webp", ".png")


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
    """Raise ``ValueError`` when ``x`` leaves ``[low, high]`` (the usual sign of a [0, 255] or [0, 1] image)
    or holds NaN or infinite values (which every comparison with a bound lets through)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has NaN or infinite values; check how it was computed or read")
    lo, hi = float(x.min()), float(x.max())
    if lo < low - slack or hi > high + slack:
        raise ValueError(
            f"{name} has values in [{lo:.3g}, {hi:.3g}] but must lie in [{low:g}, {high:g}]; "
            f"map uint8 images with animescene.images.to_tensor (x / 127.5 - 1)"
        )


def check_image_array(image) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 or [0, 255] float NumPy image, checked; raises naming the problem.

    The input check of every NumPy function of :mod:`animescene.segmentation`.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be an (H, W, 3) numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be uint8 or float with values in [0, 255], got {image.dtype}")
    low, high = float(image.min()), float(image.max())
    if not (low >= 0.0 and high <= 255.0):  # also catches NaN
        hint = " (a [0, 1] image? multiply it by 255)" if high <= 1.0 else ""
        raise ValueError(f"a float image must have values in [0, 255], got [{low:.3g}, {high:.3g}]{hint}")
    return image


def check_label_map(labels, shape: tuple[int, int] | None = None) -> int:
    """The number of regions of an ``(H, W)`` integer label map numbered ``0 .. n-1``; raises naming the problem."""
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        got = getattr(labels, "dtype", type(labels).__name__)
        raise TypeError(f"labels must be an integer numpy array, got {got}")
    if labels.ndim != 2 or (shape is not None and labels.shape != tuple(shape)):
        want = f"the image's {tuple(shape)}" if shape is not None else "(H, W)"
        raise ValueError(f"labels must have shape {want}, got {labels.shape}")
    if labels.size == 0:
        raise ValueError("labels is empty")
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}")
    counts = np.bincount(labels.ravel())
    if not counts.all():
        raise ValueError(
            f"labels must number the regions 0..n-1 without gaps; label {int(np.argmin(counts))} is unused "
            "(renumber with np.unique(labels, return_inverse=True)[1].reshape(labels.shape))"
        )
    return counts.size


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
    """Read an image file into a ``(1, 3, H, W)`` float32 tensor in [-1, 1], as a viewer shows it.

    EXIF orientation is applied; grayscale, RGBA, palette, 16-bit and float files are converted (see
    the module docstring and :func:`to_tensor`). Of an animated file this is the first frame (all frames:
    :func:`read_animation`). A missing, corrupt or truncated file, or one that declares a decompression
    bomb, raises :class:`ImageReadError` naming the file and the problem.
    """
    from PIL import ImageOps

    path = Path(path)
    try:
        with _opened(path) as img:
            return to_tensor(_pil_to_array(ImageOps.exif_transpose(img), path))
    except ImageReadError:
        if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
            raise
        # PIL reads 1-channel float TIFFs only; OpenCV reads the 3- and 4-channel ones
        return to_tensor(_read_tiff_with_opencv(path))


@dataclass
class Animation:
    """The frames of an animated GIF, WebP or PNG and what is needed to write them back.

    Attributes:
        frames: ``(H, W, 3|4)`` uint8 RGB(A) arrays, each the whole picture shown at that time.
        durations: how long each frame shows, in milliseconds.
        loop: how many times the animation repeats (0: forever), or None to play it once (a GIF
            without a loop extension).
    """

    frames: list[np.ndarray]
    durations: list[int]
    loop: int | None


def read_animation(path) -> Animation | None:
    """Every frame of an animated GIF, WebP or PNG file; None for a single frame or another format.

    Raises :class:`ImageReadError` as :func:`read_image` does.
    """
    path = Path(path)
    if path.suffix.lower() not in ANIMATED_SUFFIXES:
        return None
    with _opened(path) as img:
        if not getattr(img, "is_animated", False):
            return None
        loop = img.info.get("loop")
        frames, durations = [], []
        for index in range(img.n_frames):
            img.seek(index)  # GIF, WebP and APNG frames come out composited onto the whole canvas
            frames.append(np.asarray(img.convert("RGBA")))
            durations.append(int(img.info.get("duration", 0)))
    return Animation(frames, durations, loop)


@contextmanager
def _opened(path: Path):
    """A decoded PIL image of ``path``; any problem with the file (also while it is used) -> ImageReadError."""
    from PIL import Image

    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now, so a truncated file fails here and not later
                yield img
    # PIL reports a bad file with any of these; DecompressionBombError is a bare Exception subclass
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{path}: not a readable image ({err}); re-export or remove the file") from err


def _pil_to_array(img, path: Path) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(img, dtype=np.int64)
        return np.clip(array, 0, 65535).astype(np.uint16)
    if img.mode == "F":
        return _unit_float(np.asarray(img), path)
    if img.mode in ("RGB", "RGBA", "L"):
        return np.asarray(img)
    if img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def _read_tiff_with_opencv(path: Path) -> np.ndarray:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(f"{path}: not a readable image (neither PIL nor OpenCV can decode it); "
                             "re-export or remove the file")
    if array.ndim == 3:  # OpenCV holds BGR(A)
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return _unit_float(array, path) if np.issubdtype(array.dtype, np.floating) else array


def _unit_float(array: np.ndarray, path: Path) -> np.ndarray:
    """Float pixels, taken to be in [0, 1], clipped there (HDR highlights show white, as in a viewer)."""
    if not np.isfinite(array).all():
        raise ImageReadError(f"{path}: the image has NaN or infinite pixels; re-export it with finite values")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path`` to write to; it becomes ``path`` only when the block ends well.

    The temporary name is hidden and keeps the real suffix at the end (``.x.png.partial-1a2b3c4d.png``) so
    that encoders still pick the format from it. On success it is flushed to disk and renamed over
    ``path`` with :func:`os.replace` (atomic); on any exception, Ctrl-C included, it is deleted and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path, x: torch.Tensor) -> None:
    """Write a ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [-1, 1] to an image file (format from the suffix).

    Atomic (see :func:`atomic_output`): ``path`` holds the old file or the whole new one, never a part.
    """
    from PIL import Image

    _save_atomically(path, Image.fromarray(to_uint8(x)))


def write_animation(path, animation: Animation) -> None:
    """Write an animation (GIF, WebP or PNG, from the suffix) keeping its frame durations and loop count.

    Atomic, as :func:`write_image`.
    """
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in animation.frames]
    loop = {} if animation.loop is None else {"loop": animation.loop}
    _save_atomically(path, frames[0], save_all=True, append_images=frames[1:], duration=animation.durations,
                     **loop)


def _save_atomically(path, image, **options) -> None:
    """Encode ``image`` in memory, then write the bytes through :func:`atomic_output`.

    Not ``image.save(path)``: PIL's encoders write with unchecked ``write`` calls, so a full disk can
    leave a short file without an error; Python's file objects raise on it.
    """
    import io

    from PIL import Image

    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image format {path.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    encoded = io.BytesIO()
    image.save(encoded, format=image_format, **options)
    with atomic_output(path) as tmp:
        tmp.write_bytes(encoded.getbuffer())


def list_images(folder) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix), sorted by name; hidden files are left out
    (macOS ``._x.jpg`` companions, the temporary files of :func:`atomic_output`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
