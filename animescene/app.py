"""The β widget of lesson 07: move β1..β5, fine-tune a copy of the generator, compare before and after.

``BetaApp(generator, photos, cartoons).widget`` is an ipywidgets box: one log-scale slider and an on/off
switch per loss weight, a step count, a photo picker, the photo's cartoon before and after fine-tuning
(``ipywidgets.Image`` views, updated by callbacks), and the value of every loss term at the last step.
Changing a control re-runs the fine-tuning. Everything is reachable from Python, so a test (or a
notebook cell) can set ``app.sliders["tv"].value`` and read ``app.after.value`` without a browser.
"""

from __future__ import annotations

import io
import math
import tempfile
import time

import torch
from torch.utils.data import Dataset

from .filters import post_process
from .images import to_uint8
from .losses import Betas, GeneratorLoss
from .models import UNetGenerator
from .train import TrainConfig, Trainer

_LABELS = {"tv": "β1 tv", "surface": "β2 surface", "structure": "β3 structure", "texture": "β4 texture",
           "content": "β5 content"}


class PhotoCartoonPairs(Dataset):
    """``(photo, cartoon)`` pairs from two in-memory batches: item ``i`` is photo ``i % P`` with cartoon
    ``i % C``. Deterministic in the index, as :class:`animescene.train.Trainer` needs."""

    def __init__(self, photos: torch.Tensor, cartoons: torch.Tensor):
        self.photos, self.cartoons = photos, cartoons

    def __len__(self) -> int:
        return max(len(self.photos), len(self.cartoons))

    def __getitem__(self, index: int):
        return self.photos[index % len(self.photos)], self.cartoons[index % len(self.cartoons)]


