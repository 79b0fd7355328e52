"""Lesson 02: selective-search grouping and adaptive colouring."""

from __future__ import annotations

import numpy as np

from .common import _report


def check_adaptive_coloring(fn) -> None:
    """Lesson 02: ``fn(image, labels, gamma1, gamma2)`` gives each region's colour, an ``(n, 3)`` array.

    The test image has regions that fall in each branch (flat, textured, busy) and stds exactly at the
    thresholds. A wrong answer is compared with the known slips (closed intervals at the thresholds,
    mean and median swapped, the std of each channel apart) and the one it matches is named.
    """
    from ..segmentation import adaptive_region_colors, region_means, region_medians, region_stds

    # Seven regions of 50 pixels. In regions 0-4 and 6, 10 pixels are brighter than the other 40 by
    # 2.5 * std: each channel's std is then exactly `std` (thresholds included) and the mean differs from
    # the median. Regions 0-4 are gray, so their std over all values is `std` too; region 5 is random
    # colours; region 6 is a saturated orange, whose std over all values (~74) is far above its channels'.
    rng = np.random.default_rng(18)
    labels = np.repeat(np.arange(7), 50).reshape(10, 35)
    stds = np.array([0.0, 5.0, 20.0, 30.0, 40.0, 0.0, 5.0])
    bright = np.zeros(labels.shape, dtype=bool)
    for region in range(7):
        bright.flat[region * 50 : region * 50 + 10] = True
    gray = np.round(rng.uniform(60, 150, size=7))
    gray[6] = 0.0
    image = np.repeat((gray[labels] + 2.5 * stds[labels] * bright)[:, :, None], 3, axis=2)
    image[labels == 5] = rng.uniform(0, 255, size=((labels == 5).sum(), 3))
    image[labels == 6] += (200.0, 90.0, 20.0)
    what = "adaptive colouring"
    expected = adaptive_region_colors(image, labels, 20.0, 40.0)
    got = np.asarray(fn(image.copy(), labels.copy(), 20.0, 40.0), dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected an array of shape {expected.shape}, got {got.shape}")
    if np.abs(got - expected).max() <= 1e-6:
        _report(True, what)
        return
    means, medians = region_means(image, labels), region_medians(image, labels)
    sigma = region_stds(image, labels)[:, None]
    per_channel = np.stack([image[labels == r].std(axis=0) for r in range(7)])

    def rule(s, low_closed=False, high_closed=False, smooth=means, busy=medians):
        below1 = s <= 20.0 if low_closed else s < 20.0
        below2 = s <= 40.0 if high_closed else s < 40.0
        return np.where(below1, smooth, np.where(below2, 0.5 * means + 0.5 * medians, busy))

    faults = [
        ("a region whose σ is exactly γ1 gets its mean: σ < γ1 is the mean branch, γ1 <= σ the mix", rule(sigma, True)),
        ("a region whose σ is exactly γ2 gets the mix: σ >= γ2 is the median branch", rule(sigma, False, True)),
        ("the regions at both thresholds are in the lower branch: the intervals are [0, γ1), [γ1, γ2), [γ2, ∞)",
         rule(sigma, True, True)),
        ("you swapped mean and median: smooth regions (σ < γ1) get their mean, busy ones (σ >= γ2) their median",
         rule(sigma, smooth=medians, busy=means)),
        ("you thresholded each channel's own std: σ is the std of all the region's values, the three channels "
         "together (segmentation.region_stds)", rule(per_channel)),
    ]
    for hint, colors in faults:
        if np.abs(got - colors).max() <= 1e-6:
            _report(False, what, hint)
    wrong = np.flatnonzero(np.abs(got - expected).max(axis=1) > 1e-6)
    _report(False, what, f"regions {wrong.tolist()} have the wrong colour (region stds: {np.round(sigma[:, 0], 2).tolist()})")


def check_region_similarity(fn) -> None:
    r"""Lesson 02: ``fn(ri, rj, area)`` is selective search's similarity of two regions (a float).

    A region is a dict: ``"size"`` (pixels), ``"box"`` ``(row0, col0, row1, col1)`` with exclusive stops, and
    ``"hist"``, its colour and texture histograms end to end, each part L1-normalised; ``area`` is the
    image's pixel count :math:`|I|`. Checked on every adjacent pair of :func:`_grouping_test_image`
    against a float64 re-implementation of ``selective_search_grouping``'s formula; a wrong answer is
    run against the known slips (each term's usual mistake) and the one it matches is named.
    """
    what = "region similarity"
    regions, pairs = _grouping_regions()
    area = sum(r["size"] for r in regions)
    got = []
    for i, j in pairs:
        value = fn(_copy_region(regions[i]), _copy_region(regions[j]), area)
        if np.ndim(value) != 0:
            raise AssertionError(f"{what}: return one number per pair, got {value!r}")
        got.append(float(value))
    got = np.array(got)

    def values(fault=None):
        return np.array([_similarity(regions[i], regions[j], area, fault) for i, j in pairs])

    expected = values()
    if np.abs(got - expected).max() <= 1e-9:
        _report(True, what)
        return
    for hint, fault in _SIMILARITY_FAULTS:
        if np.abs(got - values(fault)).max() <= 1e-9:
            _report(False, what, hint)
    worst = int(np.argmax(np.abs(got - expected)))
    i, j = pairs[worst]
    _report(False, what, f"for regions {i} and {j} (sizes {regions[i]['size']} and {regions[j]['size']}, boxes "
            f"{regions[i]['box']} and {regions[j]['box']}, image area {area}) expected {expected[worst]:.6f}, "
            f"got {got[worst]:.6f}: print the four terms one by one (each lies in [0, 1])")


def check_grouping(fn) -> None:
    """Lesson 02: ``fn(regions, pairs, segments)`` is selective search's hierarchical grouping.

    ``regions`` is a list of the starting regions (dicts as in :func:`check_region_similarity`), ``pairs``
    an ``(E, 2)`` array of the adjacent ones (``i < j``); ``fn`` returns, for each starting region, the
    number of the region it ends in (``(n,)`` ints, any numbering). The partition must equal
    :func:`animescene.segmentation.selective_search_grouping`'s on a small test image. A wrong one is
    compared with the partitions of the known faulty loops (stale similarities, unnormalised histograms,
    non-adjacent merges, off-by-one stops, ...) and the fault it matches is named; when none matches,
    ``fn`` is run again with fewer merges to find the first merge that differs.
    """
    from ..segmentation import selective_search_grouping

    what = "selective-search grouping"
    image, labels = _grouping_test_image()
    regions, pairs = _grouping_regions()
    segments = _GROUPING_SEGMENTS
    expected = _canonical(selective_search_grouping(image, labels, segments))
    got = _student_partition(fn, regions, pairs, segments, labels, what)
    if np.array_equal(got, expected):
        print(f"{len(regions)} starting regions grouped into {segments}, as the library groups them")
        _report(True, what)
        return
    for hint, fault in _GROUPING_FAULTS:
        if np.array_equal(got, _canonical(_grouping(regions, pairs, segments, fault)[labels])):
            _report(False, what, hint)
    count, n = int(got.max()) + 1, len(regions)
    if count != segments:
        _report(False, what, f"{n} starting regions with segments={segments} should end as {segments} regions, "
                f"yours end as {count}: merge until no more than `segments` are left")
    for merges in range(1, n - segments + 1):  # the first merge after which the partitions part
        mine = _student_partition(fn, regions, pairs, n - merges, labels, what)
        theirs = _canonical(_grouping(regions, pairs, n - merges)[labels])
        if not np.array_equal(mine, theirs):
            break
    joined = next((sorted(set(labels[theirs == r].tolist())) for r in range(theirs.max() + 1)
                   if len(set(mine[theirs == r].tolist())) > 1), None)
    should = f"it should join starting regions {joined} into one region" if joined else "it differs"
    _report(False, what, f"with segments={n - merges + 1} your grouping is right, with segments={n - merges} "
            f"(merge {merges}) {should}. Check the similarities of the newest region's pairs and that you merge "
            "the most similar pair still present")


def _student_partition(fn, regions, pairs, segments, labels, what) -> np.ndarray:
    """Run ``fn`` on copies of the inputs; its partition of ``labels`` with canonical numbers."""
    groups = np.asarray(fn([_copy_region(r) for r in regions], pairs.copy(), segments))
    if groups.shape != (len(regions),) or not np.issubdtype(groups.dtype, np.integer):
        raise AssertionError(f"{what}: return one integer per starting region, shape ({len(regions)},); "
                             f"got {groups.dtype} of shape {groups.shape}")
    return _canonical(groups[labels])


_GROUPING_SEGMENTS = 10


def _grouping_test_image() -> tuple[np.ndarray, np.ndarray]:
    """A small ``(30, 40, 3)`` uint8 image of 24 Voronoi cells and its label map ``(30, 40)``.

    Cells take colours from four families (so neighbours are often alike and texture, size and fill
    decide) and their own noise level. The seed was chosen so that every fault of
    :data:`_GROUPING_FAULTS` gives its own partition and the best two candidate pairs never tie within 1e-4.
    """
    rng = np.random.default_rng(35)
    height, width, count = 30, 40, 24
    seeds = rng.uniform(0, 1, size=(count, 2)) * (height, width)
    rows, cols = np.mgrid[0:height, 0:width]
    labels = ((rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2).argmin(axis=-1)
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    n = labels.max() + 1
    family = rng.uniform(40, 215, size=(4, 3))
    base = family[rng.integers(0, 4, size=n)] + rng.normal(0, 12, size=(n, 3))
    noise = rng.uniform(0, 20, size=n)
    image = base[labels] + noise[labels][:, :, None] * rng.standard_normal(labels.shape + (3,))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _grouping_regions() -> tuple[list[dict], np.ndarray]:
    """The test image's starting regions as the exercises take them, and its adjacent pairs ``(E, 2)``."""
    from ..segmentation import region_adjacency, region_features

    image, labels = _grouping_test_image()
    sizes, boxes, hists = region_features(image, labels, labels.max() + 1)
    regions = [{"size": int(s), "box": tuple(int(v) for v in b), "hist": h} for s, b, h in zip(sizes, boxes, hists)]
    return regions, region_adjacency(labels)


def _copy_region(region: dict) -> dict:
    return {"size": region["size"], "box": region["box"], "hist": region["hist"].copy()}


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Renumber a label map by first appearance, so that two partitions compare equal whatever their numbers."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].reshape(labels.shape)


def _similarity(ri: dict, rj: dict, area: float, fault: str | None = None) -> float:
    """Selective search's colour + texture + size + fill similarity, with one known slip switched on."""
    combine = {"max": np.maximum, "product": np.multiply}.get(fault, np.minimum)
    histogram = float(combine(ri["hist"], rj["hist"]).sum())
    both = ri["size"] + rj["size"]
    size = both / area if fault == "size sign" else 1.0 - both / area
    (top_i, left_i, bottom_i, right_i), (top_j, left_j, bottom_j, right_j) = ri["box"], rj["box"]
    extra = 1 if fault == "inclusive box" else 0
    box = ((max(bottom_i, bottom_j) - min(top_i, top_j) + extra)
           * (max(right_i, right_j) - min(left_i, left_j) + extra))
    if fault == "two boxes":
        box = (bottom_i - top_i) * (right_i - left_i) + (bottom_j - top_j) * (right_j - left_j)
    fill = 1.0 - box / area if fault == "fill without sizes" else 1.0 - (box - both) / area
    terms = {"histogram": histogram, "size": size, "fill": fill}
    terms.pop({"no size": "size", "no fill": "fill"}.get(fault), None)
    return sum(terms.values())


_SIMILARITY_FAULTS = [
    ("your size term has the wrong sign: s_size = 1 - (|ri| + |rj|) / |I|, so that small regions merge first",
     "size sign"),
    ("your similarity has no size term: add s_size = 1 - (|ri| + |rj|) / |I|", "no size"),
    ("your similarity has no fill term: add s_fill = 1 - (|B_ij| - |ri| - |rj|) / |I|", "no fill"),
    ("your fill term forgets the regions: s_fill = 1 - (|B_ij| - |ri| - |rj|) / |I|, the joint box's area "
     "minus what the two regions cover of it", "fill without sizes"),
    ("your fill term adds the two boxes' areas: B_ij is the one box around both regions (min of the starts, "
     "max of the stops)", "two boxes"),
    ("your box area counts one row and one column too many: the stops are exclusive, so a box's area is "
     "(row1 - row0) * (col1 - col0)", "inclusive box"),
    ("your histogram term takes the bin-wise maximum: the intersection is the sum of the bin-wise minimum, "
     "np.minimum(hi, hj).sum()", "max"),
    ("your histogram term multiplies the bins: the intersection is the sum of the bin-wise minimum, "
     "np.minimum(hi, hj).sum()", "product"),
]


def _merged_region(ri: dict, rj: dict, fault: str | None = None) -> dict:
    """The region of ``ri`` and ``rj`` together: sizes add, boxes join, histograms average by size."""
    size = ri["size"] + rj["size"]
    box = (*np.minimum(ri["box"][:2], rj["box"][:2]).tolist(), *np.maximum(ri["box"][2:], rj["box"][2:]).tolist())
    hist = (ri["size"] * ri["hist"] + rj["size"] * rj["hist"]) / size
    if fault == "summed histograms":
        hist = ri["hist"] + rj["hist"]
    elif fault == "plain mean":
        hist = (ri["hist"] + rj["hist"]) / 2
    elif fault == "one box":
        box = ri["box"]
    return {"size": size, "box": tuple(box), "hist": hist}


def _grouping(regions: list[dict], pairs: np.ndarray, segments: int, fault: str | None = None) -> np.ndarray:
    """Hierarchical grouping written plainly, with one known fault switched on: ``(n,)`` final region of each.

    Without a fault it gives ``selective_search_grouping``'s partition (the tests compare them).
    """
    n = len(regions)
    area = sum(r["size"] for r in regions)
    regions = list(regions)
    if fault == "non-adjacent":
        pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    neighbours = {i: set() for i in range(n)}
    for i, j in pairs.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    scores = {(i, j): _similarity(regions[i], regions[j], area) for i, j in pairs.tolist()}
    owner = list(range(n))  # the current region of each starting region
    stop = segments + {"one merge too many": -1, "one merge too few": 1}.get(fault, 0)
    left = n
    while (len(scores) if fault == "counts pairs" else left) > stop and scores:
        i, j = (min if fault == "least similar" else max)(scores, key=scores.get)
        new = len(regions)
        regions.append(_merged_region(regions[i], regions[j], fault))
        if fault != "stale pairs kept":
            scores = {pair: s for pair, s in scores.items() if i not in pair and j not in pair}
        around = (neighbours[i] if fault == "neighbours of one" else neighbours[i] | neighbours[j]) - {i, j}
        for k in around:
            neighbours[k] -= {i, j}
            neighbours[k].add(new)
            if fault != "not rescored":
                scores[(k, new)] = _similarity(regions[k], regions[new], area)
        neighbours[new] = around
        owner = [new if o in (i, j) else o for o in owner]
        left -= 1
    return np.unique(owner, return_inverse=True)[1]


_GROUPING_FAULTS = [
    ("your merged regions never merge again: after each merge, compute the similarity of the new region with "
     "each of its neighbours (those of both parts) and add those pairs", "not rescored"),
    ("your new region has only the neighbours of one of its parts: its neighbours are those of both, "
     "(neighbours[i] | neighbours[j]) - {i, j}", "neighbours of one"),
    ("your loop still merges pairs whose regions were already merged away: after merging i and j, drop every "
     "pair that contains i or j", "stale pairs kept"),
    ("your merged histograms are not normalised: hist_i + hist_j sums to 2 per part. Take the size-weighted "
     "mean (|ri| hist_i + |rj| hist_j) / (|ri| + |rj|)", "summed histograms"),
    ("your merged histogram is the plain mean of the two: weight each by its region's size, "
     "(|ri| hist_i + |rj| hist_j) / (|ri| + |rj|)", "plain mean"),
    ("your merged region keeps one part's box: its box is the union, (min row0, min col0, max row1, max col1)",
     "one box"),
    ("you merged regions that do not touch: the candidates are the pairs in `pairs` and then the new "
     "region's neighbours", "non-adjacent"),
    ("you merged the least similar pair first: take the pair with the highest similarity", "least similar"),
    ("your loop stops when the number of adjacent *pairs* reaches `segments`, as White-box's code does "
     "(len(S.s)): count the regions", "counts pairs"),
    ("your loop makes one merge too many: stop as soon as no more than `segments` regions are left "
     "(while regions > segments)", "one merge too many"),
    ("your loop stops one merge early: merge while more than `segments` regions are left "
     "(while regions > segments)", "one merge too few"),
]
