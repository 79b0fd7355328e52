"""Write the course's key figures as PNG files, so that a reader sees them before running anything.

    .venv/bin/python tools/make_gallery.py [--out docs/gallery] [--quick]

Notebooks are stored without outputs; these pictures stand in for them on GitHub. Every figure is made
by one function, with the library only, on the course photos (Kodak from the shared data folder, else
scikit-image's):

- ``before_after.png``: photos and their cartoons with the official White-box weights (the README);
- ``representations.png``: one photo's surface, structure and texture representations (lessons 02, 03);
- ``guided_filter_eps.png``: the self-guided filter at several eps (lesson 01);
- ``receptive_field.png``: which input pixels one output pixel of the generator depends on (lesson 04);
- ``generator_diagram.png``: the UNet generator's layers with their output shapes and parameter counts,
  read from the model by forward hooks (lesson 04);
- ``loss_curves.png``: the losses of a short real training run on the demo set (lesson 06);
- ``video_stabilisation.png``: consecutive frames of a camera move over a Big Buck Bunny frame, their
  per-frame cartoons and the temporally stabilised ones (lesson 09).

``--quick`` makes tiny figures, with random generator weights when the official ones are not downloaded
(for tests). A figure whose data or weights are missing is skipped with the reason (the others are still
drawn). Each file is written atomically (a temporary name, then a rename).
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
import torch.nn as nn  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from animescene.data import example_photos  # noqa: E402
from animescene.demo_set import make_demo_set  # noqa: E402
from animescene.filters import guided_filter  # noqa: E402
from animescene.images import atomic_output, to_uint8  # noqa: E402
from animescene.inference import Cartoonizer  # noqa: E402
from animescene.models import ResBlock, UNetGenerator  # noqa: E402
from animescene.representations import structure, surface, texture  # noqa: E402
from animescene.runtime import shared_data_dir  # noqa: E402
from animescene.temporal import camera_move, warp, warping_error  # noqa: E402
from animescene.train import TrainConfig, Trainer  # noqa: E402
from animescene.weights import MissingWeightsError  # noqa: E402

MAX_BYTES = 250_000  # a figure larger than this is stored with a 256-colour palette
DPI = 100
BUNNY_FRAME = "cartoon/bigbuckbunny/bbb_f0012.png"  # in the shared data folder: grass, a tree, a hill
BUNNY_CREDIT = "Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC BY 3.0"


class Skipped(Exception):
    """A figure that cannot be drawn on this machine (its data or weights are missing); says why."""


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


def _layers(generator: nn.Module, size: int) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """The generator's layers in the order they run on a ``size`` x ``size`` photo, read by forward hooks.

    A layer is a direct child of the generator, or a child of a ``Sequential`` one (the residual blocks).
    Returns ``(name, module, input shape, output shape)`` per layer, shapes without the batch.
    """
    layers = []

    def record(name):
        def hook(module, inputs, output):  # returns None: the output goes on unchanged
            layers.append((name, module, tuple(inputs[0].shape[1:]), tuple(output.shape[1:])))
        return hook

    named = []
    for name, child in generator.named_children():
        named += ([(f"{name}.{inner}", grandchild) for inner, grandchild in child.named_children()]
                  if isinstance(child, nn.Sequential) else [(name, child)])
    hooks = [module.register_forward_hook(record(name)) for name, module in named]
    try:
        with torch.no_grad():
            generator(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return layers


def _kernel(module: nn.Module) -> str:
    """What a layer computes, in a few characters: ``3x3 /2`` for a stride-2 conv, ``res: 2 x 3x3``."""
    if isinstance(module, ResBlock):
        return "x + 2 convs"
    if isinstance(module, nn.Conv2d):
        k, stride = module.kernel_size[0], module.stride[0]
        return f"{k}x{k}" + (f" /{stride}" if stride > 1 else "")
    return type(module).__name__


def generator_diagram(out: Path, quick: bool = False) -> Path:
    """The UNet generator drawn from the real model: each layer with its output shape at 256 x 256
    (forward hooks) and its parameter count; arrows for downsampling, upsampling and the skips."""
    size = 64 if quick else 256
    generator = _generator(quick)
    layers = _layers(generator, size)
    total = sum(p.numel() for p in generator.parameters())
    params = {name: sum(p.numel() for p in module.parameters()) for name, module, _, _ in layers}
    assert sum(params.values()) == total, "a parameter sits outside the hooked layers"

    # column: the order of execution; row: the resolution, from each output's height
    level = {name: int(round(np.log2(size / shape_out[1]))) for name, _, _, shape_out in layers}
    x, position, previous = 0.0, {}, None
    for name, _, _, _ in layers:
        if previous is not None:
            x += 1.9 if level[name] < level[previous] else 1.3  # room for the "+" of a skip
        position[name], previous = (x, -1.75 * level[name]), name
    # a decoder layer whose input has the shape of an earlier output at its level reads that output + skip
    skips = {}
    for index, (name, _, shape_in, _) in enumerate(layers):
        if index and level[name] < level[layers[index - 1][0]]:
            skips[name] = next(source for source, _, _, shape_out in reversed(layers[:index])
                               if shape_out == shape_in and level[source] == level[name])

    fig, ax = plt.subplots(figsize=(16, 5.4))
    w, h = 1.05, 0.95
    colours = {0: "#cfe2f3", 1: "#d9ead3", 2: "#fce5cd"}

    def arrow(a, b, colour="k"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, lw=1, color=colour,
                                     shrinkA=0, shrinkB=0))

    for name, module, _, shape_out in layers:
        cx, cy = position[name]
        block = isinstance(module, ResBlock)
        ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, ec="k", lw=0.8,
                               fc="#f4cccc" if block else colours.get(level[name], "#eeeeee")))
        label = f"res block {name.split('.')[-1]}" if block else name
        ax.text(cx, cy + 0.18, f"{label}\n{_kernel(module)}", ha="center", va="center", fontsize=8)
        ax.text(cx, cy - 0.3, f"{params[name]:,}", ha="center", va="center", fontsize=8, color="firebrick")
        ax.text(cx, cy - h / 2 - 0.07, "x".join(map(str, shape_out)), ha="center", va="top", fontsize=8,
                color="dimgray")
    for (a, *_), (b, *_) in zip(layers, layers[1:]):
        (xa, ya), (xb, yb) = position[a], position[b]
        if b in skips:  # bilinear x2, then + the skip
            plus = (xb - w / 2 - 0.3, yb)
            arrow((xa + w / 2, ya), (plus[0] - 0.1, plus[1] - 0.12), colour="tab:blue")
            ax.text(plus[0] - 0.05, (ya + yb) / 2 - 0.1, "bilinear\nx2", fontsize=8, color="tab:blue", ha="right")
            ax.text(*plus, "+", ha="center", va="center", fontsize=15, fontweight="bold")
            arrow((plus[0] + 0.13, yb), (xb - w / 2, yb))
            (xs, ys) = position[skips[b]]
            top = ys + h / 2 + 0.3
            ax.plot([xs, xs, plus[0]], [ys + h / 2, top, top], color="tab:green", lw=1.2)
            arrow((plus[0], top), (plus[0], yb + 0.17), colour="tab:green")
            ax.text((xs + plus[0]) / 2, top + 0.05, f"skip: the output of {skips[b]}", color="tab:green",
                    ha="center", va="bottom", fontsize=8)
        elif yb < ya:  # a stride-2 conv: down one level
            arrow((xa + w / 2, ya - h / 4), (xb - w / 4, yb + h / 2))
        else:
            arrow((xa + w / 2, ya), (xb - w / 2, yb))
    for row in sorted(set(level.values())):
        ax.text(-1.0, -1.75 * row, f"1/{2 ** row} size" if row else "full size", ha="right", va="center",
                fontsize=10, color="dimgray")
    first, last = position[layers[0][0]], position[layers[-1][0]]
    ax.text(last[0] + w / 2 + 0.1, last[1], "RGB\nout", fontsize=9, va="center")
    ax.text(first[0] - w / 2 - 0.1, first[1] + 0.75, "RGB in", fontsize=9, ha="center")
    blocks = sum(count for name, count in params.items() if name.startswith("blocks"))
    bottom = -1.75 * max(level.values())
    ax.text((first[0] + last[0]) / 2, bottom - h / 2 - 0.45,
            "in each box: layer, kernel (/2: stride 2), parameters (red); below: output channels x height x width. "
            "res block: x + conv2(lrelu(conv1(x))), two 3x3 convs",
            ha="center", va="top", fontsize=9)
    ax.set(xlim=(-2.3, last[0] + 1.2), ylim=(bottom - 1.0, 1.2), aspect="equal")
    ax.axis("off")
    ax.set_title(f"White-box's UNet generator, read from the model: {total:,} parameters, "
                 f"{100 * blocks / total:.0f} % in the residual blocks; shapes for a {size}x{size} photo.\n"
                 "LeakyReLU(0.2) after every conv but the residual blocks' second and the last", fontsize=11)
    fig.tight_layout()
    return _save(fig, out / "generator_diagram.png")


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


def bunny_frame() -> Path | None:
    """The Big Buck Bunny frame the video figure films, or None where the shared data folder lacks it."""
    shared = shared_data_dir()
    path = shared / BUNNY_FRAME if shared is not None else None
    return path if path is not None and path.is_file() else None


def video_stabilisation(out: Path, quick: bool = False) -> Path:
    """Consecutive frames of a camera move over a Big Buck Bunny frame, per-frame and stabilised cartoons.

    The clip is made as in lesson 09 (:func:`animescene.temporal.camera_move`: a pan and zoom with sensor
    noise and exposure drift, whose exact flow is known), written as H.264 and cartoonized twice by
    ``Cartoonizer.cartoonize_video``: frame by frame, and with the temporal stabiliser. The last column
    shows how much each row changes along the motion from one frame to the next (E_warp's pixels).
    """
    import av

    source = bunny_frame()
    if source is None:
        raise Skipped(f"no {BUNNY_FRAME} in the shared data folder ({shared_data_dir()})")
    frames, size, shown = (5, (64, 96), 3) if quick else (10, (192, 288), 3)
    still = Image.open(source).convert("RGB")
    height = round(1.1 * size[0])  # the frame fills the view, with room for the pan and the zoom
    still = np.asarray(still.resize((round(still.width * height / still.height), height), Image.LANCZOS))
    clip, flows, masks = camera_move(still, frames, size, pan=2.0, zoom=0.01, noise=0.02, drift=0.04)
    cartoonizer = Cartoonizer(_generator(quick), device="cpu")
    rows = {"input": clip}
    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "clip.mp4"
        with av.open(str(src), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
            for frame in clip:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        for temporal, label in ((False, "per-frame cartoon"), (True, "stabilised cartoon")):
            path = cartoonizer.cartoonize_video(src, Path(scratch) / f"{label}.mp4", progress=False, temporal=temporal)
            with av.open(str(path)) as container:
                rows[label] = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert all(len(row) == frames for row in rows.values())

    first = frames - shown  # the last frames: the stabiliser has had a few frames to settle
    fig, axes = plt.subplots(len(rows), shown + 1, figsize=(2.5 * (shown + 1) + 0.6, 6.2), squeeze=False,
                             layout="constrained")
    last = frames - 1
    for row, (label, images) in enumerate(rows.items()):
        e_warp = np.mean([warping_error(a, b, f, m) for a, b, f, m in zip(images[:-1], images[1:], flows, masks)])
        for column, t in enumerate(range(first, frames)):
            ax = axes[row, column]
            ax.imshow(images[t])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {t}", fontsize=10)
        axes[row, 0].set_ylabel(f"{label}\nE_warp {e_warp:.4f}", fontsize=10)
        change = np.abs(images[last].astype(np.float32) - warp(images[last - 1].astype(np.float32), flows[-1]))
        heat = axes[row, shown].imshow(change.mean(-1) * masks[-1], cmap="inferno", vmin=0, vmax=40)
        axes[row, shown].set_xticks([])
        axes[row, shown].set_yticks([])
        if row == 0:
            axes[row, shown].set_title(f"|frame {last} - frame {last - 1} moved|", fontsize=10)
    fig.colorbar(heat, ax=axes[:, shown], fraction=0.08, label="change along the motion (grey levels)")
    fig.suptitle("Video: each frame cartoonized on its own flickers; the temporal stabiliser blends the previous "
                 "cartoon\nwarped along the optical flow (E_warp: mean squared change along the motion, lower is "
                 "steadier)", fontsize=11)
    fig.supxlabel(f"A virtual camera pans and zooms over one frame of {BUNNY_CREDIT}, "
                  "with sensor noise and exposure drift; H.264", fontsize=8)
    return _save(fig, out / "video_stabilisation.png")


FIGURES = (before_after, representations, guided_filter_eps, receptive_field, generator_diagram, loss_curves,
           video_stabilisation)


def main(argv=None) -> list[Path]:
    """Draw every figure; return the files written (a skipped figure is reported, not written)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="folder of the PNG files")
    parser.add_argument("--quick", action="store_true", help="tiny figures, random weights if need be (tests)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    written = []
    for make in FIGURES:
        started = time.perf_counter()
        try:
            path = make(args.out, quick=args.quick)
        except (Skipped, MissingWeightsError) as reason:
            print(f"{make.__name__}: skipped: {reason}")
            continue
        written.append(path)
        print(f"{path}  {path.stat().st_size / 1000:.0f} kB  {time.perf_counter() - started:.1f} s")
    return written


if __name__ == "__main__":
    main()
