"""Checkers for the lessons' exercises: each runs the student's function on fresh inputs and compares it
with the library's own implementation, failing with a message that says what differs.

A checker prints one line when the exercise is right and raises ``AssertionError`` otherwise, so an
exercise cell goes green or red in the notebook (and in ``pytest --nbval``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
    thresholds. A wrong answer is compared with the known slips (closed intervals at the thresholds,
    mean and median swapped, the std of each channel apart) and the one it matches is named.
    """
    from .segmentation import adaptive_region_colors, region_means, region_medians, region_stds

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


def check_lsgan_losses(d_loss_fn, g_loss_fn) -> None:
    r"""Lesson 04: White-box's LSGAN losses on logits, :math:`\frac12(E[(D(r)-1)^2] + E[D(f)^2])` and :math:`E[(D(f)-1)^2]`.

    A wrong loss is evaluated against the known slips on the same logits (the ½ missing or misplaced, the
    real and fake targets swapped, a sum instead of a mean, the square of the mean, absolute values) and
    the one it matches is named.
    """
    from .losses import lsgan_d_loss, lsgan_g_loss

    generator = torch.Generator().manual_seed(14)
    real, fake = torch.randn(4, 1, 3, 3, generator=generator), torch.randn(4, 1, 3, 3, generator=generator)
    r, f = real.double(), fake.double()
    halves = "White-box's discriminator loss is ½(E[(D(real) − 1)²] + E[D(fake)²])"
    d_faults = [
        (f"yours is twice it: the ½ is missing. {halves}", lambda: (r - 1).pow(2).mean() + f.pow(2).mean()),
        (f"you swapped the targets: real logits go to 1 and fake ones to 0. {halves}",
         lambda: 0.5 * (r.pow(2).mean() + (f - 1).pow(2).mean())),
        (f"you swapped the targets (real to 1, fake to 0) and the ½ is missing. {halves}",
         lambda: r.pow(2).mean() + (f - 1).pow(2).mean()),
        (f"you summed over the logits: E[·] is the mean over the batch and the patch, so the loss does not grow "
         f"with the image size. {halves}", lambda: 0.5 * ((r - 1).pow(2).sum() + f.pow(2).sum())),
        (f"you squared the mean: square each logit's error, then average, ((x - 1) ** 2).mean(). {halves}",
         lambda: 0.5 * ((r - 1).mean().pow(2) + f.mean().pow(2))),
        (f"least squares, not absolute values: square the errors. {halves}",
         lambda: 0.5 * ((r - 1).abs().mean() + f.abs().mean())),
    ]
    _verdict("LSGAN discriminator loss", d_loss_fn(real, fake), lsgan_d_loss(r, f), d_faults, 1e-6)
    single = "White-box's generator loss is E[(D(fake) − 1)²]"
    g_faults = [
        (f"yours is half of it: the generator loss has no ½ (only the discriminator's, which averages two "
         f"terms). {single}", lambda: 0.5 * (f - 1).pow(2).mean()),
        (f"the generator wants its fakes called real: the target is 1, not 0. {single}", lambda: f.pow(2).mean()),
        (f"you summed over the logits: take the mean. {single}", lambda: (f - 1).pow(2).sum()),
        (f"you squared the mean: square each logit's error, then average. {single}", lambda: (f - 1).mean().pow(2)),
        (f"least squares, not absolute values: square the errors. {single}", lambda: (f - 1).abs().mean()),
    ]
    _verdict("LSGAN generator loss", g_loss_fn(fake), lsgan_g_loss(f), g_faults, 1e-6)


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


GENERATOR_PARAMETERS = 1_467_075  # White-box's unet_generator at channels=32, num_blocks=4


