"""Every exercise checker accepts the library's own answer and rejects a plausible wrong one."""

import re

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


class _StudentBlock(torch.nn.Module):
    """A residual block written the way a student would, with one of the public ports' mistakes."""

    def __init__(self, channels, mistake=None):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.mistake = mistake

    def forward(self, x):
        slope = 0.01 if self.mistake == "slope" else 0.2
        if self.mistake == "conv1 twice":
            return x + self.conv1(torch.nn.functional.leaky_relu(self.conv1(x), slope))
        y = x + self.conv2(torch.nn.functional.leaky_relu(self.conv1(x), slope))
        return torch.relu(y) if self.mistake == "relu after sum" else y


class _StudentUNet(torch.nn.Module):
    """White-box's generator in TF conventions, written from the paper's table, with an optional mistake."""

    def __init__(self, mistake=None, bias=True, names=("head", "tail")):
        super().__init__()
        nn, c = torch.nn, 32
        self.mistake = mistake
        stride2 = 1 if mistake == "symmetric" else 0
        setattr(self, names[0], nn.Conv2d(3, c, 7, padding=3, bias=bias))
        self.down1 = nn.Conv2d(c, c, 3, stride=2, padding=stride2)
        self.conv1 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=stride2)
        self.conv2 = nn.Conv2d(2 * c, 4 * c, 3, padding=1)
        self.blocks = nn.Sequential(*[_StudentBlock(4 * c, mistake) for _ in range(4)])
        self.reduce = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.up1a = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.up1b = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up2 = nn.Conv2d(c, c, 3, padding=1)
        setattr(self, names[1], nn.Conv2d(c, 3, 7, padding=3))

    def _up(self, x):
        if self.mistake == "half-pixel":
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
        # TF1 resize_bilinear by its definition: output 2i is input i, 2i+1 the mean of i and i+1 (edge repeated)
        for dim in (2, 3):
            following = torch.cat([x.narrow(dim, 1, x.shape[dim] - 1), x.narrow(dim, x.shape[dim] - 1, 1)], dim)
            x = torch.stack([x, (x + following) / 2], dim + 1).flatten(dim, dim + 1)
        return x

    def forward(self, x):
        act = lambda t: torch.nn.functional.leaky_relu(t, 0.01 if self.mistake == "slope" else 0.2)  # noqa: E731
        pad = (lambda t: t) if self.mistake == "symmetric" else (lambda t: torch.nn.functional.pad(t, (0, 1, 0, 1)))
        x0 = act(self.head(x))
        x1 = act(self.conv1(act(self.down1(pad(x0)))))
        x2 = act(self.conv2(act(self.down2(pad(x1)))))
        x2 = self.blocks(x2)
        x2 = self.reduce(x2) if self.mistake == "no act after reduce" else act(self.reduce(x2))
        x3 = act(self.up1b(act(self.up1a(self._up(x2) + x1))))
        x4 = act(self.up2(self._up(x3) + (0 if self.mistake == "no skip" else x0)))
        return self.tail(x4)


def test_generator_checker_accepts_the_library_and_an_independent_answer(capsys):
    from animescene.models import UNetGenerator

    checks.check_generator(lambda: UNetGenerator(tf_mode=True, bounded=False))
    checks.check_generator(_StudentUNet)
    out = capsys.readouterr().out
    assert out.count("✓ UNet generator: correct") == 2 and "1,467,075 parameters" in out


