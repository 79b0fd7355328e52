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
Images need at least ``MIN_SIDE`` (2) pixels on each side: the guided filter's 3x3 window must fit.

What :meth:`Cartoonizer.cartoonize_paths` (and ``animescene cartoonize``) promises:

- **Inputs are never modified.** Before any work, an output that would replace an input (the same
  path, or a hard link or symlink to it; ``-o`` equal to an input folder) is refused with a
  :class:`~animescene.errors.UsageError`, and so is ``-o`` naming an existing file or a folder that
  cannot be written to.
- **One output per input.** A file given directly is written as ``out/<name>``; a folder is walked
  recursively and its layout mirrored (``photos/trip/a.jpg`` -> ``out/trip/a.jpg``). The suffix is kept,
  so ``a.jpg`` and ``a.png`` give two outputs. Two inputs that would still share an output (the same
  relative path in two folders; names differing only in case, which collide on macOS and Windows) are
  refused up front, naming both. The same file listed twice (directly, through a folder, a symlink or
  a hard link) is cartoonized once; the repeat is reported as skipped. The ``-o`` folder, when it lies
  inside a walked folder, is not read.
- **Atomic outputs.** Every image, animation and video is written under a hidden temporary name in
  its target folder and renamed only when complete and checked (a video is re-opened: frame count,
  size and the video's and sound's durations), so an error, a full disk or Ctrl-C leaves no broken
  file under the final name and no temporary file. Finished outputs stay.
- **Nothing silently wrong.** EXIF orientation is applied, float images are read as [0, 1], animated
  GIF/WebP/PNG files keep every frame, their durations and loop count; a video that decodes fewer
  frames than its container declares is a failure. A generator that outputs NaN or infinity (diverged
  or corrupted weights) stops the batch with a UsageError naming the weights, as every file would fail.
