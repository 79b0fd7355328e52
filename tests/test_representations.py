"""The surface, texture and structure representations against hand-computed values and the NumPy pipeline."""

import concurrent.futures

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from animescene import representations as rep
from animescene.filters import guided_filter
from animescene.segmentation import structure_image


@pytest.fixture(scope="module")
def pool():
    with rep.StructurePool(workers=2) as pool:
        yield pool


def _photo(size):
    """skimage's astronaut resized to (size, size), as a (1, 3, size, size) tensor in [-1, 1]."""
    image = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1


def _tiny_batch(n=3, size=32):
    """A few small, different real images (crops of one photo)."""
    photo = _photo(4 * size)
    return torch.cat([photo[..., i * size : (i + 1) * size, i * size : (i + 1) * size] for i in range(n)])


def test_surface_is_the_self_guided_filter():
    x = torch.rand(2, 3, 24, 20) * 2 - 1
    torch.testing.assert_close(rep.surface(x), guided_filter(x, x, 5, 0.2), rtol=0, atol=0)


def test_color_shift_is_the_weighted_mean_of_rgb():
    x = torch.rand(2, 3, 5, 6) * 2 - 1
    weights = torch.tensor([[0.3, 0.6, 0.1], [0.2, 0.5, 0.2]])
    got = rep.color_shift(x, weights)
    for i, (wr, wg, wb) in enumerate(weights.tolist()):
        expected = (wr * x[i, 0] + wg * x[i, 1] + wb * x[i, 2]) / (wr + wg + wb)
        torch.testing.assert_close(got[i, 0], expected)
    assert got.shape == (2, 1, 5, 6)


def test_texture_draws_independent_weights_per_sample_in_range():
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    gray = rep.texture(image.expand(2, 3, 8, 8))
    assert not torch.allclose(gray[0], gray[1]), "two identical samples got the same gray image"
    weights = rep.sample_color_shift(10_000, torch.Generator().manual_seed(1))
    low, high = torch.tensor(rep.COLOR_SHIFT_RANGES).unbind(dim=1)
    assert (weights >= low).all() and (weights <= high).all()
    torch.testing.assert_close(weights.mean(0), (low + high) / 2, atol=3e-3, rtol=0)


def test_texture_with_a_seed_reproduces_and_uses_the_seeded_weights():
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    first = rep.texture(x, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, rep.texture(x, torch.Generator().manual_seed(7)), rtol=0, atol=0)
    weights = rep.sample_color_shift(3, torch.Generator().manual_seed(7))
    expected = (x * weights[:, :, None, None]).sum(1, keepdim=True) / weights.sum(1)[:, None, None, None]
    torch.testing.assert_close(first, expected)


def test_texture_gradient_is_the_normalised_weights():
    x = (torch.rand(2, 3, 4, 4) * 2 - 1).requires_grad_()
    weights = rep.sample_color_shift(2, torch.Generator().manual_seed(3))
    rep.texture(x, torch.Generator().manual_seed(3)).sum().backward()
    expected = (weights / weights.sum(1, keepdim=True))[:, :, None, None].expand_as(x)
    torch.testing.assert_close(x.grad, expected)


def test_texture_refuses_a_non_cpu_generator():
    class FakeGenerator:
        device = torch.device("meta")

    with pytest.raises(ValueError, match="CPU torch.Generator"):
        rep.sample_color_shift(2, FakeGenerator())


def test_structure_of_two_noisy_flat_halves_is_their_two_means():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3))
    image[:, :32] = (200, 60, 40)
    image[:, 32:] = (30, 90, 180)
    image = np.clip(image + rng.normal(0, 2, image.shape), 0, 255)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    for mu in (1.0, 1.2):
        out = rep.structure(x, segments=2, mu=mu)[0].permute(1, 2, 0).double().numpy()
        halves = [image[:, :32].reshape(-1, 3).mean(0), image[:, 32:].reshape(-1, 3).mean(0)]
        powered = [(m / 255) ** mu for m in halves]
        peak = max(p.max() for p in powered)
        expected = [p / peak * 2 - 1 for p in powered]
        np.testing.assert_allclose(out[:, :32], np.broadcast_to(expected[0], (64, 32, 3)), atol=1 / 255)
        np.testing.assert_allclose(out[:, 32:], np.broadcast_to(expected[1], (64, 32, 3)), atol=1 / 255)
        assert np.ptp(out[:, :32].reshape(-1, 3), axis=0).max() == 0, "left half not flat"
        assert np.ptp(out[:, 32:].reshape(-1, 3), axis=0).max() == 0, "right half not flat"


