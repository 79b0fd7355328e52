"""Checkers for the lessons' exercises: each runs the student's function on fresh inputs and compares it
with the library's own implementation, failing with a message that says what differs.

A checker prints one line when the exercise is right and raises ``AssertionError`` otherwise, so an
exercise cell goes green or red in the notebook (and in ``pytest --nbval``).
"""

from __future__ import annotations

import torch


def _report(ok: bool, what: str, detail: str = "") -> None:
    if not ok:
        raise AssertionError(f"{what}: not yet. {detail}".strip())
    print(f"✓ {what}: correct")


def _close(got, expected, atol: float, what: str) -> None:
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: return a torch.Tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    error = (got.detach().double() - expected.detach().double()).abs().max().item()
    _report(error <= atol, what, f"largest difference from the reference is {error:.3g} (allowed {atol:g})")


def check_box_filter(fn) -> None:
    """Lesson 01: ``fn(x, r)`` is the clipped-window mean (``animescene.filters.box_filter``)."""
    from .filters import box_filter

    generator = torch.Generator().manual_seed(11)
    for r in (1, 3):
        x = torch.rand(2, 3, 17, 23, generator=generator, dtype=torch.float64)
        _close(fn(x, r), box_filter(x, r), 1e-9, f"box filter, r={r}")


def check_guided_filter(fn) -> None:
    """Lesson 01: ``fn(guide, src, r, eps)`` is He et al.'s guided filter (``guided_filter``)."""
    from .filters import guided_filter

    generator = torch.Generator().manual_seed(12)
    guide = torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64)
    src = torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64)
    _close(fn(guide, src, 2, 0.05), guided_filter(guide, src, 2, 0.05), 1e-8, "guided filter")
    _close(fn(src, src, 5, 0.2), guided_filter(src, src, 5, 0.2), 1e-8, "guided filter as surface (r=5, eps=0.2)")


def check_adaptive_coloring(fn) -> None:
    """Lesson 02: ``fn(image, labels, gamma1, gamma2)`` gives each region's colour, an ``(n, 3)`` array.

    The test image has regions that fall in each branch (flat, textured, busy) and stds exactly at the
    thresholds.
    """
    import numpy as np

    from .segmentation import adaptive_region_colors, region_stds

    # Six regions of 50 pixels. In regions 0-4, 10 pixels are brighter than the other 40 by 2.5 * std:
    # the region's std is then exactly `std` (thresholds included) and its mean differs from its
    # median. Region 5 is random colours.
    rng = np.random.default_rng(18)
    labels = np.repeat(np.arange(6), 50).reshape(10, 30)
    stds = np.array([0.0, 5.0, 20.0, 30.0, 40.0, 0.0])
    bright = np.zeros((10, 30), dtype=bool)
    for region in range(6):
        bright.flat[region * 50 : region * 50 + 10] = True
    gray = np.round(rng.uniform(60, 150, size=6))
    image = np.repeat((gray[labels] + 2.5 * stds[labels] * bright)[:, :, None], 3, axis=2)
    image[labels == 5] = rng.uniform(0, 255, size=((labels == 5).sum(), 3))
    expected = adaptive_region_colors(image, labels, 20.0, 40.0)
    got = np.asarray(fn(image, labels, 20.0, 40.0), dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"adaptive colouring: expected an array of shape {expected.shape}, got {got.shape}")
    wrong = np.flatnonzero(np.abs(got - expected).max(axis=1) > 1e-6)
    _report(wrong.size == 0, "adaptive colouring",
            f"regions {wrong.tolist()} have the wrong colour (region stds: {np.round(region_stds(image, labels), 2).tolist()})")


def check_color_shift(fn) -> None:
    """Lesson 03: ``fn(x, weights)`` with ``weights`` ``(B, 3)`` (R, G, B) gives ``(B, 1, H, W)`` weighted gray."""
    generator = torch.Generator().manual_seed(13)
    x = torch.rand(3, 3, 8, 9, generator=generator) * 2 - 1
    weights = torch.rand(3, 3, generator=generator) + 0.1
    expected = (x * weights[:, :, None, None]).sum(1, keepdim=True) / weights.sum(1)[:, None, None, None]
    _close(fn(x, weights), expected, 1e-6, "random colour shift")


