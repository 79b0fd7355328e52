"""Cartoonize images, folders and videos with a trained generator (lesson 07).

``Cartoonizer`` does what White-box's ``cartoonize.py`` does, and keeps every pixel:

1. RGB in [-1, 1]; if the short side is above ``max_short_side`` (720), shrink with area averaging;
2. pad to a multiple of 8 (edge pixels repeated) and crop back after the generator;
3. ``guided_filter(x, G(x), r=1, eps=5e-3)``: the original's post-process, which restores the photo's
   edges in the generator's flat colours;
4. when step 1 shrank the image, the guided filter runs as a *fast guided filter*: its coefficients
   come from the small image and are applied to the full-size photo, so the output keeps the input's
   size and sharp edges (Deep Guided Filter, Wu et al. 2018).

Images bigger than ``tile`` pixels on a side go through the generator in overlapping tiles whose
margins exceed its receptive field, so memory stays bounded and the result equals the untiled one.

Bad files never stop a batch: :meth:`Cartoonizer.cartoonize_paths` writes every good file, reports
each bad one with the reason, and returns both lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .filters import post_process
from .images import IMAGE_SUFFIXES, ImageReadError, check_batch, check_range, read_image, write_image
from .models import SIZE_MULTIPLE, UNetGenerator, load_generator, load_official_whitebox
from .runtime import resolve_device

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# An output pixel of the generator depends on input pixels up to 60 px away (measured from the
# gradient's support); tiles overlap by more than that, so tiling changes nothing.
TILE_MARGIN = 96


@dataclass
class Report:
    """What a batch run did: the files written and, for each failure, the input and the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class Cartoonizer:
    """Photo -> cartoon with a :class:`UNetGenerator`.

    Args:
        weights: ``"official"`` (White-box's weights; see :func:`load_official_whitebox`), a path to a
            checkpoint or weights file written by this library, or a ``UNetGenerator``.
        device: ``"auto"`` (the GPU when present), or any torch device.
        max_short_side: shrink inputs whose short side is longer (720 as in the reference); None keeps
            the full size (big images are then tiled).
        tile: the largest side the generator processes at once.
        dtype: the generator's compute dtype: ``torch.float32`` (default), ``torch.bfloat16`` or
            ``torch.float16`` (GPU). The guided filter always runs in float32.

    Example:
        >>> cartoonizer = Cartoonizer(UNetGenerator())
        >>> cartoonizer(torch.zeros(1, 3, 30, 50)).shape
        torch.Size([1, 3, 30, 50])
    """

    def __init__(self, weights="official", device="auto", max_short_side: int | None = 720, tile: int = 1024,
                 dtype: torch.dtype = torch.float32):
        self.device = resolve_device(device)
        if isinstance(weights, UNetGenerator):
            model = weights
        elif weights == "official":
            model = load_official_whitebox()
        else:
            model = load_generator(weights)
        self.generator = model.eval().to(self.device)
        self.max_short_side, self.tile, self.dtype = max_short_side, tile, dtype
        if tile < 4 * TILE_MARGIN:  # smaller tiles would spend most of their work on the overlaps
            raise ValueError(f"tile must be at least {4 * TILE_MARGIN} px, got {tile}")

    # ---------------------------------------------------------------------------------- tensors
    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in [-1, 1] -> cartoon of the same size, in [-1, 1], on ``x``'s device."""
        check_batch(x, "image", channels=3)
        check_range(x, "image")
        device = x.device
        photo = x.to(self.device, torch.float32)
        small = self._shrink(photo)
        cartoon = self._generate(small)
        shrunk = small.shape[-2:] != photo.shape[-2:]
        return post_process(photo, cartoon, small if shrunk else None).to(device)

    def _shrink(self, x: torch.Tensor) -> torch.Tensor:
        short = min(x.shape[-2:])
        if self.max_short_side is None or short <= self.max_short_side:
            return x
        scale = self.max_short_side / short
        size = (max(round(x.shape[-2] * scale), 1), max(round(x.shape[-1] * scale), 1))
        return F.interpolate(x, size=size, mode="area")

    def _generate(self, x: torch.Tensor) -> torch.Tensor:
        """The generator on any size: padded to a multiple of 8 and cropped back; tiled when large."""
        height, width = x.shape[-2:]
        if max(height, width) <= self.tile:
            return self._generate_padded(x)
        out = torch.empty_like(x)
        step = self.tile - 2 * TILE_MARGIN
        for top in range(0, height, step):
            for left in range(0, width, step):
                y0, x0 = max(top - TILE_MARGIN, 0), max(left - TILE_MARGIN, 0)
                y1, x1 = min(top + step + TILE_MARGIN, height), min(left + step + TILE_MARGIN, width)
                tile = self._generate_padded(x[..., y0:y1, x0:x1])
                bottom, right = min(top + step, height), min(left + step, width)
                out[..., top:bottom, left:right] = tile[..., top - y0 : bottom - y0, left - x0 : right - x0]
        return out

    def _generate_padded(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.generator(padded)
        return out.float()[..., :height, :width]

    # ------------------------------------------------------------------------------------ files
    def cartoonize_image(self, src, dst) -> Path:
        """Read ``src`` (any image the library reads), write the cartoon to ``dst``."""
        cartoon = self(read_image(src))
        write_image(dst, cartoon)
        return Path(dst)

    def cartoonize_video(self, src, dst, progress: bool = True) -> Path:
        """Cartoonize every frame of a video; the output keeps the frame rate and frame size."""
        import cv2
        from tqdm.auto import tqdm

        from .images import to_tensor, to_uint8

        capture = cv2.VideoCapture(str(src))
        if not capture.isOpened():
            raise ImageReadError(f"{src}: OpenCV cannot open this video; check the file and its codec")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if dst.suffix.lower() == ".avi" else "mp4v"))
        writer = cv2.VideoWriter(str(dst), fourcc, fps, (width, height))
        if not writer.isOpened():
            capture.release()
            raise OSError(f"{dst}: OpenCV cannot write this video format; use .mp4 or .avi")
        written = 0
        try:
            with tqdm(total=frames, desc=Path(src).name, unit="frame", disable=not progress) as bar:
                while True:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    cartoon = self(to_tensor(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                    writer.write(cv2.cvtColor(to_uint8(cartoon), cv2.COLOR_RGB2BGR))
                    written += 1
                    bar.update(1)
        finally:
            capture.release()
            writer.release()
        if written == 0:
            dst.unlink(missing_ok=True)
            raise ImageReadError(f"{src}: no frame could be decoded")
        return dst

    def cartoonize_paths(self, inputs, out_dir, progress: bool = True) -> Report:
        """Cartoonize files and folders (images and videos) into ``out_dir``, keeping file names.

        A bad file is reported and skipped; everything else is still written.
        """
        from tqdm.auto import tqdm

        out_dir = Path(out_dir)
        report = Report()
        jobs = list(_expand(inputs, report))
        for path in tqdm(jobs, desc="cartoonize", unit="file", disable=not progress or len(jobs) < 2):
            target = out_dir / path.name
            try:
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    self.cartoonize_video(path, target, progress=progress)
                else:
                    self.cartoonize_image(path, target)
            except (ImageReadError, ValueError, OSError, RuntimeError) as err:
                report.failed.append((path, str(err)))
                continue
            report.written.append(target)
        return report


def _expand(inputs, report: Report):
    """Files of ``inputs`` (folders expanded to their images and videos, sorted); unknown paths reported."""
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    for item in map(Path, inputs):
        if item.is_dir():
            yield from sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        elif item.is_file():
            yield item
        else:
            report.failed.append((item, "no such file or folder"))
