"""tools/make_gallery.py: every figure is written, opens as a PNG of a readable size, and is not blank;
the generator diagram is read from the model; a figure without its data is skipped, not half drawn."""

import importlib.util
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image, ImageFilter

from animescene.data import example_photos
from animescene.images import to_uint8
from animescene.models import UNetGenerator

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "make_gallery.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_gallery", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gallery = _load_script()


# the figures that need the course's shared data folder (the video figure films a Big Buck Bunny frame)
NEEDS_DATA = {"video_stabilisation": gallery.bunny_frame() is None}


@pytest.fixture(scope="module")
def quick_gallery(tmp_path_factory):
    """All figures in quick mode (conftest turns smoke mode on: random VGG when none is downloaded)."""
    out = tmp_path_factory.mktemp("gallery")
    written = gallery.main(["--quick", "--out", str(out)])
    assert sorted(written) == sorted(out.glob("*.png"))
    return out


def test_gallery_writes_exactly_its_figures_and_no_temporary_files(quick_gallery):
    written = sorted(path.name for path in quick_gallery.iterdir())  # hidden .partial files included
    expected = [f"{make.__name__}.png" for make in gallery.FIGURES if not NEEDS_DATA.get(make.__name__)]
    assert written == sorted(expected)


@pytest.mark.parametrize("make", gallery.FIGURES, ids=lambda make: make.__name__)
def test_each_figure_is_a_readable_non_blank_png(quick_gallery, make):
    if NEEDS_DATA.get(make.__name__):
        pytest.skip(f"{gallery.BUNNY_FRAME} is not in the shared data folder")
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


def test_the_generator_diagram_reads_every_layer_and_its_shape_from_the_model():
    generator = UNetGenerator(tf_mode=True, bounded=False)
    layers = gallery._layers(generator, 256)
    names = [name for name, *_ in layers]
    assert names == ["head", "down1", "conv1", "down2", "conv2", "blocks.0", "blocks.1", "blocks.2", "blocks.3",
                     "reduce", "up1a", "up1b", "up2", "tail"]  # the order of the forward pass
    shapes = {name: shape_out for name, _, _, shape_out in layers}
    assert shapes["head"] == (32, 256, 256) and shapes["conv2"] == (128, 64, 64) and shapes["tail"] == (3, 256, 256)
    assert dict((name, shape_in) for name, _, shape_in, _ in layers)["down1"] == (32, 257, 257)  # TF's padding
    assert sum(sum(p.numel() for p in module.parameters()) for _, module, _, _ in layers) == 1_467_075
    # another width and depth: the layers follow the model, nothing is written down
    assert len(gallery._layers(UNetGenerator(channels=8, num_blocks=2), 64)) == 12


def test_a_figure_without_its_data_is_skipped_and_the_others_are_drawn(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gallery, "bunny_frame", lambda: None)
    monkeypatch.setattr(gallery, "FIGURES", (gallery.video_stabilisation, gallery.generator_diagram))
    written = gallery.main(["--quick", "--out", str(tmp_path)])
    assert written == [tmp_path / "generator_diagram.png"]
    assert "video_stabilisation: skipped: no cartoon/bigbuckbunny" in capsys.readouterr().out
