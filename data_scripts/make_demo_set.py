"""The tiny offline photo/cartoon demo set: the command line of :func:`animescene.demo_set.make_demo_set`.

Example:
    python -m data_scripts.make_demo_set --out demo/ --short-side 320
"""

from __future__ import annotations

import argparse
import sys

from animescene import demo_set
from animescene.runtime import cache_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.make_demo_set",
        description=demo_set.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_out = cache_dir() / "datasets" / "demo"
    parser.add_argument("--out", default=str(default_out), metavar="DIR", help=f"default {default_out}")
    parser.add_argument("--short-side", type=int, default=320, help="short side of every image (default 320)")
    parser.add_argument("--shared-photos", type=int, default=8, help="Kodak photos taken from shared data")
    parser.add_argument("--max-cartoons", type=int, default=12, help="cartoons at most (default 12)")
    parser.add_argument("--no-shared", action="store_true", help="ignore the shared data: stand-in cartoons")
    args = parser.parse_args(argv)
    if args.short_side < 8 or args.max_cartoons < 1 or args.shared_photos < 0:
        parser.error("--short-side must be at least 8, --max-cartoons positive, --shared-photos non-negative")
    lines = demo_set.make_demo_set(
        args.out,
        short_side=args.short_side,
        use_shared=not args.no_shared,
        shared_photos=args.shared_photos,
        max_cartoons=args.max_cartoons,
    )
    photos = sum(line.startswith("photos/") for line in lines)
    cartoons = sum(line.startswith("cartoons/") for line in lines)
    print(f"{photos} photos and {cartoons} cartoons -> {args.out} (origins and licences in SOURCES.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
