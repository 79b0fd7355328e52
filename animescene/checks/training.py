"""Lesson 06: the weighted generator loss and one adversarial iteration."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import _close, _report


def check_weighted_loss(fn) -> None:
    """Lesson 06: ``fn(terms, betas)`` returns ``β1·tv + β2·surface + β3·structure + β4·texture + β5·content``."""
    from ..losses import Betas, GeneratorLoss

    generator = torch.Generator().manual_seed(17)
    terms = {name: torch.rand((), generator=generator) for name in GeneratorLoss.TERMS}
    betas = Betas(tv=2.0, surface=0.5, structure=3.0, texture=0.25, content=7.0)
    expected = sum(getattr(betas, name) * terms[name] for name in GeneratorLoss.TERMS)
    _close(torch.as_tensor(fn(terms, betas)), expected, 1e-6, "weighted generator loss")


def check_adversarial_step(fn) -> None:
    """Lesson 06: ``fn(parts, batch)`` is one iteration of White-box's recipe, as ``Trainer`` runs it.

    ``parts`` holds ``generator``, ``disc_surface``, ``disc_texture``, their optimizers ``g_opt`` and
    ``d_opt``, ``vgg`` and ``betas``; ``batch`` holds ``photo`` and ``cartoon`` ``(B, 3, H, W)``, the
    structure ``target`` ``(B, 3, H, W)``, the colour-shift weights ``g_colors`` ``(B, 3)`` of the generator
    step and ``d_colors`` ``(2B, 3)`` (cartoons, then fakes) of the discriminator step. ``fn`` returns
    ``{"g_total", "d_total"}``.

    Two iterations on a tiny generator and discriminators, from the same seed and weights as the reference
    (the recipe of :meth:`animescene.train.Trainer._adversarial_step`, which ``tests/test_checks.py`` ties
    to the trainer); the losses and the weights after both are compared. The optimizers are plain SGD, so
    that an update is proportional to its gradient and rounding stays small (Adam's first steps are
    about ``lr * sign(gradient)``, which hides the size of a gradient). A wrong answer is compared with
    the known slips, run the same way, and the one it matches is named.
    """
    what = "adversarial training iteration"
    try:
        got = _run_iterations(fn)
    except RuntimeError as err:
        if "backward through the graph a second time" in str(err):
            _report(False, what, "the discriminator loss backpropagates into the generator, whose graph the "
                    "generator step already freed: judge fake.detach() in the discriminator step")
        raise
    expected = _run_iterations(lambda p, b: _adversarial_iteration(p, b))
    start = _weights(_training_parts())
    if _same_run(got, expected, start):
        _report(True, what)
        return
    for hint, fault in _ITERATION_FAULTS:
        if _same_run(got, _run_iterations(lambda p, b, fault=fault: _adversarial_iteration(p, b, fault)), start):
            _report(False, what, hint)
    _report(False, what, _run_difference(got, expected))


_TRAINING_SIZE, _TRAINING_BATCH, _TRAINING_ITERATIONS = 16, 2, 2


def _training_parts(seed: int = 18):
    """Tiny networks with fixed weights, SGD optimizers, a random VGG and β ≠ White-box's defaults."""
    from types import SimpleNamespace

    from ..losses import Betas
    from ..models import PatchDiscriminator, UNetGenerator
    from ..vgg import VGGFeatures

    with torch.random.fork_rng(devices=[]):  # the student's notebook keeps its own random state
        torch.manual_seed(seed)
        parts = SimpleNamespace(generator=UNetGenerator(8, 1), disc_surface=PatchDiscriminator(3, 8),
                                disc_texture=PatchDiscriminator(1, 8), vgg=VGGFeatures("vgg16", "conv2_2", weights=None),
                                betas=Betas(content=2e4))
    parts.g_opt = torch.optim.SGD(parts.generator.parameters(), lr=0.05)
    parts.d_opt = torch.optim.SGD([*parts.disc_surface.parameters(), *parts.disc_texture.parameters()], lr=0.05)
    return parts