def test_structure_is_the_numpy_pipeline_per_image():
    x = torch.cat([_photo(64), -_photo(64)])
    out = rep.structure(x, segments=20)
    for i in range(2):
        image = ((x[i].permute(1, 2, 0) + 1) * 127.5).numpy()
        expected = structure_image(image, segments=20) / 127.5 - 1
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_structure_is_a_target_without_gradient_in_the_input_dtype():
    x = (_tiny_batch(2).double()).requires_grad_()
    out = rep.structure(x, segments=10)
    assert out.dtype == torch.float64 and not out.requires_grad
    assert out.device == x.device and out.shape == x.shape
    half = rep.structure(x.detach().half(), segments=10)
    assert half.dtype == torch.float16


def test_structure_slic_paints_mean_colours():
    x = _tiny_batch(1, size=48)
    out = rep.structure(x, segments=30, method="slic")
    image = ((x[0].permute(1, 2, 0) + 1) * 127.5).numpy()
    expected = structure_image(image, 30, "slic") / 127.5 - 1
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_structure_with_two_workers_equals_one_process():
    x = _tiny_batch(3)
    expected = rep.structure(x, segments=8)
    torch.testing.assert_close(rep.structure(x, segments=8, workers=2), expected, rtol=0, atol=0)


def test_pool_submit_is_asynchronous_and_copies_its_input(pool):
    x = _tiny_batch(3)
    expected = rep.structure(x, segments=8)
    pending = pool.submit(x, segments=8)
    assert isinstance(pending, concurrent.futures.Future)
    x.fill_(0)  # the caller may reuse its buffer once submit returns
    torch.testing.assert_close(pending.result(timeout=60), expected, rtol=0, atol=0)
    again = rep.structure(_tiny_batch(3), segments=8, workers=pool)
    torch.testing.assert_close(again, expected, rtol=0, atol=0)


def test_a_single_image_or_one_worker_starts_no_process(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(rep, "ProcessPoolExecutor", no_pool)
    x = _tiny_batch(2)
    rep.structure(x[:1], segments=8, workers=4)
    rep.structure(x, segments=8, workers=1)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.zeros(3, 8, 8), ValueError, r"\(B, C, H, W\)"),
        (torch.zeros(1, 4, 8, 8), ValueError, "must have 3 channels"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.full((1, 3, 8, 8), 255.0), ValueError, r"must lie in \[-1, 1\]"),
        (torch.zeros(0, 3, 8, 8), ValueError, "empty batch"),
        (np.zeros((1, 3, 8, 8), dtype=np.float32), TypeError, "torch.Tensor"),
    ],
)
def test_structure_rejects_bad_input_naming_the_problem(x, error, match):
    with pytest.raises(error, match=match):
        rep.structure(x)


@pytest.mark.parametrize("fn", [rep.surface, rep.texture])
def test_surface_and_texture_reject_bad_input(fn):
    with pytest.raises(ValueError, match="must have 3 channels"):
        fn(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "watershed"}, "method must be one of"),
        ({"segments": 0}, "segments must be an int >= 1"),
        ({"workers": 0}, "workers must be None, an int >= 1 or a StructurePool"),
        ({"gamma1": 50.0}, "gamma1 <= gamma2"),
        ({"mu": 0.0}, "mu must be > 0"),
    ],
)
def test_structure_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rep.structure(torch.zeros(2, 3, 8, 8), **kwargs)


def test_pool_refuses_fork():
    with pytest.raises(ValueError, match="start_method must be one of"):
        rep.StructurePool(2, start_method="fork")