class BetaApp:
    """Fine-tune a copy of ``generator`` on one photo with chosen β and show the effect.

    Args:
        generator: the starting :class:`UNetGenerator` (left untouched; each run starts from it).
        photos: ``(P, 3, S, S)`` photos in [-1, 1]; the picker chooses one to fine-tune on.
        cartoons: ``(C, 3, S, S)`` cartoon images for the two discriminators.
        steps: initial number of fine-tuning steps.
        lr: Adam's learning rate for the fine-tuning.
        vgg_weights: see :class:`animescene.vgg.VGGFeatures` (``"auto"`` uses the pretrained VGG16;
            ``None``, a random VGG, is accepted in smoke mode only, like every training run).
        device: ``"auto"`` or a torch device.
        auto_run: re-run when a control changes (else only the button runs).
    """

    def __init__(self, generator: UNetGenerator, photos: torch.Tensor, cartoons: torch.Tensor, *, steps: int = 20,
                 lr: float = 1e-4, vgg_weights="auto", device="auto", auto_run: bool = True):
        import ipywidgets as widgets

        self.base_state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
        self.generator_config = generator.config()
        self.photos, self.cartoons = photos.float().cpu(), cartoons.float().cpu()
        self.lr, self.vgg_weights, self.device = lr, vgg_weights, device
        self.terms: dict[str, float] = {}
        defaults = Betas().as_dict()
        self.sliders = {
            name: widgets.FloatLogSlider(value=value, base=10, min=math.log10(value) - 3, max=math.log10(value) + 2,
                                         step=0.1, description=_LABELS[name], continuous_update=False,
                                         readout_format=".2g")
            for name, value in defaults.items()
        }
        self.switches = {name: widgets.Checkbox(value=True, description="on", indent=False) for name in defaults}
        self.steps = widgets.IntSlider(value=steps, min=1, max=500, description="steps", continuous_update=False)
        self.photo = widgets.Dropdown(options=[(f"photo {i}", i) for i in range(len(photos))], value=0,
                                      description="photo")
        self.button = widgets.Button(description="Fine-tune", button_style="primary")
        # one display size for both views: small photos are scaled up, and before/after line up
        self.before = widgets.Image(format="png", width=256)
        self.after = widgets.Image(format="png", width=256)
        self.table = widgets.HTML()
        self.status = widgets.Label()
        rows = [widgets.HBox([self.sliders[n], self.switches[n]]) for n in defaults]
        views = widgets.HBox([
            widgets.VBox([widgets.Label("before (starting generator)"), self.before],
                         layout=widgets.Layout(margin="0 16px 0 0")),
            widgets.VBox([widgets.Label("after fine-tuning"), self.after]),
        ])
        self.widget = widgets.VBox([*rows, widgets.HBox([self.steps, self.photo, self.button]), self.status, views,
                                    self.table])
        # stable CSS classes, so a browser test (tests/e2e) can find the controls and views
        self.widget.add_class("animescene-beta-app")
        self.before.add_class("animescene-before")
        self.after.add_class("animescene-after")
        for name in defaults:
            self.sliders[name].add_class(f"animescene-beta-{name}")
            self.switches[name].add_class(f"animescene-switch-{name}")
        self.button.on_click(lambda _: self.run())
        self.photo.observe(lambda _: self._show_before(), names="value")
        if auto_run:
            for control in [*self.sliders.values(), *self.switches.values(), self.steps, self.photo]:
                control.observe(lambda _: self.run(), names="value")
        self._show_before()

    def betas(self) -> dict[str, float]:
        """The β the controls show, 0 for a switched-off term."""
        return {name: slider.value if self.switches[name].value else 0.0 for name, slider in self.sliders.items()}

    def run(self) -> dict[str, float]:
        """Fine-tune a fresh copy for ``steps`` steps with the current β; update the views; return the terms."""
        started = time.perf_counter()
        self.status.value = f"fine-tuning for {self.steps.value} steps..."
        photo = self.photos[self.photo.value : self.photo.value + 1]
        with tempfile.TemporaryDirectory() as out_dir:
            config = TrainConfig(
                size=photo.shape[-1], batch_size=1, pretrain_steps=0, steps=self.steps.value, lr=self.lr,
                betas=self.betas(), structure_workers=0, num_workers=0, vgg_weights=self.vgg_weights,
                device=self.device, out_dir=out_dir, log_every=0, sample_every=0, checkpoint_every=0,
                **self.generator_config,
            )
            trainer = Trainer(config, dataset=PhotoCartoonPairs(photo, self.cartoons))
            trainer.generator.load_state_dict(self.base_state)
            last = trainer.fit()
        self.terms = {name: last[name] for name in GeneratorLoss.TERMS}
        self.terms["total"] = last["g_total"]
        self.after.value = _png(_cartoonize(trainer.generator, photo))
        self.table.value = _terms_table(self.terms, self.betas())
        self.status.value = f"done: {self.steps.value} steps in {time.perf_counter() - started:.1f} s"
        return self.terms

    def _show_before(self) -> None:
        generator = UNetGenerator(**self.generator_config)
        generator.load_state_dict(self.base_state)
        self.before.value = _png(_cartoonize(generator, self.photos[self.photo.value : self.photo.value + 1]))


def _cartoonize(generator: torch.nn.Module, photo: torch.Tensor) -> torch.Tensor:
    device = next(generator.parameters()).device
    generator.eval()
    with torch.no_grad():
        x = photo.to(device)
        return post_process(x, generator(x)).cpu()


def _png(image: torch.Tensor) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="png")
    return buffer.getvalue()


def _terms_table(terms: dict[str, float], betas: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{_LABELS[name]}</td><td>{betas[name]:.3g}</td><td>{terms[name]:.4g}</td>"
        f"<td>{betas[name] * terms[name]:.4g}</td></tr>"
        for name in GeneratorLoss.TERMS
    )
    return (
        "<table><tr><th>term</th><th>β</th><th>value</th><th>β × value</th></tr>"
        f"{rows}<tr><td><b>total</b></td><td></td><td></td><td><b>{terms['total']:.4g}</b></td></tr></table>"
    )
