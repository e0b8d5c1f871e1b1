"""Optional dependencies: a clear error naming the extra to install, not a bare ImportError."""

from __future__ import annotations

import importlib.util

from reluscope._validation import message
from reluscope.errors import MissingDependencyError


def require(modules: tuple[str, ...], extra: str, feature: str) -> None:
    """Raise :class:`MissingDependencyError` unless every module in `modules` is installed.

    Parameters
    ----------
    modules : tuple of str
        Top-level import names, e.g. ``("pandas", "pyarrow")``.
    extra : str
        The pip extra that installs them (``reluscope[extra]``).
    feature : str
        What needs them, for the message.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(message(
            feature, f"the optional package(s) {', '.join(modules)}", f"{', '.join(missing)} not installed",
            f"Install the extra: pip install 'reluscope[{extra}]' (or pip install {' '.join(missing)})."))
