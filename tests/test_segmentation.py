"""Superpixels, grouping and region colouring against loops, scikit-image and hand-built images."""

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.metrics
import skimage.segmentation

from animescene import segmentation as seg


@pytest.fixture(scope="module")
def astronaut():
    """A real photo, (256, 256, 3) uint8 RGB."""
    return cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def _gray_rows(rows):
    """An image whose row i holds the gray values rows[i] (all three channels), and labels = row index."""
    values = np.array(rows, dtype=np.float64)
    image = np.repeat(values[:, :, None], 3, axis=2)
    labels = np.repeat(np.arange(len(rows))[:, None], values.shape[1], axis=1)
    return image, labels


def test_felzenszwalb_agrees_with_skimage_and_keeps_min_size(astronaut):
    labels = seg.felzenszwalb(astronaut)
    reference = skimage.segmentation.felzenszwalb(astronaut / 255.0, scale=10, sigma=0.8, min_size=100)
    assert labels.shape == (256, 256)
    np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert np.bincount(labels.ravel()).min() >= 100  # min_size is honoured
    # the same algorithm: about as many regions as scikit-image's, and nearly the same partition
    # (variation of information well below that of SLIC regions of the same count)
    assert abs((labels.max() + 1) - (reference.max() + 1)) <= 0.1 * (reference.max() + 1)
    slic = seg.slic(astronaut, segments=reference.max() + 1)
    vi_ours = sum(skimage.metrics.variation_of_information(reference, labels))
    vi_slic = sum(skimage.metrics.variation_of_information(reference, slic))
    assert vi_ours < 0.7 * vi_slic, (vi_ours, vi_slic)


def test_felzenszwalb_takes_uint8_and_float_alike(astronaut):
    np.testing.assert_array_equal(seg.felzenszwalb(astronaut), seg.felzenszwalb(astronaut.astype(np.float32)))


def test_slic_labels_are_consecutive_and_near_the_target(astronaut):
    labels = seg.slic(astronaut, segments=100)
    count = labels.max() + 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(count))
    assert 50 <= count <= 150


def test_region_adjacency_equals_brute_force():
    labels = np.random.default_rng(0).integers(0, 6, size=(9, 11))
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    expected = set()
    for y in range(9):
        for x in range(11):
            for dy, dx in ((0, 1), (1, 0)):
                if y + dy < 9 and x + dx < 11 and labels[y, x] != labels[y + dy, x + dx]:
                    a, b = labels[y, x], labels[y + dy, x + dx]
                    expected.add((min(a, b), max(a, b)))
    assert [tuple(p) for p in seg.region_adjacency(labels).tolist()] == sorted(expected)


@pytest.mark.parametrize("segments", [50, 200])
def test_grouping_keeps_at_most_the_target_and_unions_starting_regions(astronaut, segments):
    start = seg.felzenszwalb(astronaut)
    grouped = seg.selective_search_grouping(astronaut, start, segments)
    count = grouped.max() + 1
    assert count == min(start.max() + 1, segments)
    np.testing.assert_array_equal(np.unique(grouped), np.arange(count))
    # every starting region lies inside one final region
    for region in range(start.max() + 1):
        assert np.unique(grouped[start == region]).size == 1


def test_region_features_are_sizes_boxes_and_normalised_histograms():
    """A pure red block beside a blue one: one colour bin per Lab channel, fixed edges, parts summing to 1."""
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[:, :2] = (255, 0, 0)  # Lab (53.2, 80.1, 67.2)
    image[:, 2:] = (0, 0, 255)
    labels = np.zeros((4, 6), dtype=np.intp)
    labels[:, 2:] = 1
    sizes, boxes, hists = seg.region_features(image, labels, 2)
    np.testing.assert_array_equal(sizes, [8, 16])
    np.testing.assert_array_equal(boxes, [[0, 0, 4, 2], [0, 2, 4, 6]])
    color, texture = hists[:, : 3 * seg.COLOR_BINS], hists[:, 3 * seg.COLOR_BINS :]
    np.testing.assert_allclose(color.sum(1), 1)
    np.testing.assert_allclose(texture.sum(1), 1)
    # L 53.2 of [0, 100], a 80.1 of [-86.2, 98.3], b 67.2 of [-107.9, 94.5] in 25 bins each
    np.testing.assert_array_equal(np.flatnonzero(color[0]), [13, 25 + 22, 50 + 21])
    np.testing.assert_allclose(color[0, [13, 47, 71]], 1 / 3)


