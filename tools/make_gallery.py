"""Write the course's key figures as PNG files, so that a reader sees them before running anything.

    .venv/bin/python tools/make_gallery.py [--out docs/gallery] [--quick]

Notebooks are stored without outputs; these pictures stand in for them on GitHub. Every figure is made
by one function, with the library only, on the course photos (Kodak from the shared data folder, else
scikit-image's):

- ``before_after.png``: photos and their cartoons with the official White-box weights (the README);
- ``representations.png``: one photo's surface, structure and texture representations (lessons 02, 03);
- ``guided_filter_eps.png``: the self-guided filter at several eps (lesson 01);
- ``receptive_field.png``: which input pixels one output pixel of the generator depends on (lesson 04);
- ``loss_curves.png``: the losses of a short real training run on the demo set (lesson 06).

``--quick`` makes tiny figures, with random generator weights when the official ones are not downloaded
(for tests). Each file is written atomically (a temporary name, then a rename).
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the script only writes files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from animescene.data import example_photos  # noqa: E402
from animescene.demo_set import make_demo_set  # noqa: E402
from animescene.filters import guided_filter  # noqa: E402
from animescene.images import atomic_output, to_uint8  # noqa: E402
from animescene.inference import Cartoonizer  # noqa: E402
from animescene.models import UNetGenerator  # noqa: E402
from animescene.representations import structure, surface, texture  # noqa: E402
from animescene.train import TrainConfig, Trainer  # noqa: E402
from animescene.weights import MissingWeightsError  # noqa: E402

MAX_BYTES = 250_000  # a figure larger than this is stored with a 256-colour palette
DPI = 100


def _generator(quick: bool) -> UNetGenerator:
    """The official generator; in quick mode a random one when the official weights are not downloaded."""
    try:
        return UNetGenerator.from_weights("official")
    except MissingWeightsError:
        if not quick:
            raise
        return UNetGenerator().eval()


def _image(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` or ``(1, H, W)`` tensor in [-1, 1] -> ``(H, W, 3)`` uint8 for ``imshow``."""
    return to_uint8(x.expand(3, -1, -1))


def _save(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically; a palette PNG when the full-colour one would be too large."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    image = Image.open(buffer).convert("RGB")
    with atomic_output(path) as tmp:
        image.save(tmp, optimize=True)
        if tmp.stat().st_size > MAX_BYTES:  # photos do not compress losslessly
            # dithered: a plain 256-colour palette bands smooth areas, which would look like a cartoon effect
            palette = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
            image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(tmp, optimize=True)
    return path


def before_after(out: Path, quick: bool = False) -> Path:
    """Course photos (top) and their cartoons with the official weights (bottom)."""
    count, size = (2, 64) if quick else (3, 256)  # 3 photos: dithered photo pixels cost ~0.6 B each
    photos, names = example_photos(count, size)
    cartoons = Cartoonizer(_generator(quick), device="cpu")(photos)
    fig, axes = plt.subplots(2, count, figsize=(2.8 * count, 6.0), squeeze=False)  # panels near full size
    for column, name in enumerate(names):
        for row, (batch, label) in enumerate(((photos, "photo"), (cartoons, "cartoon"))):
            axes[row, column].imshow(_image(batch[column]))
            axes[row, column].set_title(f"{label}: {name}", fontsize=9)
            axes[row, column].axis("off")
    fig.suptitle(f"White-box cartoonization, official weights ({size}x{size} px crops)")
    fig.tight_layout()
    return _save(fig, out / "before_after.png")


def representations(out: Path, quick: bool = False) -> Path:
    """One photo and its three representations: surface, structure, texture."""
    photos, names = example_photos(1, 64 if quick else 256)
    panels = [
        ("photo", photos[0]),
        ("surface: guided filter r=5, eps=0.2", surface(photos)[0]),
        ("structure: flat regions", structure(photos, segments=20 if quick else 200)[0]),
        ("texture: random colour shift", texture(photos, torch.Generator().manual_seed(0))[0]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.2))
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(_image(image))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"The three representations White-box learns from ({names[0]})")
    fig.tight_layout()
    return _save(fig, out / "representations.png")


