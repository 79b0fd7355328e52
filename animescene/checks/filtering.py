"""Lesson 01: the box filter and the guided filter."""

from __future__ import annotations

import torch

from .common import _close


def check_box_filter(fn) -> None:
    """Lesson 01: ``fn(x, r)`` is the clipped-window mean (``animescene.filters.box_filter``)."""
    from ..filters import box_filter

    generator = torch.Generator().manual_seed(11)
    for r in (1, 3):
        x = torch.rand(2, 3, 17, 23, generator=generator, dtype=torch.float64)
        _close(fn(x, r), box_filter(x, r), 1e-9, f"box filter, r={r}")


def check_guided_filter(fn) -> None:
    """Lesson 01: ``fn(guide, src, r, eps)`` is He et al.'s guided filter (``guided_filter``)."""
    from ..filters import guided_filter

    generator = torch.Generator().manual_seed(12)
    guide = torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64)
    src = torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64)
    _close(fn(guide, src, 2, 0.05), guided_filter(guide, src, 2, 0.05), 1e-8, "guided filter")
    _close(fn(src, src, 5, 0.2), guided_filter(src, src, 5, 0.2), 1e-8, "guided filter as surface (r=5, eps=0.2)")
