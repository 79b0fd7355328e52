"""Benchmarks, run as ``python -m animescene.bench <benchmark>``.

``filters``: our guided filter against OpenCV's (``cv2.ximgproc.guidedFilter``) on a 1280 x 720 frame,
and the cost per 256 x 256 image of each stage of the structure representation, in one process and
with a pool of worker processes.

Every number is the median of ``--repeats`` timed runs after warm-up runs, in milliseconds. The
header says on what machine and with which versions, so that numbers from two machines are not
compared by accident.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import cv2
import numpy as np
import skimage.data
import torch

from . import segmentation
from .filters import guided_filter
from .representations import StructurePool, structure

# Real photos from scikit-image's sample data, so that the segmentation sees natural content.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m animescene.bench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    filters = commands.add_parser(
        "filters", help="guided filter vs OpenCV at 1280x720; structure representation stages at 256x256"
    )
    filters.add_argument("--repeats", type=int, default=7, help="timed runs per number (default 7)")
    filters.add_argument(
        "--segments",
        type=int,
        nargs="+",
        default=[200, 80],
        help="structure region targets (default: 200, the paper's, and 80, where the reference ends up)",
    )
    filters.add_argument("--batch", type=int, default=16, help="images per structure batch (default 16)")
    filters.add_argument("--workers", type=int, default=2, help="structure pool size (default 2)")
    filters.add_argument("--quick", action="store_true", help="2 repeats, batch of 4, one target (smoke run)")
    filters.set_defaults(run=run_filters)
    args = parser.parse_args(argv)
    print(machine_summary())
    args.run(args)


def run_filters(args: argparse.Namespace) -> None:
    """The ``filters`` benchmark: prints two tables."""
    repeats, batch, segments = args.repeats, args.batch, args.segments
    if args.quick:
        repeats, batch, segments = 2, 4, segments[:1]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    print(f"\nGuided filter, 1280x720, float32 RGB source, gray guide; torch and cv2 threads = {threads}")
    print_table(guided_filter_vs_opencv(repeats), ["case", "ours ms", "OpenCV ms", "ours/OpenCV"])
    print(f"\nStructure representation, ms per 256x256 image (batch of {batch}, {args.workers}-worker pool)")
    rows = []
    for target in segments:
        rows += structure_stages(repeats, batch, target, args.workers)
    print_table(rows, ["segments", "stage", "ms/image", "regions"])


def guided_filter_vs_opencv(repeats: int) -> list[dict]:
    """Our ``guided_filter`` against ``cv2.ximgproc.guidedFilter`` at 1280 x 720, one row per case.

    OpenCV mirrors the border (``border="reflect"`` here, where the two agree to 1e-4); our default
    ``"clip"`` border is timed too. Inputs are a real photo as a contiguous ``(1, C, H, W)`` tensor (what a
    model hands over) and an ``(H, W, C)`` array for OpenCV.
    """
    image = cv2.resize(skimage.data.astronaut(), (1280, 720), interpolation=cv2.INTER_LINEAR)
    src = image.astype(np.float32) / 255.0
    gray = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
    src_t = torch.from_numpy(src).permute(2, 0, 1)[None].contiguous()
    gray_t = torch.from_numpy(gray)[None, None].contiguous()
    rows = []
    for r, eps in ((1, 5e-3), (5, 0.2)):
        opencv = time_ms(lambda: cv2.ximgproc.guidedFilter(gray, src, r, eps), repeats)
        for border in ("reflect", "clip"):
            with torch.inference_mode():
                ours = time_ms(lambda: guided_filter(gray_t, src_t, r, eps, border=border), repeats)
            case = f"r={r} eps={eps:g} border={border}"
            rows.append({"case": case, "ours ms": ours, "OpenCV ms": opencv, "ours/OpenCV": ours / opencv})
    return rows


def structure_stages(repeats: int, batch: int, segments: int, workers: int) -> list[dict]:
    """Per-image time of each stage of the selective structure representation at 256 x 256.

    Stages: Felzenszwalb superpixels, selective-search grouping (Lab, histograms and merging), adaptive
    colouring with the contrast step, and the whole of :func:`structure` on one image at a time (tensor
    in and out); then :func:`structure` of the batch in this process and through a :class:`StructurePool`.
    """
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    photos = [cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA) for photo in photos]
    # a batch of distinct images: the photos, then the photos turned by 90 degrees, and so on
    images = [np.ascontiguousarray(np.rot90(photos[i % len(photos)], i // len(photos))) for i in range(batch)]
    starts = [segmentation.felzenszwalb(image) for image in images]
    groups = [segmentation.selective_search_grouping(im, s, segments) for im, s in zip(images, starts)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def felzenszwalb():
        return [segmentation.felzenszwalb(image) for image in images]

    def grouping():
        return [segmentation.selective_search_grouping(im, s, segments) for im, s in zip(images, starts)]

    def colouring():
        return [segmentation.contrast(segmentation.adaptive_coloring(im, g)) for im, g in zip(images, groups)]

    def one_at_a_time():
        return [structure(x[i : i + 1], segments=segments) for i in range(batch)]

    def per_image(fn) -> float:
        return time_ms(fn, repeats, warmup=1) / batch

    superpixels = f"{np.mean([s.max() + 1 for s in starts]):.0f} superpixels"
    regions = f"{np.mean([g.max() + 1 for g in groups]):.0f} regions"
    rows = [
        ("felzenszwalb", per_image(felzenszwalb), superpixels),
        ("grouping", per_image(grouping), regions),
        ("colouring", per_image(colouring), ""),
        ("total, one image at a time", per_image(one_at_a_time), ""),
        ("total, batch, 1 process", per_image(lambda: structure(x, segments=segments)), ""),
    ]
    with StructurePool(workers) as pool:
        pooled = per_image(lambda: pool.submit(x, segments=segments).result())
    rows.append((f"total, batch, pool of {workers}", pooled, ""))
    columns = ("stage", "ms/image", "regions")
    return [{"segments": segments, **dict(zip(columns, row))} for row in rows]


def time_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print ``rows`` as an aligned text table; floats with 2 decimals."""
    cells = [[f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def machine_summary() -> str:
    """CPU model and cores, GPU if any, library versions and the date, for the header of every benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass  # not Linux: keep platform's answer
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (
        f"machine: {cpu}, {os.cpu_count()} logical cores, GPU: {gpu}\n"
        f"versions: python {platform.python_version()}, torch {torch.__version__}, opencv {cv2.__version__}, "
        f"numpy {np.__version__}\n"
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}"
    )


if __name__ == "__main__":
    main()
