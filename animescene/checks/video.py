"""Lesson 09: the occlusion mask of temporal stability."""

from __future__ import annotations

from .common import _report


def check_occlusion_mask(fn) -> None:
    """Lesson 09: ``fn(backward, forward)`` is the forward-backward occlusion mask, a ``(H, W)`` bool array.

    Compared with :func:`animescene.temporal.occlusion_mask` on a hand-made case (a constant shift of
    2 px, confirmed, and leaving the frame on the right) and on smooth random flows with an occluded
    patch; a wrong answer is compared with the known slips (the forward flow read at ``p`` instead of
    ``p + b(p)``, ``b - f`` instead of ``b + f``, no check that ``p + b(p)`` is inside the frame).
    """
    import cv2
    import numpy as np

    from ..temporal import FB_ALPHA, FB_BETA, occlusion_mask, warp

    what = "forward-backward occlusion mask"
    rng = np.random.default_rng(9)
    shift = np.zeros((6, 8, 2), np.float32)
    shift[..., 0] = 2
    smooth = cv2.resize(rng.normal(0, 3, (4, 5, 2)).astype(np.float32), (40, 30), interpolation=cv2.INTER_CUBIC)
    occluded = -smooth
    occluded[10:20, 12:24] += 6  # a patch whose forward flow disagrees
    cases = [(smooth, occluded), (shift, -shift)]  # the slips differ on the first

    def slip_not_warped(b, f):
        return ((b + f) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (f**2).sum(-1)) + FB_BETA

    def slip_minus(b, f):
        there = warp(f, b)
        return ((b - there) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (there**2).sum(-1)) + FB_BETA

    def slip_no_border(b, f):
        there = warp(f, b)
        return ((b + there) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (there**2).sum(-1)) + FB_BETA

    faults = [("read the forward flow where the backward flow lands: f' = warp(forward, backward), not forward "
               "at p", slip_not_warped),
              ("a round trip adds the two flows: |b + f'|^2, not |b - f'|^2", slip_minus),
              ("a pixel whose p + b(p) leaves the frame has no match: mark it occluded too", slip_no_border)]
    for backward, forward in cases:
        got = np.asarray(fn(backward.copy(), forward.copy()))
        expected = occlusion_mask(backward, forward)
        if got.shape != expected.shape:
            raise AssertionError(f"{what}: expected shape {expected.shape}, got {got.shape}")
        if not np.array_equal(got.astype(bool), expected):
            hint = next((text for text, slip in faults if np.array_equal(got.astype(bool), slip(backward, forward))),
                        f"{int((got.astype(bool) != expected).sum())} of {expected.size} pixels differ from "
                        f"the reference")
            _report(False, what, hint)
    _report(True, what)
