"""The error a user can fix, as opposed to a bug.

Library functions raise :class:`UsageError` (or a subclass) for a bad option, configuration, path or
file, with a message that names the problem and the fix. The ``animescene`` command prints that message
on one line and exits with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake the user can fix; the message says what is wrong and what to do.

    A ``ValueError``, so code that already catches ``ValueError`` for bad input keeps working.
    """
