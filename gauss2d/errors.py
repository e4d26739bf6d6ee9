"""User-facing errors.

A ``Gauss2dError`` means the user gave us something wrong (a bad file, a bad
value), not that the code is broken: the CLI prints its message as one line,
without a traceback, so every message must name the file or value and say
what was expected.
"""


class Gauss2dError(ValueError):
    """Base class of gauss2d's user-facing errors."""


class ImageError(Gauss2dError):
    """An image file or folder that cannot be used (missing, unreadable, empty)."""


class CheckpointError(Gauss2dError):
    """A checkpoint or params file that is missing, corrupt or does not match."""
