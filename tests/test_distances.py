"""Per-photo style and content distances and the paired bootstrap, against float64 re-implementations."""

import numpy as np
import pytest
import torch

from animescene.distances import compare_generators, content_distances, paired_bootstrap, style_distances
from animescene.features import HEDVGGFeatures


def test_style_distance_is_one_minus_the_nearest_cosine():
    rng = np.random.default_rng(0)
    cartoons, frames = rng.normal(size=(5, 7)), rng.normal(size=(9, 7))
    expected = []
    for a in cartoons:  # the definition, one pair at a time
        cosines = [float(a @ b) / (np.sqrt(a @ a) * np.sqrt(b @ b)) for b in frames]
        expected.append(1.0 - max(cosines))
    np.testing.assert_allclose(style_distances(cartoons, frames), expected, rtol=0, atol=1e-12)
    # a cartoon equal to a frame (up to its scale) is at distance 0
    assert style_distances(3.0 * frames[4:5], frames)[0] == pytest.approx(0.0, abs=1e-12)


def test_paired_bootstrap_of_a_constant_difference_is_that_difference():
    before = np.array([0.5, 0.7, 0.2, 0.9])
    mean, low, high = paired_bootstrap(before, before - 0.1, rounds=200)
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_paired_bootstrap_interval_matches_a_hand_resampling():
    rng = np.random.default_rng(3)
    before, after = rng.normal(1.0, 0.2, 30), rng.normal(0.9, 0.2, 30)
    mean, low, high = paired_bootstrap(before, after, rounds=4000, seed=5)
    diff = before - after
    assert mean == pytest.approx(diff.mean())
    # the interval of the mean is about mean +- 1.96 standard errors (normal approximation)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert low == pytest.approx(mean - 1.96 * se, abs=0.3 * se)
    assert high == pytest.approx(mean + 1.96 * se, abs=0.3 * se)
    # swapping the two generators mirrors the interval
    m2, l2, h2 = paired_bootstrap(after, before, rounds=4000, seed=5)
    assert (m2, l2, h2) == pytest.approx((-mean, -high, -low))
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap([1.0], [0.5])


@pytest.fixture(scope="module")
def extractor():
    return HEDVGGFeatures(weights=None)


def test_content_distance_against_a_per_position_loop(extractor):
    photos = torch.rand(2, 3, 32, 32) * 2 - 1
    cartoons = (photos + 0.3 * torch.randn_like(photos)).clamp(-1, 1)
    got = content_distances(cartoons, photos, extractor)
    maps_c = extractor.vgg(cartoons)[0].double().numpy()
    maps_p = extractor.vgg(photos)[0].double().numpy()
    for n in range(2):
        values = []
        for i in range(maps_c.shape[2]):
            for j in range(maps_c.shape[3]):
                a, b = maps_c[n, :, i, j], maps_p[n, :, i, j]
                values.append(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-24))
        assert got[n] == pytest.approx(np.mean(values), abs=1e-9)
    assert content_distances(photos, photos, extractor) == pytest.approx([0.0, 0.0], abs=1e-12)


def test_compare_generators_rows(extractor, small_generator):
    photos = torch.rand(3, 3, 32, 32) * 2 - 1
    frames = torch.rand(4, 3, 32, 32) * 2 - 1
    rows = compare_generators({"small": small_generator}, photos, frames, extractor)
    assert set(rows) == {"photo", "small"}
    assert rows["photo"]["content"].tolist() == [0.0, 0.0, 0.0]
    assert rows["small"]["style"].shape == (3,) and rows["small"]["cartoons"].shape == photos.shape
    # a frame used as a photo is at style distance 0 from the frames
    again = compare_generators({}, frames[:2], frames, extractor)
    assert again["photo"]["style"] == pytest.approx([0.0, 0.0], abs=1e-9)
