"""Exceptions that say what went wrong and where.

Every error raised on bad input derives from :class:`SaraikitError` (itself a
``ValueError``), so notebooks and the CLI can catch one type and print it.
"""


class SaraikitError(ValueError):
    """Base class: bad input or a failed check, with a readable message."""


class ConfigError(SaraikitError):
    """An unknown key or a bad value in a configuration."""


class ModelError(SaraikitError):
    """A missing, corrupt or unusable model file."""


class DataError(SaraikitError):
    """A missing, unreadable or unusable dataset entry or audio file."""


class MeasurementError(SaraikitError):
    """Bad measurement parameters (zero iterations, negative durations, ...)."""


class ClusterError(SaraikitError):
    """A Dask scheduler that cannot be reached, a target without a worker, a worker that was refused."""
