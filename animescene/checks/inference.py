"""Lesson 07: reading the benchmark and cartoonizing large images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import SIZE_MULTIPLE, UNetGenerator
from .common import _close, _report, _verdict_or


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


# The generator's receptive-field radius: an output pixel depends on input pixels up to 62 px away
# (lesson 04, section 7.3). A margin below it leaves seams.
RECEPTIVE_RADIUS = 62


def check_tiling(fn) -> None:
    """Lesson 07: ``fn(generator, x, tile, margin)`` runs ``generator`` on ``x`` of shape ``(B, 3, H, W)`` in
    overlapping tiles and returns ``(B, 3, H, W)``.

    Each piece covers a ``tile - 2 * margin`` centre plus ``margin`` px of context on every side (clipped
    at the image), is padded at the bottom/right to a multiple of 8 by repeating its edge pixels, goes
    through the generator, and only its centre is pasted. The result must equal the untiled output.
    The checker uses a narrow random ``UNetGenerator`` (same layers, so the same receptive field) and an
    image whose sides are multiples of neither 8 nor the tile; a wrong answer is compared with the
    outputs of known mistakes to name the likely one.
    """
    what = "tiling with margins"
    torch.manual_seed(0)
    generator = UNetGenerator(channels=8).eval()
    x = torch.rand(1, 3, 203, 301) * 2 - 1
    tile, margin = 256, 64
    original = x.clone()
    with torch.no_grad():
        expected = _padded_run(generator, x)
        try:
            got = fn(generator, x, tile, margin)
        except ValueError as err:
            if "multiples of 8" not in str(err):
                raise
            _report(False, what, "a tile reached the generator with a side that is not a multiple of 8: pad each "
                    "cut-out piece at the bottom/right (F.pad(..., mode='replicate')) and crop its output back")
    if not torch.equal(x, original):
        _report(False, what, "the input image was modified: cut the tiles with slicing and write into a new tensor")
    if isinstance(got, torch.Tensor) and got.dim() == 4 and got.shape[:2] == x.shape[:2] and \
            (got.shape[-2] > x.shape[-2] or got.shape[-1] > x.shape[-1]):
        _report(False, what, f"the output is {tuple(got.shape[-2:])}, larger than the image {tuple(x.shape[-2:])}: the "
                "margins were pasted too, so content appears twice; keep only each tile's centre")
    step = tile - 2 * margin
    faults = [
        (f"seams along the tile borders: a kept pixel sees only margin // 2 px of context, less than the generator's "
         f"receptive-field radius ({RECEPTIVE_RADIUS} px); cut each piece `margin` px beyond its centre on every side",
         lambda: _tiled(generator, x, tile, margin, context=margin // 2)),
        ("seams along the tile borders: the tiles do not overlap; cut each piece `margin` px beyond its centre on "
         f"every side (margin >= the receptive-field radius, {RECEPTIVE_RADIUS} px)",
         lambda: _tiled(generator, x, step, 0)),
        ("the content is shifted by the margin: crop the tile's output from (top - y0, left - x0), where (y0, x0) is "
         "the piece's corner, not from (0, 0)",
         lambda: _tiled(generator, x, tile, margin, crop_centre=False)),
        ("the last row or column of tiles is missing: loop `range(0, H, step)` up to the image edge and clip the "
         "last tile with min(..., H)",
         lambda: _tiled(generator, x, tile, margin, last=False)),
        ("the image edge differs: pad each piece by repeating its edge pixels (mode='replicate'), as the "
         "cartoonizer pads, not with zeros",
         lambda: _tiled(generator, x, tile, margin, pad_mode="constant")),
    ]
    if _verdict_or(what, got, expected, faults, atol=1e-6):
        return
    _close(got, expected, 1e-6, what)  # raises with the shape or the size of the error
    bad = (got.detach().double() - expected.double()).abs().amax(dim=(0, 1)) > 1e-6
    rows, cols = bad.nonzero(as_tuple=True)
    height, width = x.shape[-2:]
    last_top, last_left = (height - 1) // step * step, (width - 1) // step * step
    if bool(((rows >= last_top) | (cols >= last_left)).all()):
        _report(False, what, "only the last tile (the bottom/right edge of the image) is wrong: check the bounds of "
                "the last tile and of its paste (an off-by-one) and that it is padded by repeating edge pixels")
    if bool((_near_cut(rows, height, step) | _near_cut(cols, width, step)).all()):
        _report(False, what, f"the errors lie along the tile borders (seams): each kept pixel needs at least "
                f"{RECEPTIVE_RADIUS} px of context on every side in its piece")


def _near_cut(positions: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """``(N,)`` pixel positions -> ``(N,)`` bool: closer than the receptive-field radius to a cut between tiles."""
    cuts = torch.arange(step, size, step)
    if len(cuts) == 0:
        return torch.zeros_like(positions, dtype=torch.bool)
    return (positions[:, None] - cuts[None, :]).abs().amin(dim=1) < RECEPTIVE_RADIUS


def _padded_run(generator, x):
    """``generator`` on ``x`` of any size ``(B, 3, H, W)``: padded at the bottom/right to a multiple of 8."""
    return _pad_run_crop(generator, x, "replicate")


def _pad_run_crop(generator, x, pad_mode: str):
    height, width = x.shape[-2:]
    padded = F.pad(x, (0, -width % SIZE_MULTIPLE, 0, -height % SIZE_MULTIPLE), mode=pad_mode)
    return generator(padded)[..., :height, :width]


def _tiled(generator, x, tile: int, margin: int, *, context: int | None = None, crop_centre: bool = True,
           last: bool = True, pad_mode: str = "replicate"):
    """Tiling, right by default; each keyword gives one mistake of the exercise.

    ``context``: px cut beyond the centre (``margin`` when right); ``crop_centre=False`` pastes the piece's
    output from its corner; ``last=False`` drops the last row and column of tiles; ``pad_mode="constant"``
    pads with zeros.
    """
    context = margin if context is None else context
    height, width = x.shape[-2:]
    step = tile - 2 * margin
    out = torch.zeros_like(x)
    for top in range(0, height if last else height - step, step):
        for left in range(0, width if last else width - step, step):
            y0, x0 = max(top - context, 0), max(left - context, 0)
            y1, x1 = min(top + step + context, height), min(left + step + context, width)
            piece = _pad_run_crop(generator, x[..., y0:y1, x0:x1], pad_mode)
            bottom, right = min(top + step, height), min(left + step, width)
            dy, dx = (top - y0, left - x0) if crop_centre else (0, 0)
            out[..., top:bottom, left:right] = piece[..., dy : dy + bottom - top, dx : dx + right - left]
    return out