def check_lsgan_losses(d_loss_fn, g_loss_fn) -> None:
    """Lesson 04: the LSGAN discriminator and generator losses on logits."""
    from .losses import lsgan_d_loss, lsgan_g_loss

    generator = torch.Generator().manual_seed(14)
    real, fake = torch.randn(4, 1, 3, 3, generator=generator), torch.randn(4, 1, 3, 3, generator=generator)
    _close(d_loss_fn(real, fake), lsgan_d_loss(real, fake), 1e-6, "LSGAN discriminator loss")
    _close(g_loss_fn(fake), lsgan_g_loss(fake), 1e-6, "LSGAN generator loss")


def check_toy_gan(real: torch.Tensor, generated: torch.Tensor, modes: torch.Tensor) -> None:
    """Lesson 04: generated 2-D points cover every mode of the mixture, as the real points do.

    A mode counts as covered when at least 2% of the generated points fall nearer to it than to any
    other mode and within three times the mixture's spread.
    """
    spread = torch.cdist(real, modes).min(dim=1).values.median()
    distances = torch.cdist(generated, modes)
    nearest, which = distances.min(dim=1)
    close = nearest < 3 * spread + 1e-6
    shares = torch.stack([((which == m) & close).float().mean() for m in range(len(modes))])
    covered = int((shares >= 0.02).sum())
    _report(covered == len(modes), "toy GAN", f"it covers {covered} of {len(modes)} modes: train longer")


def check_content_loss(fn, vgg) -> None:
    """Lesson 05: ``fn(vgg, photo, fake)`` is White-box's content loss (``losses.content_loss``)."""
    from .losses import content_loss

    generator = torch.Generator().manual_seed(15)
    photo = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    fake = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    expected = content_loss(vgg, photo, fake)
    _close(fn(vgg, photo, fake), expected, 1e-4 * float(expected.abs()), "content loss")


def check_structure_loss(fn, vgg) -> None:
    """Lesson 05: ``fn(vgg, fake, fake_structure)`` is the structure loss (``losses.structure_loss``)."""
    from .losses import structure_loss

    generator = torch.Generator().manual_seed(16)
    fake = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    flat = torch.rand(2, 3, 1, 1, generator=generator).expand(2, 3, 32, 32) * 2 - 1
    expected = structure_loss(vgg, fake, flat)
    _close(fn(vgg, fake, flat), expected, 1e-4 * float(expected.abs()), "structure loss")


def check_weighted_loss(fn) -> None:
    """Lesson 06: ``fn(terms, betas)`` returns ``β1·tv + β2·surface + β3·structure + β4·texture + β5·content``."""
    from .losses import Betas, GeneratorLoss

    generator = torch.Generator().manual_seed(17)
    terms = {name: torch.rand((), generator=generator) for name in GeneratorLoss.TERMS}
    betas = Betas(tv=2.0, surface=0.5, structure=3.0, texture=0.25, content=7.0)
    expected = sum(getattr(betas, name) * terms[name] for name in GeneratorLoss.TERMS)
    _close(torch.as_tensor(fn(terms, betas)), expected, 1e-6, "weighted generator loss")


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


def check_frechet_distance(fn) -> None:
    """Lesson 08: ``fn(mu1, sigma1, mu2, sigma2)`` is the Fréchet distance of two Gaussians (a float).

    Checked on a hand-computed case (diagonal covariances, where the matrix square root is the square
    root of each entry) and on random full covariances against :func:`animescene.metrics.frechet_distance`.
    """
    import numpy as np

    from .metrics import frechet_distance

    # N(0, I) vs N(1, 4I) in 2-D: |mu1 - mu2|^2 = 2, and each axis adds 1 + 4 - 2 * sqrt(4) = 1
    cases = [(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2), 4.0)]
    rng = np.random.default_rng(8)
    for dim in (3, 16):
        a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
        mu1, mu2, sigma1, sigma2 = rng.normal(size=dim), rng.normal(size=dim), a @ a.T, b @ b.T
        cases.append((mu1, sigma1, mu2, sigma2, frechet_distance(mu1, sigma1, mu2, sigma2)))
    for mu1, sigma1, mu2, sigma2, expected in cases:
        got = fn(mu1, sigma1, mu2, sigma2)
        if np.ndim(got) != 0 or np.iscomplexobj(got):
            raise AssertionError(f"Fréchet distance: return one real number, got {got!r}")
        if abs(float(got) - expected) > 1e-6 * max(1.0, expected):
            _report(False, "Fréchet distance", f"for a {len(mu1)}-d pair expected {expected:.6g}, got {float(got):.6g}")
    _report(True, "Fréchet distance")
