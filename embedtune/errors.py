"""The one exception type stages raise for bad input or bad params."""


class StageError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""
