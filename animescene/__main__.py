"""``python -m animescene ...`` is the ``animescene`` command."""

import sys

from .cli import main

sys.exit(main())
