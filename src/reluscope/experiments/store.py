"""The result store: one folder per run, and results as a long table in Parquet parts.

Layout under an experiment's root::

    experiment.json                 the validated config
    planes/<dataset>.json           the test-image triplets and pairs, chosen once
    runs/<run_id>/                  the training run (config.json, checkpoints/)
    runs/<run_id>/results/step_XXXXXXXX.parquet   the rows of one analysed checkpoint
    runs/<run_id>/partitions/       partitions kept for pictures (.npz)
    runs/<run_id>/complete.json     written last: the run is trained and analysed
    runs/<run_id>/error.txt         why the run failed (removed when it succeeds)

Each Parquet part is written atomically (a temporary file renamed into place), so a
crash leaves complete parts only, and its SHA-256 is recorded beside it
(``step_XXXXXXXX.parquet.sha256``). A part that fails its checksum or cannot be read is
set aside (``*.corrupt``, with a warning naming it) and counts as not analysed, so the
next ``reluscope run`` recomputes it and nothing else. ``runs/<run_id>/lock.json`` marks a
run being trained or analysed by a live process (see :meth:`Store.lock`).
:func:`load_results` reads every part into one table
with the columns of ``COLUMNS`` (queryable with pandas, or DuckDB with
``read_parquet('runs/*/results/*.parquet')``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from reluscope._files import write_bytes, write_json
from reluscope._validation import message
from reluscope.errors import InputValueError, RunLockedError
from reluscope.train.checkpoints import set_aside, sha256_of

#: Columns of the long results table.
COLUMNS = ("run_id", "dataset", "objective", "family", "backbone", "width", "seed", "step", "epoch",
           "metric", "value")


class Store:
    """Files of one experiment under `root` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        """Folder of one run."""
        return self.root / "runs" / run_id

    def part_path(self, run_id: str, step: int) -> Path:
        """Parquet part of one analysed checkpoint."""
        return self.run_dir(run_id) / "results" / f"step_{step:08d}.parquet"

    def has_step(self, run_id: str, step: int) -> bool:
        """Whether the checkpoint at `step` of the run has been analysed (a sound part exists)."""
        path = self.part_path(run_id, step)
        return path.is_file() and read_part(path) is not None

    def write_rows(self, run_id: str, step: int, rows: list[dict[str, Any]]) -> Path:
        """Write the rows of one checkpoint as a Parquet part and its checksum, atomically."""
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        payload = buffer.getvalue()
        path = write_bytes(self.part_path(run_id, step), payload)
        write_bytes(_checksum_path(path), hashlib.sha256(payload).hexdigest().encode())
        return path

    def verify_run(self, run_id: str) -> bool:
        """Whether every checkpoint a complete run lists has a sound part; if not, the run is
        marked incomplete again (its missing parts are recomputed by the next invocation)."""
        info = self.read_json(f"runs/{run_id}/complete.json") or {}
        missing = [s for s in info.get("checkpoints", []) if not self.has_step(run_id, int(s))]
        if missing:
            (self.run_dir(run_id) / "complete.json").unlink(missing_ok=True)
        return not missing

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[Path]:
        """Hold the run's lock file while its body runs (released on exit, also on errors).

        A lock left by a process that no longer runs on this host (killed, crashed) is
        stale and taken over; one held by a live process raises :class:`RunLockedError`.
        """
        path = self.run_dir(run_id) / "lock.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        taken_over, waited_until = 0, time.monotonic() + _LOCK_WRITE_SECONDS
        while taken_over < 3:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is None and time.monotonic() < waited_until and _age(path) < _LOCK_WRITE_SECONDS:
                    time.sleep(0.02)  # its creator has not written it yet: not stale
                    continue
                if holder is not None and _alive(holder):
                    raise RunLockedError(message(
                        f"run {run_id!r}", "not being run by another process",
                        f"a lock held by pid {holder.get('pid')} on {holder.get('host')} since "
                        f"{holder.get('since')}", "Wait for it to finish, or stop that process; a lock "
                        "left by a dead process is taken over automatically.")) from None
                path.unlink(missing_ok=True)  # stale: its process is gone (or it was left empty)
                taken_over += 1
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            break
        else:  # pragma: no cover - three races lost in a row
            raise RunLockedError(f"could not take the lock of run {run_id!r} at {path}")
        try:
            yield path
        finally:
            if (_read_lock(path) or {}).get("pid") == me["pid"]:
                path.unlink(missing_ok=True)

    def is_complete(self, run_id: str) -> bool:
        """Whether the run is trained and every checkpoint analysed."""
        return (self.run_dir(run_id) / "complete.json").is_file()

    def mark_complete(self, run_id: str, info: dict[str, Any]) -> None:
        """Record that the run finished (and clear an earlier failure)."""
        error = self.run_dir(run_id) / "error.txt"
        if error.exists():
            error.unlink()
        write_json(self.run_dir(run_id) / "complete.json", info)

    def mark_failed(self, run_id: str, text: str) -> None:
        """Record why the run failed (it is retried on the next invocation)."""
        write_bytes(self.run_dir(run_id) / "error.txt", text.encode())

    def failures(self) -> dict[str, str]:
        """run_id -> error text of the runs that failed last time."""
        return {p.parent.name: p.read_text() for p in sorted((self.root / "runs").glob("*/error.txt"))}

    def write_json(self, name: str, data: Any) -> Path:
        """Write a JSON file under the root, atomically."""
        return write_json(self.root / name, data)

    def read_json(self, name: str) -> Any:
        """Read a JSON file under the root, or None."""
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else None