def _training_batches():
    """``_TRAINING_ITERATIONS`` batches: photos, cartoons, structure targets and colour-shift weights."""
    from types import SimpleNamespace

    from ..representations import sample_color_shift

    generator = torch.Generator().manual_seed(19)
    shape = (_TRAINING_BATCH, 3, _TRAINING_SIZE, _TRAINING_SIZE)
    batches = []
    for _ in range(_TRAINING_ITERATIONS):
        photo, cartoon = (torch.rand(shape, generator=generator) * 2 - 1 for _ in range(2))
        # a flat-coloured stand-in for F_sr(G(x)): a target is an input of the step, whatever computed it
        target = F.interpolate(F.avg_pool2d(photo, 4), scale_factor=4, mode="nearest")
        batches.append(SimpleNamespace(photo=photo, cartoon=cartoon, target=target,
                                       g_colors=sample_color_shift(_TRAINING_BATCH, generator),
                                       d_colors=sample_color_shift(2 * _TRAINING_BATCH, generator)))
    return batches


def _run_iterations(step) -> dict:
    """``step(parts, batch)`` on fresh parts for every batch: the returned losses and the final weights."""
    parts = _training_parts()
    losses = []
    for batch in _training_batches():
        values = step(parts, batch)
        if not isinstance(values, dict) or not {"g_total", "d_total"} <= set(values):
            raise AssertionError('adversarial training iteration: return {"g_total": ..., "d_total": ...}')
        losses.append([float(torch.as_tensor(values[name]).detach()) for name in ("g_total", "d_total")])
    return {"losses": torch.tensor(losses, dtype=torch.float64), "weights": _weights(parts)}


def _weights(parts) -> dict[str, torch.Tensor]:
    """Each network's parameters as one float64 vector."""
    return {name: torch.cat([p.detach().flatten() for p in getattr(parts, name).parameters()]).double()
            for name in ("generator", "disc_surface", "disc_texture")}


def _same_run(a: dict, b: dict, start: dict) -> bool:
    """Losses within 1e-5 (relative), and each network's weights within 1e-4 of its update from ``start``."""
    if not torch.allclose(a["losses"], b["losses"], rtol=1e-5, atol=1e-7):
        return False
    for name, w in a["weights"].items():
        update = (b["weights"][name] - start[name]).abs().max().item()
        if (w - b["weights"][name]).abs().max().item() > 1e-4 * max(update, 1e-12):
            return False
    return True


def _run_difference(got: dict, expected: dict) -> str:
    """Which losses and which networks differ, when no known slip matches."""
    names = {"generator": "the generator", "disc_surface": "the surface discriminator",
             "disc_texture": "the texture discriminator"}
    wrong = [names[n] for n, w in got["weights"].items() if not torch.allclose(w, expected["weights"][n], atol=1e-6)]
    rows = [f"iteration {i + 1}: yours g_total={g[0]:.6g}, d_total={g[1]:.6g}; reference {e[0]:.6g}, {e[1]:.6g}"
            for i, (g, e) in enumerate(zip(got["losses"].tolist(), expected["losses"].tolist()))]
    return f"weights differ in {', '.join(wrong) or 'no network'}; " + "; ".join(rows)


