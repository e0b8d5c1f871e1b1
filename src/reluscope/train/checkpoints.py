"""Checkpoints: a ``.pt`` state file plus a JSON sidecar, both written atomically.

A checkpoint is complete once its sidecar exists (the sidecar is written after the state
file), so a run killed at any moment leaves only complete checkpoints and at most one
state file without a sidecar, which the next run overwrites.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import torch

from reluscope._files import write_bytes, write_json


def checkpoint_steps(total_steps: int, steps_per_epoch: int, per_decade: int = 4) -> list[int]:
    """Log-spaced steps including 0, plus every epoch end, up to ``total_steps`` (sorted).

    ``per_decade`` log-spaced points per factor of 10 (1, 1.8, 3.2, 5.6, 10, ... for 4).
    """
    steps = {0, total_steps}
    if total_steps > 0:
        n = math.ceil(per_decade * math.log10(total_steps)) + 1
        steps.update(min(total_steps, round(10 ** (k / per_decade))) for k in range(n + 1))
    steps.update(range(steps_per_epoch, total_steps + 1, max(steps_per_epoch, 1)))
    return sorted(s for s in steps if 0 <= s <= total_steps)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where the state of `step` lives (the sidecar is the same name with ``.json``)."""
    return run_dir / "checkpoints" / f"step_{step:08d}.pt"


def completed_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, state path) of every complete checkpoint, by step."""
    found = []
    for sidecar in sorted((run_dir / "checkpoints").glob("step_*.json")):
        state = sidecar.with_suffix(".pt")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if state.is_file():
            found.append((int(meta["step"]), state))
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write the state then the sidecar (atomically each); never rewrite a complete one."""
    path = checkpoint_path(run_dir, step)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file() and path.is_file():
        return path
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())
    write_json(sidecar, meta)
    return path


def load_state(path: Path) -> dict[str, Any]:
    """The state dict saved at `path` (tensors on the CPU)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint state file."""
    return json.loads(Path(path).with_suffix(".json").read_text())
