"""How close do cartoonized photos come to real anime frames? Distances between image sets, per method.

For each method, the photos are cartoonized and the set of results is compared with two references:

- the **cartoon folder** (e.g. anime frames): how much the results *look like* the target style;
- the **photo folder** itself: how far the method moved away from photos (a method that returns its
  input is at 0; one that paints over everything is far).

Each comparison gives a Fréchet distance over the full sets and a KID with its spread over random
subsets (:mod:`animescene.metrics`). The raw photos are always the first row: the baseline every
method must beat on "distance to cartoons".

A method is one of:

- ``"official"``: White-box Cartoonization's weights (``GeneratorWeights.WHITEBOX_OFFICIAL``);
- the path of a weights file that carries its conventions (anything
  :meth:`~animescene.models.UNetGenerator.from_weights` takes);
- a folder of outputs made elsewhere (other papers' code), ideally of the same photos;
- in Python, also a :class:`~animescene.models.UNetGenerator` or an
  :class:`~animescene.inference.Cartoonizer`.

Generators run as a user runs them: on each photo at its own size, through
:class:`~animescene.inference.Cartoonizer` (short side capped at 720, guided-filter post-process).
Then every image, photos, frames and outputs alike, becomes its :func:`~animescene.data.centre_square`
of side ``size`` (256 by default, the training crop size), so all sets are compared at one scale
whatever their original sizes. The order matters: a generator's strokes are sized for the
resolution it works at. On the Kodak photos (against 96 Ghibli frames), White-box run on 256 px
squares lands *farther* from the frames than the raw photos (FD-HED-VGG16 77 vs 66); run on the
500 px photos and then shrunk, it lands closer (58). Subsets and any image limits come from
``seed``, so a run is repeatable.

Read the KID std before the means: with a few dozen photos it is as large as the differences between
methods (see :func:`~animescene.metrics.kernel_inception_distance`); hundreds of photos are needed
to separate methods whose KIDs differ by a few hundredths.

From the command line::

    animescene evaluate --photos photos/ --cartoons frames/ --method whitebox=official \\
        --method ours=runs/001/weights.pt --out evaluation/

prints a table and writes ``results.csv`` and ``results.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from functools import partial
from pathlib import Path

import numpy as np

from .features import EXTRACTORS, features_of_folder
from .metrics import (
    frechet_distance_from_features,
    kernel_inception_distance,
    paired_fd_gain,
    paired_kid_gain,
)

PHOTOS_ROW = "photos"
COLUMNS = ("method", "spec", "images", "features", "fd_metric", "kid_metric", "fd_to_cartoons",
           "kid_to_cartoons", "kid_to_cartoons_std", "fd_to_photos", "kid_to_photos", "kid_to_photos_std",
           "fd_gain", "fd_gain_std", "kid_gain", "kid_gain_std")


def evaluate(photos_dir, cartoons_dir, methods=(), *, extractor, subsets: int = 100, subset_size: int = 1000,
             seed: int = 0, size: int = 256, out_dir=None, max_photos: int | None = None,
             max_cartoons: int | None = None, batch_size: int = 8, device="auto",
             progress: bool = False) -> list[dict]:
    """Distances of each method's cartoonized photos to the cartoon set and to the photo set.

    Args:
        photos_dir: folder of photos to cartoonize (and the "photo" reference).
        cartoons_dir: folder of target-style images (the "cartoon" reference).
        methods: ``{name: spec}`` or ``(name, spec)`` pairs; a spec is ``"official"``, a weights or
            checkpoint file, a folder of outputs, a ``UNetGenerator`` or a ``Cartoonizer``.
            The raw photos (row ``"photos"``) are always evaluated first.
        extractor: a :class:`~animescene.features.FeatureExtractor`, e.g. ``HEDVGGFeatures()``.
        subsets, subset_size, seed: KID's random subsets (see
            :func:`~animescene.metrics.kernel_inception_distance`); ``seed`` also picks limited images.
        size: every image (generators' outputs after the generator) becomes its ``size x size``
            :func:`~animescene.data.centre_square`.
        out_dir: when given, ``results.csv`` and ``results.png`` are written there.
        max_photos, max_cartoons: use at most this many images of each folder (random, from ``seed``).
        batch_size: images per forward pass.
        device: ``"auto"`` (the GPU when present) or a torch device, for generators and extractor.
        progress: show progress bars.

    Returns:
        One dict per method (keys :data:`COLUMNS`): ``images`` compared, Fréchet distances ``fd_to_*``
        and KIDs ``kid_to_*`` with their std over subsets ``kid_to_*_std``, to the cartoons and to
        the photos. For the raw photos the distances to the photos are 0 by definition (sampling
        the same images on both sides would bias KID below 0). For generators, whose outputs pair
        with the photos image by image, ``fd_gain`` and ``kid_gain`` say how much closer to the
        cartoons the method moved the photos, each with the std of that paired comparison
        (:func:`~animescene.metrics.paired_fd_gain`, :func:`~animescene.metrics.paired_kid_gain`):
        the uncertainty that decides whether a method really moved towards the cartoons.
    """
    from .runtime import resolve_device

    device = resolve_device(device)
    extractor = extractor.to(device)
    sources = _resolve_methods(methods, device)
    embed = partial(features_of_folder, extractor=extractor, size=size, seed=seed, batch_size=batch_size,
                    progress=progress)
    kid = {"subsets": subsets, "subset_size": subset_size, "seed": seed}
    photos = embed(photos_dir, limit=max_photos)
    cartoons = embed(cartoons_dir, limit=max_cartoons)
    rows = [_table_row(PHOTOS_ROW, str(photos_dir), photos, extractor,
                       to_cartoons=_distances(photos, cartoons, **kid), to_photos=_SAME_SET, gains=_NO_GAINS)]
    for name, (spec, cartoonizer) in sources.items():
        outputs = _embed_method(embed, spec, cartoonizer, photos_dir, max_photos)
        # a generator's outputs correspond to the photos row by row: the comparison can be paired
        gains = _NO_GAINS if cartoonizer is None else _paired_gains(photos, outputs, cartoons, **kid)
        rows.append(_table_row(name, spec, outputs, extractor,
                               to_cartoons=_distances(outputs, cartoons, **kid),
                               to_photos=_distances(outputs, photos, **kid), gains=gains))
    if out_dir is not None:
        _write_reports(rows, out_dir)
    return rows


_SAME_SET = (0.0, 0.0, 0.0)
"""``(FD, KID, KID std)`` of the photos to themselves: 0 by definition (see :func:`evaluate`)."""
_NO_GAINS = (0.0, 0.0, 0.0, 0.0)
"""``(FD gain, std, KID gain, std)`` of a row without paired outputs: the photos, a folder of outputs."""


def _resolve_methods(methods, device) -> dict[str, tuple[str, object]]:
    """Step 1: ``{name: (spec as shown in the table, Cartoonizer or None for a folder of outputs)}``."""
    return {name: _resolve_method(name, spec, device) for name, spec in _method_pairs(methods)}


def _embed_method(embed, spec: str, cartoonizer, photos_dir, max_photos: int | None) -> np.ndarray:
    """Step 2: ``(N, D)`` features of one method's images: the photos cartoonized, or its output folder.

    ``embed`` is :func:`~animescene.features.features_of_folder` with the run's extractor and
    settings; a cartoonizer runs on each photo at its own size, before the centre square.
    """
    if cartoonizer is None:
        return embed(spec, limit=max_photos)
    return embed(photos_dir, limit=max_photos, transform=cartoonizer)


def _distances(features: np.ndarray, reference: np.ndarray, *, subsets: int, subset_size: int,
               seed: int) -> tuple[float, float, float]:
    """Step 3: ``(FD, KID, KID std)`` of ``(N, D)`` features to ``(M, D)`` reference features."""
    kid = kernel_inception_distance(features, reference, subsets, subset_size, seed)
    return (frechet_distance_from_features(features, reference), *kid)


def _paired_gains(photos: np.ndarray, outputs: np.ndarray, cartoons: np.ndarray, *, subsets: int,
                  subset_size: int, seed: int) -> tuple[float, float, float, float]:
    """Step 3, paired: ``(FD gain, std, KID gain, std)`` of ``outputs`` towards ``cartoons``.

    ``outputs[i]`` was made from ``photos[i]``; a positive gain means the outputs are closer to the
    cartoons than the photos they were made from.
    """
    return (*paired_fd_gain(photos, outputs, cartoons, seed=seed),
            *paired_kid_gain(photos, outputs, cartoons, subsets, subset_size, seed))


def _table_row(name: str, spec: str, features: np.ndarray, extractor, *, to_cartoons, to_photos,
               gains) -> dict:
    """Step 4: one row of the table (keys :data:`COLUMNS`) from the distances of step 3."""
    return {
        "method": name, "spec": spec, "images": len(features), "features": extractor.name,
        "fd_metric": extractor.fd_label, "kid_metric": extractor.kid_label,
        **dict(zip(("fd_to_cartoons", "kid_to_cartoons", "kid_to_cartoons_std"), to_cartoons)),
        **dict(zip(("fd_to_photos", "kid_to_photos", "kid_to_photos_std"), to_photos)),
        **dict(zip(("fd_gain", "fd_gain_std", "kid_gain", "kid_gain_std"), gains)),
    }


def _write_reports(rows: list[dict], out_dir) -> None:
    """Step 5: ``results.csv`` and ``results.png`` in ``out_dir`` (created when missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "results.csv")
    plot_results(rows, out_dir / "results.png")


def parse_method(text: str) -> tuple[str, str]:
    """``"NAME=SPEC"`` -> ``(NAME, SPEC)``, e.g. ``"whitebox=official"`` or ``"ours=runs/001/weights.pt"``."""
    name, equals, spec = text.partition("=")
    if not equals or not name.strip() or not spec.strip():
        raise ValueError(
            f"--method expects NAME=SPEC, e.g. whitebox=official, ours=runs/001/weights.pt or "
            f"other=outputs/other/ (a folder of its outputs); got {text!r}"
        )
    return name.strip(), spec.strip()


def _method_pairs(methods) -> list[tuple[str, object]]:
    pairs = list(methods.items()) if isinstance(methods, dict) else [tuple(pair) for pair in methods]
    names = [name for name, _ in pairs]
    if PHOTOS_ROW in names:
        raise ValueError(f"the method name {PHOTOS_ROW!r} is the raw-photos baseline row; pick another")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"method names must be unique; {repeated} appear more than once")
    return pairs


