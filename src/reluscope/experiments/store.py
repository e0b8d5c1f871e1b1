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
crash leaves complete parts only; :func:`load_results` reads them all into one table
with the columns of ``COLUMNS`` (queryable with pandas, or DuckDB with
``read_parquet('runs/*/results/*.parquet')``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from reluscope._files import write_bytes, write_json

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
        """Whether the checkpoint at `step` of the run has been analysed."""
        return self.part_path(run_id, step).is_file()

    def write_rows(self, run_id: str, step: int, rows: list[dict[str, Any]]) -> Path:
        """Write the rows of one checkpoint as a Parquet part, atomically."""
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return write_bytes(self.part_path(run_id, step), buffer.getvalue())

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


def load_results(root: str | Path) -> pd.DataFrame:
    """Every analysed checkpoint of an experiment as one long table (``COLUMNS``)."""
    parts = sorted(Path(root).glob("runs/*/results/*.parquet"))
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
