"""Errors raised by reluscope.

Every error derives from :class:`ReluscopeError`, and also from the built-in
exception a caller would naturally catch (``ValueError`` or ``TypeError``).
Messages follow one template: what was expected, what was received, and how to
fix it (see :func:`reluscope._validation.message`).
"""

from __future__ import annotations


class ReluscopeError(Exception):
    """Base class of every error raised by reluscope."""


class InputValueError(ReluscopeError, ValueError):
    """An argument has the right type but an unusable value (shape, rank, range)."""


class InputTypeError(ReluscopeError, TypeError):
    """An argument has the wrong type."""


class UnsupportedModelError(ReluscopeError, ValueError):
    """The network contains an operation the exact engines cannot analyse.

    Raised for nonlinearities that are not piecewise affine with ReLU/LeakyReLU
    breakpoints (GELU, tanh, max-pool, ...) and for modules in training mode whose
    output depends on the batch or on randomness (BatchNorm, Dropout).
    """


class TooManyRegionsError(ReluscopeError, ValueError):
    """A partition would exceed the region budget the caller allowed (memory guard)."""


class PartitionFileError(ReluscopeError, ValueError):
    """A saved partition file is missing, truncated or not a reluscope partition."""


class CheckpointError(ReluscopeError, ValueError):
    """A checkpoint file is truncated, corrupt or not a reluscope checkpoint."""


class RunLockedError(ReluscopeError, RuntimeError):
    """Another live process holds the lock of a run (it is being trained or analysed there)."""


class MissingDependencyError(ReluscopeError, ImportError):
    """An optional dependency of the feature in use is not installed (an extra)."""