def guided_filter_eps(out: Path, quick: bool = False) -> Path:
    """The self-guided filter (r=5) at growing eps: edges survive while flat areas smooth out."""
    photos, names = example_photos(1, 64 if quick else 256)
    epses = (1e-3, 1e-2, 5e-2, 0.2)
    fig, axes = plt.subplots(1, len(epses) + 1, figsize=(13, 3.2))
    axes[0].imshow(_image(photos[0]))
    axes[0].set_title("photo", fontsize=9)
    for ax, eps in zip(axes[1:], epses):
        ax.imshow(_image(guided_filter(photos, photos, 5, eps).clamp(-1, 1)[0]))
        ax.set_title(f"r=5, eps={eps:g}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"Self-guided filter on [-1, 1] data ({names[0]}): larger eps smooths more")
    fig.tight_layout()
    return _save(fig, out / "guided_filter_eps.png")


def receptive_field(out: Path, quick: bool = False) -> Path:
    """|d output / d input| of the generator for one output pixel near the centre, and its support.

    The support's width depends on the pixel's position modulo 8 (three stride-2 stages), so the figure
    shows the widest of the eight positions.
    """
    size = 64 if quick else 256
    photos, names = example_photos(1, size)
    generator = _generator(quick)
    widest = None
    for offset in range(8):
        centre = size // 2 + offset
        photo = photos.clone().requires_grad_(True)  # a copy: the input batch is left as it was
        generator(photo)[0, :, centre, centre].sum().backward()
        influence = photo.grad[0].abs().sum(0).numpy()
        rows, cols = np.nonzero(influence)
        width = cols.max() - cols.min() + 1
        if widest is None or width > widest[0]:
            widest = (width, centre, influence, rows, cols)
    width, centre, influence, rows, cols = widest
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    axes[0].imshow(_image(photos[0]))
    axes[0].add_patch(plt.Rectangle((cols.min() - 0.5, rows.min() - 0.5), width, rows.max() - rows.min() + 1,
                                    fill=False, color="yellow", linewidth=1.5))
    axes[0].plot(centre, centre, "r+", markersize=10)
    axes[0].set_title(f"photo ({names[0]}); box: receptive field", fontsize=9)
    shown = axes[1].imshow(np.log10(influence + influence.max() * 1e-6), cmap="magma")
    axes[1].set_title(f"log10 |gradient| of output pixel ({centre}, {centre})", fontsize=9)
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    fig.suptitle(f"Generator receptive field: up to {width} px wide on a {size} px input")
    fig.tight_layout()
    return _save(fig, out / "receptive_field.png")


def loss_curves(out: Path, quick: bool = False) -> Path:
    """Losses of a short real training run: the demo set, pretraining then adversarial steps."""
    pretrain, steps, size = (1, 2, 32) if quick else (10, 20, 128)  # steps: the adversarial ones
    with tempfile.TemporaryDirectory() as scratch:
        demo = Path(scratch) / "demo"
        make_demo_set(demo, short_side=2 * size)
        config = TrainConfig(
            photo_dirs=[str(demo / "photos")], cartoon_dirs=[str(demo / "cartoons")],
            size=size, batch_size=4, pretrain_steps=pretrain, steps=steps, num_workers=0, structure_workers=0,
            device="cpu", out_dir=str(Path(scratch) / "run"), log_every=1, sample_every=0, checkpoint_every=0,
            **({"channels": 8, "num_blocks": 1, "segments": 20} if quick else {}),
        )
        started = time.perf_counter()
        Trainer(config).fit()
        minutes = (time.perf_counter() - started) / 60
        with open(Path(config.out_dir) / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))

    def column(name: str, phase: str) -> tuple[list[int], list[float]]:
        picked = [row for row in rows if row["phase"] == phase and row[name] not in ("", None)]
        return [int(row["step"]) for row in picked], [float(row[name]) for row in picked]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(*column("recon", "pretrain"), "o-", label="pretraining: L1 reconstruction")
    for name in ("g_total", "d_total"):
        axes[0].plot(*column(name, "adversarial"), "o-", label=f"adversarial: {name}")
    axes[0].set_title("total losses", fontsize=10)
    for name in ("surface", "structure", "texture", "content", "tv"):
        axes[1].plot(*column(name, "adversarial"), ".-", label=name)
    axes[1].set_yscale("log")
    axes[1].set_title("generator loss terms (unweighted)", fontsize=10)
    for ax in axes:
        ax.axvline(pretrain + 0.5, color="gray", linestyle=":")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    fig.suptitle(f"A SHORT run: {pretrain + steps} steps ({pretrain} pretraining) at {size} px, batch 4, demo set, "
                 f"{minutes:.1f} min on CPU (a real run is 150,000 steps)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out / "loss_curves.png")


FIGURES = (before_after, representations, guided_filter_eps, receptive_field, loss_curves)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="folder of the PNG files")
    parser.add_argument("--quick", action="store_true", help="tiny figures, random weights if need be (tests)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    for make in FIGURES:
        started = time.perf_counter()
        path = make(args.out, quick=args.quick)
        print(f"{path}  {path.stat().st_size / 1000:.0f} kB  {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