@pytest.mark.parametrize("mistake, hint", [
    ("relu after sum", "ReLU after the sum"),
    ("conv1 twice", "applies conv1 twice"),
    ("slope", "default slope 0.01"),
    ("symmetric", "symmetric stride-2 padding"),
    ("half-pixel", "half-pixel bilinear"),
    ("no skip", "without its second skip"),
])
def test_generator_checker_names_the_mistake(mistake, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_generator(lambda: _StudentUNet(mistake))


def test_generator_checker_finds_an_unlisted_mistake_by_layer():
    # no fault of the list drops the activation after `reduce`: the first layer with a wrong input is up1a
    with pytest.raises(AssertionError, match="up to `reduce` gets the right input, but `up1a` does not"):
        checks.check_generator(lambda: _StudentUNet("no act after reduce"))


def test_generator_checker_counts_parameters_and_loads_strictly():
    with pytest.raises(AssertionError, match=r"1,467,043 parameters.*`head` has 4,704 \(4,736 expected\)"):
        checks.check_generator(lambda: _StudentUNet(bias=False))   # the head's 32 biases are missing
    with pytest.raises(AssertionError, match="strict=True: missing head.weight.*unexpected first_conv.weight"):
        checks.check_generator(lambda: _StudentUNet(names=("first_conv", "tail")))


def test_generator_checker_without_official_weights_uses_a_random_generator(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ANIMESCENE_HOME", str(tmp_path))     # an empty cache: the official weights are absent
    checks.check_generator(_StudentUNet)
    assert "random generator's weights" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="half-pixel bilinear"):
        checks.check_generator(lambda: _StudentUNet("half-pixel"))


# ---- lessons 02-04: the checkers that diagnose. Each accepts an answer written independently of the library
# ---- and names every known mistake when a student-style implementation makes it.


def _student_similarity(ri, rj, area, mistake=None):
    """Selective search's similarity written from Uijlings et al., with an optional mistake."""
    (a0, b0, a1, b1), (c0, d0, c1, d1) = ri["box"], rj["box"]
    joint = (max(a1, c1) - min(a0, c0)) * (max(b1, d1) - min(b0, d0))
    both = ri["size"] + rj["size"]
    histogram = sum(min(p, q) for p, q in zip(ri["hist"].tolist(), rj["hist"].tolist()))
    size = both / area if mistake == "size sign" else 1 - both / area
    fill = 1 - joint / area if mistake == "fill without sizes" else 1 - (joint - both) / area
    if mistake == "inclusive box":
        fill = 1 - ((max(a1, c1) - min(a0, c0) + 1) * (max(b1, d1) - min(b0, d0) + 1) - both) / area
    return histogram + size + fill


def _student_grouping(regions, pairs, segments, mistake=None, margins=None):
    """Hierarchical grouping written the way a student would (a label per starting region, a dict of scores)."""
    regions = {k: dict(r) for k, r in enumerate(regions)}
    area = sum(r["size"] for r in regions.values())
    group = np.arange(len(regions))
    scores = {(int(i), int(j)): _student_similarity(regions[i], regions[j], area) for i, j in pairs}
    if mistake == "non-adjacent":
        scores = {(i, j): _student_similarity(regions[i], regions[j], area)
                  for i in range(len(regions)) for j in range(i + 1, len(regions))}
    stop = segments - 1 if mistake == "one too many" else segments
    while len(regions) > stop and scores:
        ranked = sorted(scores.values())
        if margins is not None and len(ranked) > 1:
            margins.append(ranked[-1] - ranked[-2])
        (i, j) = max(scores, key=scores.get)
        ri, rj, new = regions.pop(i), regions.pop(j), max(regions) + 1 if regions else max(i, j) + 1
        new = max(new, i + 1, j + 1)
        size = ri["size"] + rj["size"]
        hist = ri["hist"] + rj["hist"] if mistake == "summed histograms" else (
            ri["size"] * ri["hist"] + rj["size"] * rj["hist"]) / size
        box = tuple(min(p, q) for p, q in zip(ri["box"][:2], rj["box"][:2])) + tuple(
            max(p, q) for p, q in zip(ri["box"][2:], rj["box"][2:]))
        regions[new] = {"size": size, "box": box, "hist": hist}
        touching = {k for pair in scores if i in pair or j in pair for k in pair} - {i, j}
        scores = {pair: s for pair, s in scores.items() if i not in pair and j not in pair}
        if mistake != "not rescored":
            for k in touching:
                scores[(k, new)] = _student_similarity(regions[k], regions[new], area)
        group[(group == i) | (group == j)] = new
    return np.unique(group, return_inverse=True)[1]


def test_grouping_checker_reference_loop_equals_the_library():
    """The plain loop the checker runs its faults on gives selective_search_grouping's partitions."""
    import skimage.data

    from animescene import segmentation

    image, labels = checks.structure._grouping_test_image()
    regions, pairs = checks.structure._grouping_regions()
    for segments in range(1, len(regions) + 1):
        expected = segmentation.selective_search_grouping(image, labels, segments)
        assert np.array_equal(checks.structure._canonical(checks.structure._grouping(regions, pairs, segments)[labels]),
                              checks.structure._canonical(expected)), segments
    photo = skimage.data.astronaut()[::6, ::6].copy()  # (86, 86, 3): about 50 Felzenszwalb regions
    start = segmentation.felzenszwalb(photo, min_size=40)
    sizes, boxes, hists = segmentation.region_features(photo, start, start.max() + 1)
    photo_regions = [{"size": int(s), "box": tuple(int(v) for v in b), "hist": h} for s, b, h in zip(sizes, boxes, hists)]
    grouped = checks.structure._grouping(photo_regions, segmentation.region_adjacency(start), 12)[start]
    assert np.array_equal(checks.structure._canonical(grouped),
                          checks.structure._canonical(segmentation.selective_search_grouping(photo, start, 12)))


def test_grouping_checker_test_image_has_no_near_ties_and_distinct_faults():
    image, labels = checks.structure._grouping_test_image()
    regions, pairs = checks.structure._grouping_regions()
    margins = []
    _student_grouping(regions, pairs, checks.structure._GROUPING_SEGMENTS, margins=margins)
    assert min(margins) > 1e-4  # float rounding cannot change which pair merges first
    partitions = [checks.structure._canonical(checks.structure._grouping(regions, pairs, checks.structure._GROUPING_SEGMENTS, fault)[labels])
                  for fault in [None] + [f for _, f in checks.structure._GROUPING_FAULTS]]
    for a in range(len(partitions)):
        for b in range(a):
            assert not np.array_equal(partitions[a], partitions[b]), (a, b)


def test_similarity_and_grouping_checkers_accept_independent_answers(capsys):
    checks.check_region_similarity(_student_similarity)
    checks.check_grouping(_student_grouping)
    assert capsys.readouterr().out.count("correct") == 2


@pytest.mark.parametrize("mistake, hint", [
    ("size sign", "size term has the wrong sign"),
    ("fill without sizes", "fill term forgets the regions"),
    ("inclusive box", "stops are exclusive"),
])
def test_similarity_checker_names_the_mistake(mistake, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_region_similarity(lambda ri, rj, area: _student_similarity(ri, rj, area, mistake))


@pytest.mark.parametrize("mistake, hint", [
    ("not rescored", "never merge again"),
    ("summed histograms", "not normalised"),
    ("non-adjacent", "do not touch"),
    ("one too many", "one merge too many"),
])
def test_grouping_checker_names_the_mistake(mistake, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_grouping(lambda r, p, s: _student_grouping(r, p, s, mistake))


def test_grouping_checker_finds_the_first_wrong_merge_of_an_unlisted_mistake():
    with pytest.raises(AssertionError, match=r"return one integer per starting region"):
        checks.check_grouping(lambda r, p, s: np.zeros(len(r) + 1, dtype=int))
    # merging the least similar pair is listed; a loop that merges the second most similar one is not
    def second_best(regions, pairs, segments):
        regions = [dict(r) for r in regions]
        area = sum(r["size"] for r in regions)
        owner, scores = list(range(len(regions))), {(i, j): _student_similarity(regions[i], regions[j], area)
                                                    for i, j in pairs.tolist()}
        neighbours = {k: {b for a, b in scores if a == k} | {a for a, b in scores if b == k} for k in owner}
        while len(set(owner)) > segments and scores:
            ranked = sorted(scores, key=scores.get)
            i, j = ranked[-2] if len(ranked) > 1 else ranked[-1]
            new = len(regions)
            ri, rj = regions[i], regions[j]
            size = ri["size"] + rj["size"]
            regions.append({"size": size, "hist": (ri["size"] * ri["hist"] + rj["size"] * rj["hist"]) / size,
                            "box": (*map(min, ri["box"][:2], rj["box"][:2]), *map(max, ri["box"][2:], rj["box"][2:]))})
            scores = {p: s for p, s in scores.items() if i not in p and j not in p}
            neighbours[new] = (neighbours[i] | neighbours[j]) - {i, j}
            for k in neighbours[new]:
                neighbours[k] = (neighbours[k] - {i, j}) | {new}
                scores[(k, new)] = _student_similarity(regions[k], regions[new], area)
            owner = [new if o in (i, j) else o for o in owner]
        return np.unique(owner, return_inverse=True)[1]

    with pytest.raises(AssertionError, match=r"with segments=24 your grouping is right, with segments=23 \(merge 1\) "
                                             r"it should join starting regions \[\d+, \d+\]"):
        checks.check_grouping(second_best)


def test_adaptive_coloring_checker_names_the_mistake():
    from animescene.segmentation import region_means, region_medians, region_stds

    def student(image, labels, g1, g2, closed=False, per_channel=False):
        n = labels.max() + 1
        means, medians = region_means(image, labels), region_medians(image, labels)
        if per_channel:
            sigma = np.stack([image[labels == r].std(axis=0) for r in range(n)])
        else:
            sigma = np.repeat(region_stds(image, labels)[:, None], 3, axis=1)
        colours = medians.copy()
        colours[(sigma <= g1) if closed else (sigma < g1)] = means[(sigma <= g1) if closed else (sigma < g1)]
        mixed = ((sigma > g1) if closed else (sigma >= g1)) & (sigma < g2)
        colours[mixed] = 0.5 * means[mixed] + 0.5 * medians[mixed]
        return colours

    checks.check_adaptive_coloring(student)
    with pytest.raises(AssertionError, match="exactly γ1 gets its mean"):
        checks.check_adaptive_coloring(lambda im, lab, g1, g2: student(im, lab, g1, g2, closed=True))
    with pytest.raises(AssertionError, match="each channel's own std"):
        checks.check_adaptive_coloring(lambda im, lab, g1, g2: student(im, lab, g1, g2, per_channel=True))


def _student_weights(batch_size, generator=None, mistake=None):
    low = torch.tensor([0.199, 0.487, 0.014])
    if mistake == "bgr":
        low = low.flip(0)
    if mistake == "normal":
        return torch.normal(torch.tensor([0.299, 0.587, 0.114]).expand(batch_size, 3), 0.1, generator=generator)
    rows = 1 if mistake == "one draw" else batch_size
    u = torch.rand(rows, 3, generator=None if mistake == "global" else generator)
    return (low + 0.2 * u).expand(batch_size, 3)


def test_sample_color_shift_checker_accepts_an_independent_answer(capsys):
    checks.check_sample_color_shift(_student_weights)
    assert "✓ colour-shift weights: correct" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    ("bgr", "B, G, R order"),
    ("one draw", "every row is the same"),
    ("normal", "mode='normal'"),
    ("global", "draw from `generator`"),
])
def test_sample_color_shift_checker_names_the_mistake(mistake, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_sample_color_shift(lambda b, g: _student_weights(b, g, mistake))


@pytest.mark.parametrize("student, hint", [
    (lambda x, w: (x.flip(1) * (w / w.sum(1, keepdim=True))[:, :, None, None]).sum(1, keepdim=True), "B, G, R order"),
    (lambda x, w: (x * w[:, :, None, None]).sum(1, keepdim=True), "divide by each row's sum"),
    (lambda x, w: (x * w[:, :, None, None]).sum(1, keepdim=True) / w.sum(), "its own row's sum"),
    (lambda x, w: (x * (w[0] / w[0].sum())[None, :, None, None]).sum(1, keepdim=True), "weights of sample 0"),
    (lambda x, w: x.mean(1, keepdim=True), "averaged the channels"),
    (lambda x, w: (x * (w / w.sum(1, keepdim=True))[:, :, None, None]).sum(1), "keepdim=True"),
])
def test_color_shift_checker_names_the_mistake(student, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}|{hint}"):
        checks.check_color_shift(student)


def _student_texture_batch(cartoon, fake, generator, mistake=None):
    count = len(cartoon)
    fakes = fake if mistake == "attached" else fake.detach()
    images = torch.cat([fakes, cartoon] if mistake == "fakes first" else [cartoon, fakes])
    if mistake == "shared":
        weights = _student_weights(count, generator).repeat(2, 1)
    else:
        weights = _student_weights(2 * count, generator)
    return (images * (weights / weights.sum(1, keepdim=True))[:, :, None, None]).sum(1, keepdim=True)


@pytest.mark.parametrize("mistake, hint", [
    (None, None),
    ("attached", r"fake\.detach\(\)"),
    ("fakes first", "cartoons first"),
    ("shared", "share one set of weights"),
])
def test_texture_batch_checker(mistake, hint, capsys):
    student = lambda c, f, g: _student_texture_batch(c, f, g, mistake)  # noqa: E731
    if hint is None:
        checks.check_texture_batch(student)
        assert "✓" in capsys.readouterr().out
    else:
        with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
            checks.check_texture_batch(student)


@pytest.mark.parametrize("d_loss, g_loss, hint", [
    (lambda r, f: (r - 1).pow(2).mean() + f.pow(2).mean(), None, "the ½ is missing"),
    (lambda r, f: 0.5 * (r.pow(2).mean() + (f - 1).pow(2).mean()), None, "swapped the targets"),
    (lambda r, f: 0.5 * ((r - 1).pow(2).sum() + f.pow(2).sum()), None, "summed over the logits"),
    (None, lambda f: 0.5 * (f - 1).pow(2).mean(), "generator loss has no ½"),
    (None, lambda f: f.pow(2).mean(), "target is 1, not 0"),
    (None, lambda f: (f - 1).pow(2).sum(), "summed over the logits"),
])
def test_lsgan_checker_names_the_mistake(d_loss, g_loss, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_lsgan_losses(d_loss or lsgan_d_loss, g_loss or lsgan_g_loss)


def test_lsgan_checker_accepts_an_independent_answer(capsys):
    checks.check_lsgan_losses(lambda r, f: ((r - 1) ** 2).mean() / 2 + (f ** 2).mean() / 2, lambda f: ((f - 1) ** 2).mean())
    assert capsys.readouterr().out.count("correct") == 2


def test_occlusion_mask_checker(capsys):
    from animescene.temporal import FB_ALPHA, FB_BETA, occlusion_mask, warp

    checks.check_occlusion_mask(occlusion_mask)
    assert "✓" in capsys.readouterr().out

    def not_warped(b, f):
        return ((b + f) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (f**2).sum(-1)) + FB_BETA

    with pytest.raises(AssertionError, match="read the forward flow where the backward flow lands"):
        checks.check_occlusion_mask(not_warped)
    with pytest.raises(AssertionError, match="leaves the frame"):
        checks.check_occlusion_mask(lambda b, f: not_warped(b, warp(f, b)))
    _rejects(lambda: checks.check_occlusion_mask(lambda b, f: np.ones(b.shape[:2], bool)))


# ---- lesson 06: one adversarial training iteration ----------------------------------------------------


def _student_iteration(parts, batch, mistake=None):
    """A student's iteration, written with the library's discriminator_loss (which detaches for itself)."""
    from animescene.losses import Betas, GeneratorLoss, discriminator_loss

    betas = Betas() if mistake == "default betas" else parts.betas
    eps = 5e-3 if mistake == "inference eps" else 1e-2
    fake = guided_filter(batch.photo, parts.generator(batch.photo), 1, eps)
    discs = (parts.disc_surface, parts.disc_texture)
    if mistake == "zero_grad at the top":
        parts.g_opt.zero_grad()
        parts.d_opt.zero_grad()
    else:
        parts.g_opt.zero_grad()
    if mistake != "zero_grad at the top":
        for d in discs:
            d.requires_grad_(False)
    g_total = GeneratorLoss(betas, vgg=parts.vgg)(batch.photo, fake, batch.target, *discs, batch.g_colors)["total"]
    g_total.backward()
    parts.g_opt.step()
    for d in discs:
        d.requires_grad_(True)
    if mistake != "zero_grad at the top":
        parts.d_opt.zero_grad()
    d_total = discriminator_loss(*discs, fake, batch.cartoon, batch.d_colors)["total"]
    d_total.backward()
    parts.d_opt.step()
    return {"g_total": g_total, "d_total": d_total}


def _student_d_first(parts, batch):
    from animescene.losses import GeneratorLoss, discriminator_loss

    fake = guided_filter(batch.photo, parts.generator(batch.photo), 1, 1e-2)
    parts.d_opt.zero_grad()
    d_total = discriminator_loss(parts.disc_surface, parts.disc_texture, fake, batch.cartoon, batch.d_colors)["total"]
    d_total.backward()
    parts.d_opt.step()
    parts.g_opt.zero_grad()
    g_total = GeneratorLoss(parts.betas, vgg=parts.vgg)(batch.photo, fake, batch.target, parts.disc_surface,
                                                         parts.disc_texture, batch.g_colors)["total"]
    g_total.backward()
    parts.g_opt.step()
    return {"g_total": g_total, "d_total": d_total}


def _student_attached(parts, batch):
    """Writes the discriminators' LSGAN loss by hand and forgets to detach the fakes."""
    from animescene.losses import GeneratorLoss
    from animescene.representations import surface

    fake = guided_filter(batch.photo, parts.generator(batch.photo), 1, 1e-2)
    parts.g_opt.zero_grad()
    g_total = GeneratorLoss(parts.betas, vgg=parts.vgg)(batch.photo, fake, batch.target, parts.disc_surface,
                                                         parts.disc_texture, batch.g_colors)["total"]
    g_total.backward()
    parts.g_opt.step()
    parts.d_opt.zero_grad()
    count = len(fake)
    both = torch.cat([batch.cartoon, fake])
    real_s, fake_s = parts.disc_surface(surface(both)).split(count)
    real_t, fake_t = parts.disc_texture(color_shift(both, batch.d_colors)).split(count)
    d_total = lsgan_d_loss(real_s, fake_s) + lsgan_d_loss(real_t, fake_t)
    d_total.backward()
    parts.d_opt.step()
    return {"g_total": g_total, "d_total": d_total}


def test_adversarial_step_checker_accepts_an_independent_answer(capsys):
    checks.check_adversarial_step(_student_iteration)
    assert "✓ adversarial training iteration" in capsys.readouterr().out


@pytest.mark.parametrize("student, hint", [
    (_student_d_first, "discriminator step before the generator step"),
    (lambda p, b: _student_iteration(p, b, "zero_grad at the top"), "also updated by the generator loss"),
    (lambda p, b: _student_iteration(p, b, "default betas"), r"default β \(Betas\(\)\)"),
    (lambda p, b: _student_iteration(p, b, "inference eps"), "eps=5e-3"),
    (_student_attached, r"judge fake\.detach\(\)"),
])
def test_adversarial_step_checker_names_the_mistake(student, hint):
    with pytest.raises(AssertionError, match=f"not yet.*{hint}"):
        checks.check_adversarial_step(student)


def test_adversarial_step_checker_follows_the_trainer(tmp_path, monkeypatch):
    """The checker's reference iteration gives the weights and losses of Trainer._adversarial_step."""
    import copy
    from types import SimpleNamespace

    from animescene.data import StepBatches
    from animescene.representations import sample_color_shift, structure
    from animescene.train import TrainConfig, Trainer

    monkeypatch.setenv("ANIMESCENE_SMOKE", "1")  # a random VGG, refused outside smoke mode
    generator = torch.Generator().manual_seed(5)
    pairs = [(torch.rand(3, 16, 16, generator=generator) * 2 - 1, torch.rand(3, 16, 16, generator=generator) * 2 - 1)
             for _ in range(4)]
    config = TrainConfig(size=16, batch_size=2, pretrain_steps=0, steps=1, channels=8, num_blocks=1,
                         vgg_weights=None, betas={"content": 2e4}, structure_workers=0, num_workers=0,
                         device="cpu", amp="none", out_dir=str(tmp_path), log_every=0, sample_every=0,
                         checkpoint_every=0)
    trainer = Trainer(config, dataset=pairs)
    nets = [copy.deepcopy(m) for m in (trainer.generator, trainer.disc_surface, trainer.disc_texture)]
    parts = SimpleNamespace(generator=nets[0], disc_surface=nets[1], disc_texture=nets[2], vgg=trainer.vgg,
                            betas=trainer.g_loss.betas,
                            g_opt=torch.optim.Adam(nets[0].parameters(), lr=config.lr, betas=config.adam_betas),
                            d_opt=torch.optim.Adam([*nets[1].parameters(), *nets[2].parameters()], lr=config.lr,
                                                   betas=config.adam_betas))
    photo, cartoon = next(StepBatches(pairs, 2, 0, seed=config.seed, num_workers=0))
    with torch.no_grad():
        target = structure(guided_filter(photo, nets[0](photo), 1, 1e-2).clamp(-1, 1), segments=config.segments,
                           method=config.structure_method)
    colors = torch.Generator().manual_seed(config.seed + 1)
    batch = SimpleNamespace(photo=photo, cartoon=cartoon, target=target, g_colors=sample_color_shift(2, colors),
                            d_colors=sample_color_shift(4, colors))

    values = trainer.train_step()
    expected = checks.training._adversarial_iteration(parts, batch)

    assert values["g_total"] == pytest.approx(float(expected["g_total"]), rel=1e-6)
    assert values["d_total"] == pytest.approx(float(expected["d_total"]), rel=1e-6)
    for mine, theirs in zip(nets, (trainer.generator, trainer.disc_surface, trainer.disc_texture)):
        for a, b in zip(mine.parameters(), theirs.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _tiling_answer(**mistake):
    """A tiling exercise answer written apart from the checker's reference; ``mistake`` picks a fault."""
    import torch.nn.functional as F

    context, crop, last, pad = mistake.get("context"), mistake.get("crop", True), mistake.get("last", True), mistake.get("pad", "replicate")

    def tiled(generator, x, tile, margin):
        ctx = margin if context is None else context
        height, width = x.shape[-2:]
        step = tile - 2 * margin
        out = torch.zeros_like(x)
        tops = range(0, height, step) if last else range(0, height - step, step)
        lefts = range(0, width, step) if last else range(0, width - step, step)
        for top in tops:
            for left in lefts:
                y0, x0 = max(top - ctx, 0), max(left - ctx, 0)
                piece = x[..., y0 : min(top + step + ctx, height), x0 : min(left + step + ctx, width)]
                h, w = piece.shape[-2:]
                if pad is not None:
                    piece = F.pad(piece, (0, -w % 8, 0, -h % 8), mode=pad)
                result = generator(piece)
                bottom, right = min(top + step, height), min(left + step, width)
                dy, dx = (top - y0, left - x0) if crop else (0, 0)
                out[..., top:bottom, left:right] = result[..., dy : dy + bottom - top, dx : dx + right - left]
        return out

    return tiled


def test_tiling_checker_accepts_a_right_answer_equal_to_the_untiled_output(capsys):
    checks.check_tiling(_tiling_answer())
    assert "✓ tiling with margins: correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(context=32), "receptive-field radius (62 px)"),
        (dict(crop=False), "shifted by the margin"),
        (dict(last=False), "last row or column of tiles is missing"),
        (dict(pad=None), "not a multiple of 8"),
        (dict(pad="constant"), "repeating its edge pixels"),
    ],
)
def test_tiling_checker_names_the_mistake(mistake, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        checks.check_tiling(_tiling_answer(**mistake))


def test_tiling_checker_names_doubled_content():
    import torch.nn.functional as F

    right = _tiling_answer()
    with pytest.raises(AssertionError, match="content appears twice"):
        checks.check_tiling(lambda g, x, tile, margin: F.pad(right(g, x, tile, margin), (margin,) * 4))
