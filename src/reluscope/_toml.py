"""One value written in TOML syntax on a command line (``3``, ``1e-3``, ``true``, ``[0, 1]``,
``"simclr"``); a bare word is a string."""

from __future__ import annotations

import tomllib
from typing import Any


def toml_value(text: str) -> Any:
    """The value `text` denotes in TOML, or `text` itself (stripped) when it is a bare word."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()
