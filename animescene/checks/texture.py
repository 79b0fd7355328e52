"""Lesson 03: the colour shift and what the texture discriminator sees."""

from __future__ import annotations

import torch

from .common import _report, _verdict, _verdict_or


def check_sample_color_shift(fn) -> None:
    """Lesson 03: ``fn(batch_size, generator)`` draws the random colour shift's ``(batch_size, 3)`` weights.

    The library's :func:`~animescene.representations.sample_color_shift`: ``u = torch.rand(batch_size, 3,
    generator=generator)``, then ``low + (high - low) * u`` with each column's range of
    ``COLOR_SHIFT_RANGES`` (R, G, B). Compared from the same seed. A wrong answer is compared with the
    known slips (BGR order, one draw for the batch, the reference's ``mode="normal"``, ...), then checked
    for draws that ignore the generator, identical rows and values outside the ranges.
    """
    from ..representations import COLOR_SHIFT_RANGES, sample_color_shift

    what = "colour-shift weights"
    batch = 6
    low, high = torch.tensor(COLOR_SHIFT_RANGES).unbind(dim=1)

    def seeded():
        return torch.Generator().manual_seed(21)

    got = fn(batch, seeded())
    if not isinstance(got, torch.Tensor) or got.shape != (batch, 3):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(f"{what}: expected a ({batch}, 3) tensor for batch_size={batch}, got {shape}")
    if not torch.equal(got, fn(batch, seeded())):
        _report(False, what, "two generators with the same seed gave different weights: draw from `generator` "
                "(torch.rand(..., generator=generator)), not from the global random stream")
    luma = torch.tensor([0.299, 0.587, 0.114])
    faults = [
        ("your weights are in the reference's B, G, R order (it reads images with OpenCV): here the images "
         "are RGB and column 0 is w_R ~ U[0.199, 0.399]",
         lambda: low.flip(0) + (high - low).flip(0) * torch.rand(batch, 3, generator=seeded())),
        ("every row is the same: draw one row per sample, torch.rand(batch_size, 3, generator=generator)",
         lambda: (low + (high - low) * torch.rand(1, 3, generator=seeded())).expand(batch, 3)),
        ("you drew normal weights around the luma weights (the reference's mode='normal'); White-box "
         "trains with mode='uniform': w ~ U[low, high] per channel",
         lambda: luma + 0.1 * torch.randn(batch, 3, generator=seeded())),
        ("your weights are U[0, 1): map them to each channel's range, low + (high - low) * u",
         lambda: torch.rand(batch, 3, generator=seeded())),
        ("you scaled u by `high`: scale it by the range's width, low + (high - low) * u",
         lambda: low + high * torch.rand(batch, 3, generator=seeded())),
        ("draw torch.rand(batch_size, 3) (one row per sample): torch.rand(3, batch_size).T gives other "
         "numbers from the same seed",
         lambda: low + (high - low) * torch.rand(3, batch, generator=seeded()).T),
    ]
    if _verdict_or(what, got, sample_color_shift(batch, seeded()), faults, 1e-6):
        return
    if (got == got[0]).all():
        _report(False, what, "every row is the same: draw one row per sample")
    many = fn(4096, seeded())
    for c, channel in enumerate("RGB"):
        if many[:, c].min() < low[c] - 1e-6 or many[:, c].max() > high[c] + 1e-6:
            _report(False, what, f"w_{channel} takes values in [{many[:, c].min():.3f}, {many[:, c].max():.3f}], "
                    f"outside U[{low[c]:.3f}, {high[c]:.3f}] (normal draws, the reference's mode='normal', "
                    "leave the range: draw uniform ones)")
    _report(False, what, "your weights lie in the right ranges, but they are not the library's for this seed: "
            "draw u = torch.rand(batch_size, 3, generator=generator) in one call and map it, low + (high - low) * u")


