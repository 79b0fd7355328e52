"""tools/make_gallery.py: every figure is written, opens as a PNG of a readable size, and is not blank."""

import importlib.util
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image, ImageFilter

from animescene.data import example_photos
from animescene.images import to_uint8

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "make_gallery.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_gallery", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gallery = _load_script()


@pytest.fixture(scope="module")
def quick_gallery(tmp_path_factory):
    """All figures in quick mode (conftest turns smoke mode on: random VGG when none is downloaded)."""
    out = tmp_path_factory.mktemp("gallery")
    gallery.main(["--quick", "--out", str(out)])
    return out


def test_gallery_writes_exactly_its_figures_and_no_temporary_files(quick_gallery):
    written = sorted(path.name for path in quick_gallery.iterdir())  # hidden .partial files included
    assert written == sorted(f"{make.__name__}.png" for make in gallery.FIGURES)


@pytest.mark.parametrize("make", gallery.FIGURES, ids=lambda make: make.__name__)
def test_each_figure_is_a_readable_non_blank_png(quick_gallery, make):
    path = quick_gallery / f"{make.__name__}.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert 400 <= width <= 1600 and 250 <= height <= 800, (width, height)
    assert path.stat().st_size <= gallery.MAX_BYTES
    # a white canvas with only titles has std around 20-30; an image or curves add far more contrast
    assert pixels.std() > 30, pixels.std()


def test_large_photo_figures_are_stored_as_a_close_palette_png(tmp_path):
    photos, _ = example_photos(1, 512)
    array = to_uint8(photos[0])

    def figure():
        fig, ax = plt.subplots(figsize=(8, 8))
        ax.imshow(array)
        ax.axis("off")
        return fig

    reference = io.BytesIO()  # the full-colour rendering, as matplotlib writes it
    figure().savefig(reference, format="png", dpi=gallery.DPI)
    plt.close("all")
    assert len(reference.getvalue()) > gallery.MAX_BYTES  # the case the palette exists for

    path = gallery._save(figure(), tmp_path / "photo.png")
    with Image.open(path) as saved, Image.open(reference) as full:
        assert saved.mode == "P"
        # dithering trades per-pixel error for right local means: compare 5x5 box averages
        local = [np.asarray(im.convert("RGB").filter(ImageFilter.BoxBlur(2)), float) for im in (saved, full)]
    assert path.stat().st_size <= gallery.MAX_BYTES
    assert np.abs(local[0] - local[1]).mean() < 1.5, np.abs(local[0] - local[1]).mean()


def test_small_figures_keep_full_colour(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [3, 1, 2])
    path = gallery._save(fig, tmp_path / "plot.png")
    with Image.open(path) as saved:
        assert saved.mode == "RGB"
