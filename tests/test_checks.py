"""Every exercise checker accepts the library's own answer and rejects a plausible wrong one."""

import numpy as np
import pytest
import torch

from animescene import checks
from animescene.filters import box_filter, guided_filter
from animescene.losses import content_loss, feature_l1, lsgan_d_loss, lsgan_g_loss, structure_loss
from animescene.representations import color_shift
from animescene.segmentation import adaptive_region_colors
from animescene.vgg import VGGFeatures


def _rejects(call):
    with pytest.raises(AssertionError, match="not yet|expected|differs|entry"):
        call()


def test_box_filter_checker(capsys):
    checks.check_box_filter(box_filter)
    assert "✓" in capsys.readouterr().out
    _rejects(lambda: checks.check_box_filter(lambda x, r: box_filter(x, r, border="reflect")))


def test_guided_filter_checker():
    checks.check_guided_filter(guided_filter)
    _rejects(lambda: checks.check_guided_filter(lambda g, s, r, eps: guided_filter(g, s, r, eps * 2)))


def test_adaptive_coloring_checker():
    checks.check_adaptive_coloring(adaptive_region_colors)
    # the classic slip: a closed interval at the first threshold
    _rejects(lambda: checks.check_adaptive_coloring(lambda im, lab, g1, g2: adaptive_region_colors(im, lab, g1 + 1e-3, g2)))


def test_color_shift_checker():
    checks.check_color_shift(color_shift)
    _rejects(lambda: checks.check_color_shift(lambda x, w: x.mean(1, keepdim=True)))


def test_lsgan_checker():
    checks.check_lsgan_losses(lsgan_d_loss, lsgan_g_loss)
    _rejects(lambda: checks.check_lsgan_losses(lambda r, f: (r - 1).pow(2).mean() + f.pow(2).mean(), lsgan_g_loss))


def test_toy_gan_checker():
    modes = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, -2.0], [-2.0, 0.0]])
    real = modes.repeat(50, 1) + 0.05 * torch.randn(200, 2)
    checks.check_toy_gan(real, real.clone(), modes)
    collapsed = modes[:1].repeat(200, 1) + 0.05 * torch.randn(200, 2)
    _rejects(lambda: checks.check_toy_gan(real, collapsed, modes))


def test_perceptual_loss_checkers():
    vgg = VGGFeatures("vgg16", "conv2_2", weights=None)
    checks.check_content_loss(content_loss, vgg)
    checks.check_structure_loss(structure_loss, vgg)
    _rejects(lambda: checks.check_content_loss(lambda v, p, f: (v(f) - v(p)).abs().mean(), vgg))
    _rejects(lambda: checks.check_structure_loss(lambda v, f, s: feature_l1(v(f), v(f)), vgg))


def test_weighted_loss_checker():
    checks.check_weighted_loss(lambda terms, b: sum(getattr(b, k) * v for k, v in terms.items()))
    _rejects(lambda: checks.check_weighted_loss(lambda terms, b: sum(terms.values())))


def test_speedups_checker():
    table = {"eager fp32": 1700.0, "bf16": 500.0}
    checks.check_speedups(lambda t: {k: (1000 / v, t["eager fp32"] / v) for k, v in t.items()}, table)
    _rejects(lambda: checks.check_speedups(lambda t: {k: (1 / v, v / t["eager fp32"]) for k, v in t.items()}, table))
    _rejects(lambda: checks.check_speedups(lambda t: {}, table))


def test_frechet_distance_checker():
    from animescene.metrics import frechet_distance

    checks.check_frechet_distance(frechet_distance)
    # the classic slip: the square root of the trace instead of the trace of the square root
    _rejects(lambda: checks.check_frechet_distance(
        lambda m1, s1, m2, s2: float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2) - 2 * np.sqrt(np.trace(s1 @ s2)))))


def test_checkers_explain_shape_mistakes():
    with pytest.raises(AssertionError, match="shape"):
        checks.check_box_filter(lambda x, r: box_filter(x, r)[:, :1])
    with pytest.raises(AssertionError, match="shape"):
        checks.check_adaptive_coloring(lambda im, lab, g1, g2: np.zeros((2, 3)))