def check_generator(cls) -> None:
    """Lesson 04: ``cls()`` is White-box's UNet generator in TensorFlow's conventions, without a final tanh.

    Counts the parameters, loads the official weights into ``cls()`` with ``strict=True`` (a seeded random
    generator's weights when the official ones are not downloaded) and compares its output with the
    library's ``UNetGenerator(tf_mode=True, bounded=False)`` on the same ``(2, 3, 48, 64)`` input. When the
    outputs differ, it runs the reference layers again with each known fault of the public ports and names
    the one that reproduces the student's output; when none does, it names the first layer whose input
    differs from the reference's.
    """
    what = "UNet generator"
    model = cls()
    if not isinstance(model, torch.nn.Module):
        raise AssertionError(f"{what}: cls() should build an nn.Module, got {type(model).__name__}")
    reference, source = _reference_generator()
    count = sum(p.numel() for p in model.parameters())
    if count != GENERATOR_PARAMETERS:
        _report(False, what, f"it has {count:,} parameters, White-box's has {GENERATOR_PARAMETERS:,}. "
                f"{_parameter_differences(model, reference)}")
    _load_strictly(model, reference, what)
    model.eval()
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(19)) * 2 - 1
    with torch.no_grad():
        expected, got = reference(x), model(x)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(f"{what}: expected an output of shape {tuple(expected.shape)} for an input of "
                             f"shape {tuple(x.shape)}, got {shape}")
    atol = 1e-4 * (1.0 + expected.abs().max().item())
    if (got - expected).abs().max().item() > atol:
        _report(False, what, _diagnose_generator(model, reference, x, got, atol))
    print(f"{count:,} parameters; {source} load with strict=True; the output matches the library's")
    _report(True, what)


def _reference_generator():
    """The official generator, else a seeded random one in the same mode, and words saying which."""
    from .models import UNetGenerator

    try:
        return UNetGenerator.from_weights("official"), "the official White-box weights"
    except FileNotFoundError:  # MissingWeightsError: not downloaded
        with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream alone
            torch.manual_seed(19)
            reference = UNetGenerator(tf_mode=True, bounded=False).eval()
        return reference, ("a random generator's weights (the official weights are not downloaded: "
                           "`animescene download whitebox-official`)")


def _parameter_differences(model, reference) -> str:
    """Which of the reference's layers are missing from ``model`` or hold a different number of parameters."""
    differences = []
    for name, layer in reference.named_children():
        expected = sum(p.numel() for p in layer.parameters())
        mine = getattr(model, name, None)
        if not isinstance(mine, torch.nn.Module):
            differences.append(f"`{name}` is missing ({expected:,} expected)")
            continue
        found = sum(p.numel() for p in mine.parameters())
        if found != expected:
            differences.append(f"`{name}` has {found:,} ({expected:,} expected)")
    if not differences:
        return "Every layer of the skeleton has the right count: remove the layers it does not list."
    return "; ".join(differences) + ". Check the channels, kernel sizes and biases against the table."


