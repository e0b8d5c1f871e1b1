"""Progress bars: tqdm on a terminal, silent in CI (``CI`` set) or when asked."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def quiet_by_default() -> bool:
    """True in CI or when stderr is not a terminal."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def progress_bar(iterable: Any = None, *, disable: bool | None = None, **kwargs: Any) -> Any:
    """A tqdm bar (``disable=None``: quiet in CI and when stderr is not a terminal)."""
    return tqdm(iterable, disable=quiet_by_default() if disable is None else disable, dynamic_ncols=True,
                **kwargs)
