"""The β widget, driven headless: set widget values, read the images and loss terms it shows."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("ipywidgets")

from animescene.app import BetaApp  # noqa: E402
from animescene.models import UNetGenerator  # noqa: E402


@pytest.fixture
def app():
    torch.manual_seed(0)
    generator = UNetGenerator(channels=8, num_blocks=1)
    photos = torch.rand(2, 3, 32, 32) * 2 - 1
    cartoons = torch.rand(3, 3, 32, 32) * 2 - 1
    return BetaApp(generator, photos, cartoons, steps=2, lr=1e-2, vgg_weights=None, device="cpu"), generator


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_run_shows_before_after_and_every_term(app):
    app, _ = app
    terms = app.run()
    assert set(terms) == {"tv", "surface", "structure", "texture", "content", "total"}
    assert _pixels(app.before.value).shape == _pixels(app.after.value).shape == (32, 32, 3)
    assert not np.array_equal(_pixels(app.before.value), _pixels(app.after.value))
    for label in ("β1 tv", "β5 content", "total"):
        assert label in app.table.value


def test_moving_a_slider_refits_and_changes_the_after_view(app):
    app, _ = app
    app.run()
    before, after = app.before.value, app.after.value
    app.sliders["tv"].value = 1e6  # observers re-run the fine-tuning
    assert app.before.value == before
    assert app.after.value != after
    assert app.betas()["tv"] == pytest.approx(1e6)


def test_switching_a_term_off_sets_its_beta_to_zero(app):
    app, _ = app
    app.switches["texture"].value = False
    assert app.betas()["texture"] == 0.0
    assert "<td>β4 texture</td><td>0</td>" in app.table.value


def test_the_starting_generator_is_left_untouched(app):
    app, generator = app
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    app.run()
    for key, value in generator.state_dict().items():
        assert torch.equal(value, state[key]), key