def test_grouping_merges_the_most_similar_neighbours_first():
    """Four stripes: two near-identical reds, then two near-identical blues -> red | blue."""
    colors = [(200, 30, 30), (205, 35, 30), (30, 30, 200), (30, 35, 205)]
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    labels = np.zeros((40, 80), dtype=np.intp)
    for i, color in enumerate(colors):
        image[:, 20 * i : 20 * (i + 1)] = color
        labels[:, 20 * i : 20 * (i + 1)] = i
    grouped = seg.selective_search_grouping(image, labels, 2)
    assert grouped[0, 0] == grouped[0, 20] != grouped[0, 40] == grouped[0, 60]
    np.testing.assert_array_equal(grouped[:, :40], grouped[0, 0])
    np.testing.assert_array_equal(grouped[:, 40:], grouped[0, 40])


def test_grouping_at_or_above_the_region_count_changes_nothing(astronaut):
    start = seg.felzenszwalb(astronaut)
    np.testing.assert_array_equal(seg.selective_search_grouping(astronaut, start, start.max() + 1), start)


def test_structure_image_is_constant_inside_every_final_region(astronaut):
    labels = seg.selective_search_grouping(astronaut, seg.felzenszwalb(astronaut), 50)
    colored = seg.structure_image(astronaut, segments=50)
    expected = seg.contrast(seg.adaptive_coloring(astronaut, labels), 1.2)
    np.testing.assert_allclose(colored, expected, atol=1e-4)
    for region in range(labels.max() + 1):
        assert np.ptp(colored[labels == region], axis=0).max() == 0


def test_structure_image_slic_is_mean_colored_slic(astronaut):
    labels = seg.slic(astronaut, 100)
    np.testing.assert_allclose(
        seg.structure_image(astronaut, 100, method="slic"), seg.mean_coloring(astronaut, labels), atol=1e-4
    )


def test_region_statistics_equal_numpy_per_region(astronaut):
    image = astronaut.astype(np.float32) + np.random.default_rng(1).random(astronaut.shape, dtype=np.float32)
    image = np.clip(image, 0, 255)
    labels = seg.felzenszwalb(image)
    n = labels.max() + 1
    means, medians, stds = (f(image, labels) for f in (seg.region_means, seg.region_medians, seg.region_stds))
    colored = seg.mean_coloring(image, labels)
    for region in range(n):
        pixels = image[labels == region].astype(np.float64)
        total = np.zeros(3)
        for pixel in pixels:  # the float64 loop reference
            total += pixel
        np.testing.assert_allclose(means[region], total / len(pixels), rtol=1e-12)
        np.testing.assert_array_equal(medians[region], np.median(pixels, axis=0))
        np.testing.assert_allclose(stds[region], np.std(pixels), rtol=1e-10)
        np.testing.assert_allclose(colored[labels == region], np.tile(total / len(pixels), (len(pixels), 1)))


def test_region_medians_of_even_and_odd_sizes():
    image, labels = _gray_rows([[3, 1, 2, 9], [4, 4, 8, 6]])
    image[1, :, 2] = [7, 5, 5, 5]
    np.testing.assert_array_equal(seg.region_medians(image, labels), [[2.5, 2.5, 2.5], [5.0, 5.0, 5.0]])


@pytest.mark.parametrize(
    "values, branch, expected",
    [
        # deviations (-k, -k, -k, -k, +4k) from a mean of 100: std = 2k exactly, median = 100 - k
        ([95, 95, 95, 95, 120], "mean (std 10 < 20)", 100.0),
        ([90, 90, 90, 90, 140], "mix (std exactly 20)", 0.5 * 100 + 0.5 * 90),
        ([85, 85, 85, 85, 160], "mix (std 30)", 0.5 * 100 + 0.5 * 85),
        ([80, 80, 80, 80, 180], "median (std exactly 40)", 80.0),
        ([70, 70, 70, 70, 220], "median (std 60)", 70.0),
    ],
)
def test_adaptive_coloring_picks_mean_mix_or_median_by_std(values, branch, expected):
    image, labels = _gray_rows([values])
    out = seg.adaptive_coloring(image, labels, gamma1=20, gamma2=40)
    np.testing.assert_array_equal(out, np.full(image.shape, expected), err_msg=branch)


