"""Lesson 05: the content and structure losses."""

from __future__ import annotations

import torch

from .common import _close


def check_content_loss(fn, vgg) -> None:
    """Lesson 05: ``fn(vgg, photo, fake)`` is White-box's content loss (``losses.content_loss``)."""
    from ..losses import content_loss

    generator = torch.Generator().manual_seed(15)
    photo = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    fake = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    expected = content_loss(vgg, photo, fake)
    _close(fn(vgg, photo, fake), expected, 1e-4 * float(expected.abs()), "content loss")


def check_structure_loss(fn, vgg) -> None:
    """Lesson 05: ``fn(vgg, fake, fake_structure)`` is the structure loss (``losses.structure_loss``)."""
    from ..losses import structure_loss

    generator = torch.Generator().manual_seed(16)
    fake = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    flat = torch.rand(2, 3, 1, 1, generator=generator).expand(2, 3, 32, 32) * 2 - 1
    expected = structure_loss(vgg, fake, flat)
    _close(fn(vgg, fake, flat), expected, 1e-4 * float(expected.abs()), "structure loss")
