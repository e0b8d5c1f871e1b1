"""One line on the log while reluscope's compiled kernels build for the first time.

The engines' inner loops are numba functions cached beside their modules: the first run
on a machine compiles them (about 20 s for the 2D engine on a 2-core machine), later runs
load them in milliseconds. Without a word, that first stretch looks like a hang.
"""

from __future__ import annotations

import logging
from typing import Any

from numba.core import event

_LOG = logging.getLogger("reluscope")
_installed = False


class FirstCompileNotice(event.Listener):
    """Logs one warning at the first numba compilation of a function of a reluscope module."""

    def __init__(self) -> None:
        self.said = False

    def on_start(self, ev: Any) -> None:
        if self.said:
            return
        data = ev.data if isinstance(ev.data, dict) else {}
        function = getattr(data.get("dispatcher"), "py_func", None)
        if getattr(function, "__module__", "").startswith("reluscope."):
            self.said = True
            _LOG.warning("reluscope: compiling the engines' kernels with numba (first run on this machine "
                         "only, up to a minute; cached afterwards)")

    def on_end(self, ev: Any) -> None:
        return


def install() -> None:
    """Register the notice with numba (once per process)."""
    global _installed
    if not _installed:
        _installed = True
        event.register("numba:compile", FirstCompileNotice())