def check_color_shift(fn) -> None:
    r"""Lesson 03: ``fn(x, weights)`` with ``weights`` ``(B, 3)`` (R, G, B) gives ``(B, 1, H, W)`` weighted gray.

    Compared with :math:`\sum_c w_{b,c} x_{b,c} / \sum_c w_{b,c}` written out here; a wrong answer is compared
    with the known slips (BGR order, unnormalised weights, one row for the batch, a plain mean, ...).
    """
    generator = torch.Generator().manual_seed(13)
    x = torch.rand(4, 3, 8, 9, generator=generator) * 2 - 1
    weights = torch.rand(4, 3, generator=generator) + 0.1
    shares = weights / weights.sum(1, keepdim=True)
    expected = (x * shares[:, :, None, None]).sum(1, keepdim=True)
    got = fn(x.clone(), weights.clone())
    if isinstance(got, torch.Tensor) and got.shape == expected.shape[:1] + expected.shape[2:]:
        _report(False, "random colour shift", f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}: "
                "keep the channel dimension (sum(dim=1, keepdim=True))")
    faults = [
        ("you weighted the channels in B, G, R order (the reference's images are BGR because OpenCV reads them "
         "so); here x and weights are both RGB: weights[:, 0] multiplies x[:, 0], the red channel",
         lambda: (x.flip(1) * shares[:, :, None, None]).sum(1, keepdim=True)),
        ("divide by each row's sum w_R + w_G + w_B: without it the gray image is brighter or darker than the "
         "photo", lambda: (x * weights[:, :, None, None]).sum(1, keepdim=True)),
        ("normalise each sample by its own row's sum, weights.sum(dim=1, keepdim=True), not by the sum of the "
         "whole tensor", lambda: (x * weights[:, :, None, None]).sum(1, keepdim=True) / weights.sum()),
        ("every sample used the weights of sample 0: row b of weights belongs to sample b",
         lambda: (x * shares[:1, :, None, None]).sum(1, keepdim=True)),
        ("you took the mean of the weighted channels, which divides by 3 once more: sum them",
         lambda: (x * shares[:, :, None, None]).mean(1, keepdim=True)),
        ("you averaged the channels: weight each by its share w_c / (w_R + w_G + w_B)",
         lambda: x.mean(1, keepdim=True)),
    ]
    _verdict("random colour shift", got, expected, faults, 1e-6)


def check_texture_batch(fn) -> None:
    """Lesson 03: ``fn(cartoon, fake, generator)`` is what the texture discriminator sees in its step.

    The ``(2B, 1, H, W)`` gray views of the cartoons, then of the *detached* fakes, every image with its
    own weights: ``color_shift(cat([cartoon, fake.detach()]), sample_color_shift(2B, generator))``, as in
    :func:`animescene.losses.discriminator_loss`. A wrong answer is compared with the known slips (fakes
    first, the reference's one set of weights for a cartoon and its fake, one set for the batch).
    """
    from ..representations import color_shift, sample_color_shift

    what = "texture discriminator's batch"
    generator = torch.Generator().manual_seed(22)
    batch = 3
    cartoon = torch.rand(batch, 3, 8, 9, generator=generator) * 2 - 1
    parameters = torch.randn(batch, 3, 8, 9, generator=generator).requires_grad_()
    fake = torch.tanh(parameters)  # like a generator's output, it carries the graph back to parameters

    def seeded():
        return torch.Generator().manual_seed(23)

    got = fn(cartoon.clone(), fake, seeded())
    if isinstance(got, torch.Tensor) and got.requires_grad:
        _report(False, what, "the gray batch still carries the generator's graph: use fake.detach(), so that "
                "the discriminator's step cannot change the generator")
    both = torch.cat([cartoon, fake.detach()])
    pair = sample_color_shift(batch, seeded())
    faults = [
        ("put the cartoons first, then the fakes (the discriminator's loss reads the first B logits as real)",
         lambda: color_shift(torch.cat([fake.detach(), cartoon]), sample_color_shift(2 * batch, seeded()))),
        ("cartoon b and fake b share one set of weights (as in the reference, which shifts both batches with "
         "one draw): draw one row per image, sample_color_shift(2 * B, generator)",
         lambda: color_shift(both, torch.cat([pair, pair]))),
        ("every image got the same weights: draw one row per image, sample_color_shift(2 * B, generator)",
         lambda: color_shift(both, sample_color_shift(1, seeded()).expand(2 * batch, 3))),
    ]
    _verdict(what, got, color_shift(both, sample_color_shift(2 * batch, seeded())), faults, 1e-6)
