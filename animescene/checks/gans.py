"""Lesson 04: the LSGAN losses, the toy GAN and the White-box generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import _report, _verdict


def check_lsgan_losses(d_loss_fn, g_loss_fn) -> None:
    r"""Lesson 04: White-box's LSGAN losses on logits, :math:`\frac12(E[(D(r)-1)^2] + E[D(f)^2])` and :math:`E[(D(f)-1)^2]`.

    A wrong loss is evaluated against the known slips on the same logits (the ½ missing or misplaced, the
    real and fake targets swapped, a sum instead of a mean, the square of the mean, absolute values) and
    the one it matches is named.
    """
    from ..losses import lsgan_d_loss, lsgan_g_loss

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
    from ..models import UNetGenerator

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
    from ..models import upsample2x_tf1

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