def _adversarial_iteration(parts, batch, fault: str | None = None) -> dict:
    """The recipe of ``Trainer._adversarial_step`` in plain PyTorch, or one known slip of it (``fault``)."""
    from ..filters import guided_filter
    from ..losses import Betas, GeneratorLoss, lsgan_d_loss
    from ..representations import color_shift, surface
    from ..train_config import TrainConfig

    eps = 5e-3 if fault == "inference eps" else TrainConfig().train_filter_eps
    g_loss = GeneratorLoss(Betas() if fault == "default betas" else parts.betas, vgg=parts.vgg)
    discriminators = (parts.disc_surface, parts.disc_texture)
    if fault == "zero_grad at the top":
        parts.g_opt.zero_grad()
        parts.d_opt.zero_grad()

    def render():
        output = parts.generator(batch.photo)
        return output if fault == "no filter" else guided_filter(batch.photo, output, 1, eps)

    def generator_step(fake):
        for disc in discriminators:  # the generator loss must not train the judges
            disc.requires_grad_(fault == "zero_grad at the top")
        if fault not in ("no zero_grad", "no g zero_grad", "zero_grad at the top"):
            parts.g_opt.zero_grad()
        terms = g_loss(batch.photo, fake, batch.target, *discriminators, batch.g_colors)
        terms["total"].backward()
        parts.g_opt.step()
        for disc in discriminators:
            disc.requires_grad_(True)
        return terms["total"]

    def discriminator_step(fake):
        if fault not in ("no zero_grad", "no d zero_grad", "zero_grad at the top"):
            parts.d_opt.zero_grad()
        count = batch.cartoon.shape[0]
        both = torch.cat([batch.cartoon, fake.detach()])
        if fault == "two passes":
            real_s, fake_s = (parts.disc_surface(surface(half)) for half in both.split(count))
            real_t, fake_t = (parts.disc_texture(color_shift(half, w))
                              for half, w in zip(both.split(count), batch.d_colors.split(count)))
        else:
            real_s, fake_s = parts.disc_surface(surface(both)).split(count)
            real_t, fake_t = parts.disc_texture(color_shift(both, batch.d_colors)).split(count)
        total = lsgan_d_loss(real_s, fake_s) + lsgan_d_loss(real_t, fake_t)
        total.backward()
        parts.d_opt.step()
        return total

    fake = render()
    if fault == "d first":
        d_total = discriminator_step(fake)
        g_total = generator_step(fake)
    else:
        g_total = generator_step(fake)
        d_total = discriminator_step(render() if fault == "fresh fakes" else fake)
    return {"g_total": g_total.detach(), "d_total": d_total.detach()}


_RECIPE = ("White-box's iteration: fake = guided_filter(x, G(x), 1, 1e-2); the generator step (zero_grad, "
           "backward, step) with the discriminators frozen; then the discriminator step on fake.detach()")


_ITERATION_FAULTS = [
    ("your update matches a discriminator step before the generator step: the recipe updates G first, then "
     f"judges that step's fakes. {_RECIPE}", "d first"),
    ("gradients accumulate from one iteration to the next: call zero_grad() on both optimizers before each "
     "backward", "no zero_grad"),
    ("the generator's gradients accumulate from one iteration to the next: g_opt.zero_grad() before the "
     "generator's backward", "no g zero_grad"),
    ("the discriminators' gradients accumulate from one iteration to the next: d_opt.zero_grad() before the "
     "discriminators' backward", "no d zero_grad"),
    ("the discriminators were also updated by the generator loss: its backward left gradients in them that "
     "the discriminator step added to its own. Freeze them for the generator step (requires_grad_(False)), "
     "or d_opt.zero_grad() right before the discriminator loss's backward", "zero_grad at the top"),
    ("your losses match White-box's default β (Betas()), not parts.betas: build GeneratorLoss(parts.betas, "
     "vgg=parts.vgg)", "default betas"),
    ("your fakes match the inference filter, eps=5e-3: training filters with eps=1e-2 "
     "(TrainConfig.train_filter_eps)", "inference eps"),
    ("your fakes are G(x) itself: training judges guided_filter(x, G(x), 1, 1e-2), which puts the photo's "
     "edges back", "no filter"),
    ("each discriminator judged the cartoons and the fakes in two forward passes: judge cat([cartoon, "
     "fake.detach()]) in one (spectral norm does one power iteration per pass, and DDP wants one pass)",
     "two passes"),
    ("your discriminator step judged fakes recomputed after the generator's update: the recipe judges the "
     "fakes of this iteration's generator step, detached (one generator forward instead of two)", "fresh fakes"),
]