def _load_strictly(model, reference, what: str) -> None:
    mine, theirs = model.state_dict(), reference.state_dict()
    missing = [k for k in theirs if k not in mine]
    unexpected = [k for k in mine if k not in theirs]
    resized = [k for k in theirs if k in mine and mine[k].shape != theirs[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
    for key in resized[:4]:
        problems.append(f"{key} is {tuple(mine[key].shape)}, expected {tuple(theirs[key].shape)}")
    if problems:
        _report(False, what, "the official weights do not load with strict=True: " + "; ".join(problems)
                + ". Name and shape the layers as in the skeleton "
                "(head, down1, conv1, ..., blocks.0.conv1, ..., tail).")
    model.load_state_dict(theirs, strict=True)


def _diagnose_generator(model, reference, x, got, atol: float) -> str:
    """The known fault that reproduces ``got``, else the first layer whose input differs."""
    with torch.no_grad():
        for hint, fault in _GENERATOR_FAULTS:
            if (got - _whitebox_forward(reference, x, **fault)).abs().max().item() <= atol:
                return hint
    return _first_differing_layer(model, reference, x, atol)


def _whitebox_forward(g, x, *, slope=0.2, pad=(0, 1, 0, 1), upsample=None, block=None, skips=(True, True),
                      tanh=False):
    """White-box's generator on ``g``'s layers, with one fault switched on (``(B, 3, H, W) -> (B, 3, H, W)``).

    ``g`` is a TF-mode :class:`~animescene.models.UNetGenerator` (stride-2 convs without padding); the
    defaults reproduce its forward exactly.
    """
    from .models import upsample2x_tf1

    upsample = upsample or upsample2x_tf1
    act = lambda t: F.leaky_relu(t, slope)  # noqa: E731
    block = block or (lambda b, t: t + b.conv2(act(b.conv1(t))))
    x0 = act(g.head(x))
    x1 = act(g.conv1(act(g.down1(F.pad(x0, pad)))))
    x2 = act(g.conv2(act(g.down2(F.pad(x1, pad)))))
    for b in g.blocks:
        x2 = block(b, x2)
    x2 = act(g.reduce(x2))
    x3 = act(g.up1b(act(g.up1a(upsample(x2) + x1 if skips[0] else upsample(x2)))))
    x4 = act(g.up2(upsample(x3) + x0 if skips[1] else upsample(x3)))
    out = g.tail(x4)
    return torch.tanh(out) if tanh else out


def _bilinear(t, align_corners: bool):
    return F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=align_corners)


def _leaky(t):
    return F.leaky_relu(t, 0.2)


_TF_PADDING = ("TensorFlow's 'SAME' padding of a 3x3 stride-2 conv on an even size puts its one pixel at the "
               "bottom/right only: F.pad(x, (0, 1, 0, 1)), then the conv with padding=0")
_TF_RESIZE = ("TF1's resize_bilinear reads the input at src = dst / 2: use animescene.models.upsample2x_tf1")

# (hint, fault) pairs: each fault is one mistake of the public PyTorch ports, as keyword arguments of
# _whitebox_forward. The hint says what the student's output matches and what White-box does instead.
_GENERATOR_FAULTS = [
    ("your output matches a residual block with a LeakyReLU after the sum: White-box's block is "
     "x + conv2(lrelu(conv1(x))), with nothing after the +",
     {"block": lambda b, t: _leaky(t + b.conv2(_leaky(b.conv1(t))))}),
    ("your output matches a residual block with a ReLU after the sum: White-box's block is "
     "x + conv2(lrelu(conv1(x))), with nothing after the +",
     {"block": lambda b, t: torch.relu(t + b.conv2(_leaky(b.conv1(t))))}),
    ("your output matches a residual block with an activation after its second conv: White-box's adds "
     "conv2's output as it is, x + conv2(lrelu(conv1(x)))",
     {"block": lambda b, t: t + _leaky(b.conv2(_leaky(b.conv1(t))))}),
    ("your output matches a residual block that applies conv1 twice: the second conv is conv2, "
     "x + conv2(lrelu(conv1(x)))",
     {"block": lambda b, t: t + b.conv1(_leaky(b.conv1(t)))}),
    ("your output matches a residual block without the activation between its two convs: "
     "x + conv2(lrelu(conv1(x)))",
     {"block": lambda b, t: t + b.conv2(b.conv1(t))}),
    ("your output matches LeakyReLU with PyTorch's default slope 0.01 (nn.LeakyReLU()): White-box's "
     "tf.nn.leaky_relu uses 0.2, F.leaky_relu(x, 0.2)",
     {"slope": 0.01}),
    ("your output matches ReLU where White-box uses LeakyReLU with slope 0.2, F.leaky_relu(x, 0.2)",
     {"slope": 0.0}),
    ("your output matches a PyTorch-convention port: the stride-2 convs pad every side and the upsampling "
     f"uses half-pixel centres. {_TF_PADDING}; {_TF_RESIZE}",
     {"pad": (1, 1, 1, 1), "upsample": lambda t: _bilinear(t, False)}),
    # padding=1 on every side equals F.pad(x, (1, 0, 1, 0)): a 3x3 stride-2 conv never reads the extra last row
    (f"your output matches symmetric stride-2 padding (padding=1 on every side). {_TF_PADDING}",
     {"pad": (1, 1, 1, 1)}),
    ("your output matches PyTorch's half-pixel bilinear upsampling (F.interpolate, align_corners=False), "
     f"src = (dst + 0.5) / 2 - 0.5. {_TF_RESIZE}",
     {"upsample": lambda t: _bilinear(t, False)}),
    (f"your output matches bilinear upsampling with align_corners=True. {_TF_RESIZE}",
     {"upsample": lambda t: _bilinear(t, True)}),
    (f"your output matches nearest-neighbour upsampling. {_TF_RESIZE}",
     {"upsample": lambda t: t.repeat_interleave(2, -2).repeat_interleave(2, -1)}),
    ("your output matches a UNet without its first skip: add x1 (the activated output of conv1) to the "
     "upsampled bottleneck before up1a",
     {"skips": (False, True)}),
    ("your output matches a UNet without its second skip: add x0 (the activated output of head) to the "
     "upsampled features before up2",
     {"skips": (True, False)}),
    ("your output matches a UNet without skips: add x1 before up1a and x0 before up2",
     {"skips": (False, False)}),
    ("your output matches the generator with a tanh at the end: the official one returns tail's output "
     "as it is (it is clipped after the guided filter)",
     {"tanh": True}),
]


def _first_differing_layer(model, reference, x, atol: float) -> str:
    """Name the first of the reference's convs, in the order it runs them, whose input differs in ``model``.

    The weights are the same (loaded strictly), so the mistake lies between that conv and the one before it.
    """
    def record(store, name):
        def hook(module, inputs, output):
            store.setdefault(name, inputs[0].detach())
        return hook

    theirs, mine, order = {}, {}, []
    handles = []
    for name, layer in reference.named_modules():
        if isinstance(layer, torch.nn.Conv2d):
            handles.append(layer.register_forward_hook(record(theirs, name)))
            handles.append(model.get_submodule(name).register_forward_hook(record(mine, name)))
            order.append(name)
    try:
        with torch.no_grad():
            reference(x)
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    order.sort(key=list(theirs).index)  # the order the reference runs its layers in
    previous = None
    for name in order:
        if name not in mine:
            return f"your forward never runs `{name}`"
        if mine[name].shape != theirs[name].shape:
            return (f"`{name}` gets an input of shape {tuple(mine[name].shape)}, expected "
                    f"{tuple(theirs[name].shape)}: look at what happens between `{previous or 'the input'}` "
                    f"and `{name}`")
        if (mine[name] - theirs[name]).abs().max().item() > atol:
            if previous is None:
                return f"`{name}` should get the input image as it is"
            return (f"every layer up to `{previous}` gets the right input, but `{name}` does not: look at "
                    f"what your forward does between `{previous}` and `{name}` "
                    "(activation, padding, upsampling, skip)")
        previous = name
    return "every layer gets the right input, so the mistake is after `tail`: return tail's output as it is"


def _verdict_or(what: str, got: torch.Tensor, expected: torch.Tensor, faults, atol: float) -> bool:
    """True (and the ✓ line) when ``got`` matches ``expected``; else fail naming the first known fault that
    ``got`` matches, and return False when none does.

    ``faults``: ``(hint, compute)`` pairs, ``compute()`` giving what that mistake returns on the same inputs.
    ``atol`` grows with the compared values' size above 1 (a sum of float32 terms is far from 1).
    """
    def near(value) -> bool:
        value = torch.as_tensor(value).detach().double()
        if value.shape != got.shape:
            return False
        return (got.detach().double() - value).abs().max().item() <= atol * max(1.0, value.abs().max().item())

    if near(expected):
        _report(True, what)
        return True
    for hint, compute in faults:
        if near(compute()):
            _report(False, what, hint)
    return False


def _verdict(what: str, got, expected: torch.Tensor, faults, atol: float) -> None:
    """:func:`_verdict_or`, then a message with the shape or the largest difference when no fault matched."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: return a torch.Tensor, got {type(got).__name__}")
    if not _verdict_or(what, got, expected, faults, atol):
        _close(got, expected, atol, what)


# ---- lesson 02: selective-search grouping ----------------------------------------------------------


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
    from .segmentation import selective_search_grouping

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
    from .segmentation import region_adjacency, region_features

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


# ---- lesson 03: the texture representation ------------------------------------------------------------


def check_sample_color_shift(fn) -> None:
    """Lesson 03: ``fn(batch_size, generator)`` draws the random colour shift's ``(batch_size, 3)`` weights.

    The library's :func:`~animescene.representations.sample_color_shift`: ``u = torch.rand(batch_size, 3,
    generator=generator)``, then ``low + (high - low) * u`` with each column's range of
    ``COLOR_SHIFT_RANGES`` (R, G, B). Compared from the same seed. A wrong answer is compared with the
    known slips (BGR order, one draw for the batch, the reference's ``mode="normal"``, ...), then checked
    for draws that ignore the generator, identical rows and values outside the ranges.
    """
    from .representations import COLOR_SHIFT_RANGES, sample_color_shift

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
    from .representations import color_shift, sample_color_shift

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


def check_occlusion_mask(fn) -> None:
    """Lesson 09: ``fn(backward, forward)`` is the forward-backward occlusion mask, a ``(H, W)`` bool array.

    Compared with :func:`animescene.temporal.occlusion_mask` on a hand-made case (a constant shift of
    2 px, confirmed, and leaving the frame on the right) and on smooth random flows with an occluded
    patch; a wrong answer is compared with the known slips (the forward flow read at ``p`` instead of
    ``p + b(p)``, ``b - f`` instead of ``b + f``, no check that ``p + b(p)`` is inside the frame).
    """
    import cv2
    import numpy as np

    from .temporal import FB_ALPHA, FB_BETA, occlusion_mask, warp

    what = "forward-backward occlusion mask"
    rng = np.random.default_rng(9)
    shift = np.zeros((6, 8, 2), np.float32)
    shift[..., 0] = 2
    smooth = cv2.resize(rng.normal(0, 3, (4, 5, 2)).astype(np.float32), (40, 30), interpolation=cv2.INTER_CUBIC)
    occluded = -smooth
    occluded[10:20, 12:24] += 6  # a patch whose forward flow disagrees
    cases = [(smooth, occluded), (shift, -shift)]  # the slips differ on the first

    def slip_not_warped(b, f):
        return ((b + f) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (f**2).sum(-1)) + FB_BETA

    def slip_minus(b, f):
        there = warp(f, b)
        return ((b - there) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (there**2).sum(-1)) + FB_BETA

    def slip_no_border(b, f):
        there = warp(f, b)
        return ((b + there) ** 2).sum(-1) < FB_ALPHA * ((b**2).sum(-1) + (there**2).sum(-1)) + FB_BETA

    faults = [("read the forward flow where the backward flow lands: f' = warp(forward, backward), not forward "
               "at p", slip_not_warped),
              ("a round trip adds the two flows: |b + f'|^2, not |b - f'|^2", slip_minus),
              ("a pixel whose p + b(p) leaves the frame has no match: mark it occluded too", slip_no_border)]
    for backward, forward in cases:
        got = np.asarray(fn(backward.copy(), forward.copy()))
        expected = occlusion_mask(backward, forward)
        if got.shape != expected.shape:
            raise AssertionError(f"{what}: expected shape {expected.shape}, got {got.shape}")
        if not np.array_equal(got.astype(bool), expected):
            hint = next((text for text, slip in faults if np.array_equal(got.astype(bool), slip(backward, forward))),
                        f"{int((got.astype(bool) != expected).sum())} of {expected.size} pixels differ from "
                        f"the reference")
            _report(False, what, hint)
    _report(True, what)
