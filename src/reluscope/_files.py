"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def safe_name(name: str) -> str:
    """`name` as a file or folder name: anything but letters, digits, ``_`` and ``-`` becomes
    ``_`` (built-in dataset and backbone names are unchanged)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def atomic_write(target: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside `target`, then rename it into place."""
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; use normal rights
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes(target: str | os.PathLike[str], payload: bytes) -> Path:
    """Write `payload` to `target`, atomically."""

    def write(handle: IO[bytes]) -> None:
        handle.write(payload)

    return atomic_write(target, write)


def write_json(target: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented JSON, atomically."""
    return write_bytes(target, json.dumps(data, indent=2).encode())