def test_adaptive_coloring_std_counts_all_channels_and_colors_per_channel():
    """Each channel nearly flat, but the std of all the region's values is 51.9 -> median per channel."""
    image = np.zeros((2, 3, 3))
    image[..., 0], image[..., 1], image[..., 2] = 50, 100, 150
    image[1, 2] = (60, 110, 250)  # one odd pixel pulls the mean, not the median
    labels = np.zeros((2, 3), dtype=np.intp)
    out = seg.adaptive_coloring(image, labels)
    np.testing.assert_array_equal(out, np.broadcast_to([50.0, 100.0, 150.0], image.shape))


def test_adaptive_coloring_of_uint8_equals_float():
    image = np.random.default_rng(2).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(6), 100).reshape(20, 30)
    np.testing.assert_allclose(
        seg.adaptive_coloring(image, labels), seg.adaptive_coloring(image.astype(np.float64), labels)
    )


def test_contrast_equals_the_reference_formula_on_unit_range():
    image = np.random.default_rng(3).random((8, 9, 3)) * 200
    x = image / 127.5 - 1  # the reference works on [-1, 1]
    x = ((x + 1) / 2) ** 1.2
    x = x / x.max()
    np.testing.assert_allclose(seg.contrast(image, 1.2), (x * 2 - 1 + 1) * 127.5, rtol=1e-12)
    np.testing.assert_array_equal(seg.contrast(np.zeros((2, 2, 3)), 1.2), np.zeros((2, 2, 3)))


def test_uniform_lbp_classes_of_a_peak_a_flat_and_an_edge():
    peak = np.zeros((3, 3, 1))
    peak[1, 1] = 1
    assert seg._uniform_lbp(peak)[1, 1, 0] == 0  # no neighbour as bright
    assert seg._uniform_lbp(np.ones((3, 3, 1)))[1, 1, 0] == 8  # every neighbour as bright
    step = np.zeros((3, 4, 1))
    step[:, 2:] = 1
    assert seg._uniform_lbp(step)[1, 2, 0] == 5  # bright side: 5 contiguous neighbours as bright
    noise = np.random.default_rng(4).random((20, 20, 1))
    assert set(np.unique(seg._uniform_lbp(noise))) <= set(range(10))


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((4, 4)), ValueError, r"\(H, W, 3\)"),
        (np.zeros((4, 4, 4)), ValueError, r"\(H, W, 3\)"),
        (np.zeros((0, 4, 3)), ValueError, "empty"),
        (np.zeros((4, 4, 3), dtype=np.int32), TypeError, "uint8 or float"),
        (np.full((4, 4, 3), 300.0), ValueError, r"\[0, 255\]"),
        (np.full((4, 4, 3), -0.5), ValueError, r"\[0, 255\]"),
        (np.full((4, 4, 3), np.nan), ValueError, r"\[0, 255\]"),
        ([[0, 0, 0]], TypeError, "numpy array"),
    ],
)
def test_bad_images_raise_naming_the_problem(image, error, match):
    with pytest.raises(error, match=match):
        seg.mean_coloring(image, np.zeros((4, 4), dtype=np.intp))


def test_bad_labels_and_arguments_raise_naming_the_problem():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="without gaps; label 1 is unused"):
        seg.mean_coloring(image, np.where(np.eye(4, dtype=bool), 2, 0))
    with pytest.raises(ValueError, match=r"the image's \(4, 4\)"):
        seg.mean_coloring(image, np.zeros((4, 5), dtype=np.intp))
    with pytest.raises(TypeError, match="integer"):
        seg.mean_coloring(image, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="segments must be an int >= 1"):
        seg.selective_search_grouping(image, np.zeros((4, 4), dtype=np.intp), 0)
    with pytest.raises(ValueError, match="gamma1 <= gamma2"):
        seg.adaptive_coloring(image, np.zeros((4, 4), dtype=np.intp), gamma1=50, gamma2=40)
    with pytest.raises(ValueError, match="method must be one of"):
        seg.structure_image(image, method="quickshift")
