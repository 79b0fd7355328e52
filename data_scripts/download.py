"""Alias of ``animescene download`` (kept for older notes): ``python -m data_scripts.download --list``.

See ``animescene download --help`` and :mod:`animescene.downloads`.
"""

from __future__ import annotations

import sys

from animescene.cli import main as animescene_main


def main(argv=None) -> int:
    """Run ``animescene download ARGV`` (exit status and messages as there)."""
    return animescene_main(["download", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