def _resolve_method(name: str, spec, device):
    """``(spec as shown in the table, transform)``: a ``Cartoonizer``, or None for a folder of outputs."""
    from .errors import UsageError
    from .inference import Cartoonizer

    if isinstance(spec, Cartoonizer):
        return type(spec).__name__, spec
    if isinstance(spec, (str, Path)) and Path(spec).is_dir():
        return str(spec), None
    try:
        # names, weights files and generators: UNetGenerator.from_weights decides, as everywhere
        cartoonizer = Cartoonizer(spec, device=device)
    except UsageError as err:
        raise UsageError(f"method {name!r}: {err} (a folder of outputs works too)") from err
    return (str(spec) if isinstance(spec, (str, Path)) else type(spec).__name__), cartoonizer


# ---------------------------------------------------------------------------------------- reports
def format_table(rows: list[dict]) -> str:
    """The rows as a text table: Fréchet distances and KID x 10^3 ± std, to the cartoons and the photos."""
    first = rows[0]
    fd, kid = first["fd_metric"], first["kid_metric"]
    header = ("method", "images", f"{fd} to cartoons", f"{kid} x1e3 to cartoons", f"{fd} to photos",
              f"{kid} x1e3 to photos", f"{fd} gain (paired)")
    lines = [header]
    for r in rows:
        lines.append((r["method"], str(r["images"]), f"{r['fd_to_cartoons']:.2f}",
                      f"{1e3 * r['kid_to_cartoons']:.2f} ± {1e3 * r['kid_to_cartoons_std']:.2f}",
                      f"{r['fd_to_photos']:.2f}",
                      f"{1e3 * r['kid_to_photos']:.2f} ± {1e3 * r['kid_to_photos_std']:.2f}",
                      f"{r['fd_gain']:.2f} ± {r['fd_gain_std']:.2f}" if r["fd_gain_std"] else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    # method names left-aligned, numbers right-aligned
    text = ["  ".join([line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:])])
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def write_csv(rows: list[dict], path) -> Path:
    """Write the rows (columns :data:`COLUMNS`, full precision) to a CSV file."""
    path = Path(path)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_results(rows: list[dict], path) -> Path:
    """Bars per method: KID (its std as error bars) and Fréchet distance, to the cartoons and the photos."""
    # a bare Figure draws with Agg and leaves pyplot's global backend alone (notebooks keep theirs)
    from matplotlib.figure import Figure

    names = [r["method"] for r in rows]
    x = np.arange(len(rows))
    width = 0.38
    fig = Figure(figsize=(max(8, 1.6 * len(rows) + 4), 4.2), layout="constrained")
    kid_ax, fd_ax = fig.subplots(1, 2)
    for offset, target, colour in ((-width / 2, "cartoons", "tab:orange"), (width / 2, "photos", "tab:blue")):
        kid = [1e3 * r[f"kid_to_{target}"] for r in rows]
        std = [1e3 * r[f"kid_to_{target}_std"] for r in rows]
        kid_ax.bar(x + offset, kid, width, yerr=std, capsize=4, color=colour, label=f"to {target}")
        fd_ax.bar(x + offset, [r[f"fd_to_{target}"] for r in rows], width, color=colour, label=f"to {target}")
    first = rows[0]
    kid_ax.set(title=f"{first['kid_metric']} (mean ± std over subsets)", xlabel="method",
               ylabel=f"{first['kid_metric']} x 10³ (lower = closer)")
    fd_ax.set(title=f"{first['fd_metric']} (full sets)", xlabel="method",
              ylabel=f"{first['fd_metric']} (lower = closer)")
    for ax in (kid_ax, fd_ax):
        ax.set_xticks(x, names)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.legend()
    fig.suptitle(f"Distance of each method's images to the cartoon set and to the photo set\n"
                 f"({first['images']} photos, {first['features']} features)")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


# ------------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    """``animescene evaluate``: prints the table, writes ``results.csv`` and ``results.png``; 2 on misuse."""
    from .runtime import pick

    parser = argparse.ArgumentParser(prog="animescene evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="folder of photos to cartoonize")
    parser.add_argument("--cartoons", required=True, help="folder of target-style images (e.g. anime frames)")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=SPEC",
                        help="SPEC: 'official', a weights/checkpoint file or a folder of outputs; repeatable")
    parser.add_argument("--features", choices=sorted(EXTRACTORS), default="hed",
                        help="hed: offline HED VGG16 (FD-/KID-HED-VGG16); inception: torchvision "
                             "Inception-v3 (FID/KID; needs its weights cached)")
    parser.add_argument("--out", default="evaluation", help="folder for results.csv and results.png")
    parser.add_argument("--size", type=int, default=256, help="evaluation size: short side, centre square")
    parser.add_argument("--subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--subset-size", type=int, default=1000, help="KID subset size (at most half a set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-photos", type=int, help="use at most this many photos (random, --seed)")
    parser.add_argument("--max-cartoons", type=int, help="use at most this many cartoons (random, --seed)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        methods = [parse_method(text) for text in args.method]
        # smoke runs (the test suite) use a random VGG: fast, offline, and labelled "random-VGG16"
        options = {"weights": pick("hed", None)} if args.features == "hed" else {}
        extractor = EXTRACTORS[args.features](**options)
        rows = evaluate(args.photos, args.cartoons, methods, extractor=extractor, subsets=args.subsets,
                        subset_size=args.subset_size, seed=args.seed, size=args.size, out_dir=args.out,
                        max_photos=args.max_photos, max_cartoons=args.max_cartoons,
                        batch_size=args.batch_size, device=args.device, progress=True)
    except (ValueError, OSError) as err:  # bad folders and specs, missing weights (FileNotFoundError)
        print(f"animescene evaluate: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"wrote {Path(args.out) / 'results.csv'} and {Path(args.out) / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