def _checksum_path(part: Path) -> Path:
    return part.with_name(part.name + ".sha256")


def read_part(path: Path) -> pd.DataFrame | None:
    """The rows of one part, or None when it fails its checksum or cannot be read as Parquet
    with the store's columns (it is then set aside as ``*.corrupt`` with a warning).

    Parts written before checksums were recorded are checked by reading them.
    """
    checksum = _checksum_path(path)
    if checksum.is_file() and checksum.read_text().strip() != sha256_of(path):
        set_aside(path, checksum, reason="its bytes do not match the recorded SHA-256")
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for truncated or foreign files
        set_aside(path, checksum, reason=f"it cannot be read as Parquet: {type(exc).__name__}")
        return None
    if list(frame.columns) != list(COLUMNS):
        set_aside(path, checksum, reason=f"its columns are {list(frame.columns)}, not {list(COLUMNS)}")
        return None
    return frame


#: A lock file is created empty, then written: an unreadable one younger than this is being
#: written by its creator (live), an older one was left empty by a crash (stale).
_LOCK_WRITE_SECONDS = 5.0


def _age(path: Path) -> float:
    """Seconds since `path` was last modified (0 if it is gone)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the lock's process still runs (locks from another host are assumed live)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def load_results(root: str | Path) -> pd.DataFrame:
    """Every analysed checkpoint of an experiment as one long table (``COLUMNS``).

    Corrupt or truncated parts are set aside with a warning naming each (see
    :func:`read_part`) and left out; ``reluscope run`` recomputes them.
    """
    parts = sorted(Path(root).glob("runs/*/results/*.parquet"))
    frames = [f for f in (read_part(p) for p in parts) if f is not None]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)


def load_analysed(root: str | Path) -> pd.DataFrame:
    """:func:`load_results`, refusing an experiment folder with no analysed checkpoint."""
    results = load_results(root)
    if results.empty:
        raise InputValueError(message(f"experiment folder {str(root)!r}", "analysed checkpoints",
                                      "no results", "Run `reluscope run CONFIG --root DIR` first."))
    return results


def load_pooled(roots: list[str | Path]) -> pd.DataFrame:
    """:func:`load_analysed` of several experiment folders, one table (e.g. the arms of one
    study run as separate experiments); a run stored in two of them is refused."""
    tables = [load_analysed(root) for root in roots]
    seen: dict[str, str] = {}
    for root, table in zip(roots, tables, strict=True):
        for run_id in table["run_id"].unique():
            if run_id in seen:
                raise InputValueError(message(
                    f"experiment folders {[str(r) for r in roots]}", "folders holding different runs",
                    f"run {run_id!r} in both {seen[run_id]!r} and {str(root)!r}",
                    "Pool different experiments (arms), not copies of one."))
            seen[run_id] = str(root)
    return pd.concat(tables, ignore_index=True)