- **Every input is accounted for**, in :class:`Report`: ``written``, ``failed`` (the reason; a bad
  file, even an unexpected error, never stops the others; Ctrl-C does) and ``skipped`` (files a folder
  walk left out: unsupported types, hidden files, broken symlinks, symlink loops, unreadable
  folders, repeats).
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .backends import make_runner
from .errors import UsageError
from .filters import POST_PROCESS_R, post_process
from .images import (
    IMAGE_SUFFIXES,
    ImageReadError,
    atomic_output,
    check_batch,
    check_range,
    read_animation,
    read_image,
    to_tensor,
    to_uint8,
    write_animation,
    write_image,
)
from .models import SIZE_MULTIPLE, UNetGenerator
from .runtime import resolve_device
from .temporal import TemporalStabilizer
from .video import DEFAULT_CRF, check_crf, transcode

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# An output pixel of the generator depends on input pixels up to 62 px away (measured from the
# gradient's support); tiles overlap by more than that, so tiling changes nothing.
TILE_MARGIN = 96
# the post-process's guided filter averages (2r+1)^2 windows clipped at the border: r must be < each side
MIN_SIDE = POST_PROCESS_R + 1

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What a batch run did: the files written and, for each failed or skipped input, the reason.

    ``failed`` inputs were asked for and could not be cartoonized (exit status 1); ``skipped`` ones were
    left out of a folder walk on purpose (unsupported type, hidden, broken symlink, ...) or listed twice.
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no input failed (skips do not count)."""
        return not self.failed


@dataclass
class Plan:
    """The work of a batch, decided and checked before any of it is done.

    ``jobs`` are ``(input, output)`` pairs with distinct outputs, none of which replaces an input;
    ``skipped`` and ``failed`` are the inputs left out, with the reason (see :class:`Report`).
    """

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


class Cartoonizer:
    """Photo -> cartoon with a :class:`UNetGenerator`.

    Args:
        weights: anything :meth:`~animescene.models.UNetGenerator.from_weights` takes: ``"official"``
            (White-box's weights, non-commercial licence), a file that carries its conventions (saved
            generator, training checkpoint, ``.tflite``, the official ``.pt``), or a ``UNetGenerator``.
        device: ``"auto"`` (the GPU when present), or any torch device.
        max_short_side: shrink inputs whose short side is longer (720 as in the reference); None keeps
            the full size (big images are then tiled). At least ``MIN_SIDE``.
        tile: the largest side the generator processes at once.
        dtype: the generator's compute dtype: ``torch.float32`` (default), ``torch.bfloat16`` or
            ``torch.float16`` (GPU). The guided filter always runs in float32.
        backend: what runs the generator (:mod:`animescene.backends`): ``"torch"`` (default, exact),
            ``"openvino-int8"`` or ``"onnxruntime-int8"`` (CPU, >= 40 dB PSNR against float32, several
            times faster), or ``"auto"``, the fastest one installed for ``device``. ``self.backend``
            names the one chosen.

    Example:
        >>> cartoonizer = Cartoonizer(UNetGenerator())
        >>> cartoonizer(torch.zeros(1, 3, 30, 50)).shape
        torch.Size([1, 3, 30, 50])
    """

    def __init__(self, weights="official", device="auto", max_short_side: int | None = 720, tile: int = 1024,
                 dtype: torch.dtype = torch.float32, backend: str = "torch"):
        if max_short_side is not None and not (isinstance(max_short_side, int) and max_short_side >= MIN_SIDE):
            raise UsageError(f"max_short_side (--max-short-side) must be at least {MIN_SIDE} px, got "
                             f"{max_short_side!r}; use None (0 on the command line) to keep the full size")
        if tile < 4 * TILE_MARGIN:  # smaller tiles would spend most of their work on the overlaps
            raise UsageError(f"tile must be at least {4 * TILE_MARGIN} px, got {tile}; use the default 1024")
        self.device = resolve_device(device)
        # how messages name the weights (a file path, "official", or the generator given)
        self.weights_name = "the given generator" if isinstance(weights, UNetGenerator) else str(weights)
        self.generator = UNetGenerator.from_weights(weights).eval().to(self.device)
        self.max_short_side, self.tile, self.dtype = max_short_side, tile, dtype
        if dtype != torch.float32 and backend not in ("torch", "auto"):  # "auto" then means torch in dtype
            raise UsageError(f"dtype {dtype} applies to backend 'torch' only; {backend!r} is int8 already: "
                             f"leave dtype at torch.float32 or use backend 'torch'")
        backend = "torch" if dtype != torch.float32 else backend
        self.backend, self._run_generator = make_runner(backend, self.generator, self.device)

    # ---------------------------------------------------------------------------------- tensors
    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in [-1, 1] -> cartoon of the same size, in [-1, 1], on ``x``'s device.

        Raises ``ValueError`` for an image under ``MIN_SIDE`` px on a side, and
        :class:`~animescene.errors.UsageError` when the generator outputs NaN or infinity (bad weights).
        """
        check_batch(x, "image", channels=3)
        check_range(x, "image")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"the image is {x.shape[-2]}x{x.shape[-1]} px; the cartoonizer needs at least "
                             f"{MIN_SIDE} px on each side (its guided filter has radius {POST_PROCESS_R}); "
                             f"upscale it first")
        photo = x.to(self.device, torch.float32)
        small, cartoon = self._checked_generate(photo)
        shrunk = small.shape[-2:] != photo.shape[-2:]
        return post_process(photo, cartoon, small if shrunk else None).to(x.device)

    def _checked_generate(self, photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The photo as the generator sees it (shrunk) and the generator's output, refused when not finite."""
        small = self._shrink(photo)
        cartoon = self._generate(small)
        if not bool(torch.isfinite(cartoon).all()):
            hint = "; or run the generator in float32 (no --bf16)" if self.dtype != torch.float32 else ""
            raise UsageError(f"the generator with weights {self.weights_name} outputs NaN or infinite values: the "
                             f"weights are diverged or corrupted; use an earlier checkpoint, re-download or "
                             f"retrain them{hint}")
        return small, cartoon

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
            out = self._run_generator(padded)
        return out.float()[..., :height, :width]


    # ------------------------------------------------------------------------------------ files
    def cartoonize_image(self, src, dst) -> Path:
        """Read ``src`` (any image the library reads), write the cartoon to ``dst`` (atomically).

        An animated GIF, WebP or PNG gives an animation of every frame cartoonized, in the format of
        ``dst``'s suffix, with the same frame durations and loop count.
        """
        animation = read_animation(src)
        if animation is None:
            write_image(dst, self(read_image(src)))
        else:
            animation.frames = [to_uint8(self(to_tensor(frame))) for frame in animation.frames]
            write_animation(dst, animation)
        return Path(dst)

    def cartoonize_video(self, src, dst, progress: bool = True, temporal: bool = True,
                         crf: int = DEFAULT_CRF) -> Path:
        """Cartoonize every frame of a video with :func:`animescene.video.transcode`: frame rate, time
        stamps, sound, subtitles and chapters kept, rotation applied, H.264 (VP9 for ``.webm``) at ``crf``.

        With ``temporal`` (the default) a :class:`~animescene.temporal.TemporalStabilizer` blends each
        generator output with the previous one warped along the optical flow, before the guided filter,
        which removes most of the flicker; ``temporal=False`` cartoonizes each frame on its own.

        The output is written atomically and re-opened to check its frames and durations. Raises
        :class:`ImageReadError` when ``src`` cannot be read or decodes fewer frames than its container
        declares (truncated or damaged) and ``OSError`` when writing fails or the result reads back
        incomplete (full disk, codec failure); ``dst`` is then left as it was.
        """
        stabilizer = TemporalStabilizer() if temporal else None

        @torch.no_grad()
        def cartoon_frame(rgb):
            photo = to_tensor(rgb).to(self.device)
            small, cartoon = self._checked_generate(photo)
            if stabilizer is not None:
                cartoon = stabilizer(small, cartoon)
            shrunk = small.shape[-2:] != photo.shape[-2:]
            return to_uint8(post_process(photo, cartoon, small if shrunk else None))

        src, dst = Path(src), Path(dst)
        with atomic_output(dst) as tmp:
            transcode(src, tmp, cartoon_frame, crf=crf, progress=progress, name=str(dst))
        return dst

    def cartoonize_paths(self, inputs, out_dir, progress: bool = True, temporal: bool = True,
                         crf: int = DEFAULT_CRF) -> Report:
        """Cartoonize files and folders (images, animations and videos) into ``out_dir``.

        Plans the whole batch first (:func:`plan_outputs`, which raises UsageError for an output that
        would replace an input, a collision or an unwritable ``out_dir``), then cartoonizes each input.
        A file that fails is reported with the reason and the batch goes on; a UsageError (weights that
        output NaN) or Ctrl-C stops it, keeping the outputs already finished. ``temporal`` and ``crf``
        apply to videos (see :meth:`cartoonize_video`).
        """
        from tqdm.auto import tqdm

        check_crf(crf)
        plan = plan_outputs(inputs, out_dir)
        report = Report(failed=list(plan.failed), skipped=list(plan.skipped))
        jobs = plan.jobs
        for src, dst in tqdm(jobs, desc="cartoonize", unit="file", disable=not progress or len(jobs) < 2):
            try:
                if src.suffix.lower() in VIDEO_SUFFIXES:
                    self.cartoonize_video(src, dst, progress=progress, temporal=temporal, crf=crf)
                else:
                    self.cartoonize_image(src, dst)
            except UsageError:
                raise
            except Exception as err:  # one bad file never stops the others (Ctrl-C is no Exception)
                report.failed.append((src, _reason(src, err)))
                continue
            report.written.append(dst)
        return report


def _reason(src: Path, err: Exception) -> str:
    """One line saying why ``src`` failed, without repeating its path."""
    text = str(err).removeprefix(f"{src}: ")
    if isinstance(err, (ValueError, OSError, RuntimeError, MemoryError)):  # bad files, disks, out of memory
        return text
    log.debug("unexpected error on %s", src, exc_info=err)
    return f"unexpected {type(err).__name__}: {text} (a bug: --debug shows the traceback; please report it)"


# --------------------------------------------------------------------------------------- planning
def plan_outputs(inputs, out_dir) -> Plan:
    """Decide the output of every input and check the batch, before any work (see the module docstring).

    Args:
        inputs: image, animation and video files and folders (walked recursively).
        out_dir: the folder to write into; created when missing.

    Raises:
        UsageError: ``out_dir`` is an existing file or cannot be written to; an output would replace an
            input; two inputs would share an output.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir} is an existing file; give a folder to write the cartoons into")
    out_real = out_dir.resolve()
    plan = Plan()
    first_listing: dict[tuple[int, int], Path] = {}  # (device, inode) -> the path a file was first listed as
    writer_of: dict[str, Path] = {}  # case-folded output -> its input
    for item in map(Path, inputs):
        if item.is_dir():
            if item.resolve() == out_real:
                raise UsageError(f"the output folder {out_dir} is the input folder {item}: the cartoons would "
                                 f"replace the photos; choose another -o, e.g. -o {item / 'cartoons'}")
            pairs = [(path, out_dir / relative) for path, relative in _walk(item, out_real, plan.skipped)]
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                plan.failed.append((item, f"unsupported file type {item.suffix or '(no suffix)'}; give images "
                                          f"({' '.join(IMAGE_SUFFIXES)}) or videos ({' '.join(VIDEO_SUFFIXES)})"))
                continue
            pairs = [(item, out_dir / item.name)]
        else:
            plan.failed.append((item, _missing_reason(item)))
            continue
        for src, dst in pairs:
            try:
                identity = _identity(src)
            except OSError as err:  # gone since the walk listed it
                plan.failed.append((src, err.strerror))
                continue
            if identity in first_listing:
                plan.skipped.append((src, f"the same file as {first_listing[identity]}, listed twice"))
                continue
            key = str(dst).casefold()
            if key in writer_of:
                raise UsageError(f"{writer_of[key]} and {src} would both be written to {dst}; cartoonize them "
                                 f"into different -o folders or rename one")
            first_listing[identity], writer_of[key] = src, src
            plan.jobs.append((src, dst))
    _refuse_replacing_inputs(plan.jobs, first_listing)
    if plan.jobs:
        _check_writable(out_dir)
    return plan


def _walk(folder: Path, out_real: Path, skipped: list) -> list[tuple[Path, Path]]:
    """The images and videos under ``folder`` (recursively, sorted), each with its path relative to it.

    Everything left out is added to ``skipped`` with the reason; ``out_real`` (the resolved output
    folder) is not entered. Symlinked folders are followed once: a loop or a second link is skipped.
    """
    found: list[tuple[Path, Path]] = []
    walked = {folder.resolve(): folder}

    def visit(current: Path, relative: Path) -> None:
        try:
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as err:
            if current == folder:
                raise
            skipped.append((current, f"unreadable folder ({err.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                skipped.append((path, "hidden"))
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
                if entry.is_symlink():
                    os.stat(path)  # a dangling link or a loop raises here
            except OSError as err:
                loop = err.errno == errno.ELOOP
                skipped.append((path, "symlink loop" if loop else f"broken symlink ({err.strerror})"))
                continue
            if is_dir:
                real = path.resolve()
                if real == out_real:
                    skipped.append((path, "the output folder (-o): not read as input"))
                elif real in walked:
                    skipped.append((path, f"symlink to the folder {walked[real]}, already walked"))
                else:
                    walked[real] = path
                    visit(path, relative / entry.name)
            elif not is_file:
                skipped.append((path, "not a regular file"))
            elif path.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                skipped.append((path, f"not an image or video ({path.suffix or 'no suffix'})"))
            else:
                found.append((path, relative / entry.name))

    try:
        visit(folder, Path())
    except OSError as err:
        raise UsageError(f"cannot read the folder {folder} ({err.strerror}); check its permissions") from err
    return found


def _missing_reason(path: Path) -> str:
    if path.is_symlink():
        return "broken symlink (its target is missing or it loops)"
    if path.exists():
        return "not a regular file or folder"
    return "no such file or folder"


def _identity(path: Path) -> tuple[int, int]:
    """What makes two paths one file (symlinks followed, hard links equal): device and inode."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _refuse_replacing_inputs(jobs: list[tuple[Path, Path]], inputs: dict[tuple[int, int], Path]) -> None:
    """UsageError when an output path is an input, resolves to one, or is a hard link or symlink to one."""
    by_real_path = {src.resolve(): src for src, _ in jobs}
    for _, dst in jobs:
        src = by_real_path.get(dst.resolve())
        if src is None and dst.exists():
            src = inputs.get(_identity(dst))
        if src is not None:
            raise UsageError(f"writing {dst} would replace the input {src}: inputs are never overwritten; "
                             f"choose an -o folder that holds none of the inputs")


def _check_writable(out_dir: Path) -> None:
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise UsageError(f"cannot write into the output folder {out_dir} ({err.strerror}); "
                         f"choose a folder you can write to with -o") from err
