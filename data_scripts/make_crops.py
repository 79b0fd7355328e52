"""Cut fixed-size training crops out of folders of images, reproducibly.

Example:
    python -m data_scripts.make_crops photos/ more_photos/ --out crops/ --size 256 --per-image 4

Each readable image (optionally resized first so its short side is ``--short-side``; images smaller
than ``--size`` are enlarged to it) gives ``--per-image`` random ``size x size`` crops. The crop
positions depend only on ``--seed`` and the image's place in the sorted file list, so a rerun
reproduces the same files. ``manifest.csv`` lists every crop: file, source, x, y (top-left corner, in
the pixels of the possibly resized image) and the sha256 of the written file. Unreadable files are
skipped and reported; the exit status is non-zero only when no crop at all was written.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from animescene.data import resize_short_side
from animescene.downloads import file_sha256
from animescene.images import ImageReadError, list_images, read_image, to_uint8


def make_crops(dirs, out, *, size=256, per_image=4, seed=0, short_side=None, ext="png") -> tuple[list, list]:
    """Write the crops and ``manifest.csv``; return ``(manifest rows, skipped files)``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [path for folder in dirs for path in list_images(folder)]
    rows, skipped = [], []
    for number, path in enumerate(files):
        try:
            image = read_image(path)
        except ImageReadError as err:
            print(f"skipped: {err}", file=sys.stderr)
            skipped.append(path)
            continue
        if short_side is not None:
            image = resize_short_side(image, short_side)
        if min(image.shape[-2:]) < size:
            image = resize_short_side(image, size)
        height, width = image.shape[-2:]
        rng = np.random.default_rng(np.random.SeedSequence([seed, number]))
        for k in range(per_image):
            top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
            crop = image[:, :, top : top + size, left : left + size].clamp(-1, 1)
            name = f"{path.stem}_{number:05d}_{k:02d}.{ext}"
            Image.fromarray(to_uint8(crop)).save(out / name, quality=95)  # quality: JPEG only
            rows.append(dict(file=name, source=str(path), x=left, y=top, sha256=file_sha256(out / name)))
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "source", "x", "y", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    return rows, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.make_crops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders of images (not recursive)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (crops and manifest.csv)")
    parser.add_argument("--size", type=int, default=256, help="side of the square crops (default 256)")
    parser.add_argument("--per-image", type=int, default=4, help="crops per image (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crop positions (default 0)")
    parser.add_argument("--short-side", type=int, help="first resize each image to this short side")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="output format (default png)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.per_image < 1 or args.seed < 0:
        parser.error("--size and --per-image must be positive and --seed non-negative")
    if args.short_side is not None and args.short_side < args.size:
        parser.error(f"--short-side {args.short_side} is smaller than --size {args.size}")
    try:
        rows, skipped = make_crops(
            args.dirs,
            args.out,
            size=args.size,
            per_image=args.per_image,
            seed=args.seed,
            short_side=args.short_side,
            ext=args.format,
        )
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(rows)} crops -> {args.out} (manifest.csv); {len(skipped)} unreadable file(s) skipped")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
