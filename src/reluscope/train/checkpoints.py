"""Checkpoints: a ``.pt`` state file plus a JSON sidecar, both written atomically.

A checkpoint is complete once its sidecar exists (the sidecar is written after the state
file), so a run killed at any moment leaves only complete checkpoints and at most one
state file without a sidecar, which the next run overwrites. The sidecar records the
SHA-256 of the state file; :func:`completed_checkpoints` verifies it, and a checkpoint
whose state no longer matches (a flipped byte, a truncated copy) is set aside as
``*.corrupt`` with a warning naming it, so training resumes before it and rewrites it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from reluscope._files import write_bytes, write_json
from reluscope._validation import message
from reluscope.errors import CheckpointError


def checkpoint_steps(total_steps: int, steps_per_epoch: int, per_decade: int = 4,
                     every_epochs: int = 1) -> list[int]:
    """Log-spaced steps including 0, plus the end of every ``every_epochs``-th epoch (0: none)
    and the last step, up to ``total_steps`` (sorted).

    ``per_decade`` log-spaced points per factor of 10 (1, 1.8, 3.2, 5.6, 10, ... for 4).
    """
    steps = {0, total_steps}
    if total_steps > 0:
        n = math.ceil(per_decade * math.log10(total_steps)) + 1
        steps.update(min(total_steps, round(10 ** (k / per_decade))) for k in range(n + 1))
    if every_epochs > 0:
        stride = max(steps_per_epoch, 1) * every_epochs
        steps.update(range(stride, total_steps + 1, stride))
    return sorted(s for s in steps if 0 <= s <= total_steps)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where the state of `step` lives (the sidecar is the same name with ``.json``)."""
    return run_dir / "checkpoints" / f"step_{step:08d}.pt"


def completed_checkpoints(run_dir: Path, *, verify: bool = True) -> list[tuple[int, Path]]:
    """(step, state path) of every complete checkpoint, by step.

    With `verify`, a state file that does not match the checksum in its sidecar is set
    aside (renamed ``*.corrupt``, with a warning naming it) and left out. Sidecars written
    before checksums were recorded are accepted as they are.
    """
    found = []
    for sidecar in sorted((run_dir / "checkpoints").glob("step_*.json")):
        state = sidecar.with_suffix(".pt")
        try:
            meta = json.loads(sidecar.read_text())
            step = int(meta["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not state.is_file():
            continue
        expected = meta.get("state_sha256")
        if verify and expected is not None and sha256_of(state) != expected:
            set_aside(state, sidecar, reason="its state does not match the checksum in its sidecar")
            continue
        found.append((step, state))
    return sorted(found)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def set_aside(*paths: Path, reason: str) -> None:
    """Rename files to ``<name>.corrupt`` (replacing an older one) and warn, naming the first."""
    for path in paths:
        if path.exists():
            path.replace(path.with_name(path.name + ".corrupt"))
    warnings.warn(f"{paths[0]} is corrupt ({reason}); moved aside as {paths[0].name}.corrupt, and it will "
                  "be recomputed", RuntimeWarning, stacklevel=3)


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write the state then the sidecar (atomically each); never rewrite a complete one."""
    path = checkpoint_path(run_dir, step)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file() and path.is_file():
        return path
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    write_bytes(path, payload)
    write_json(sidecar, {**meta, "state_sha256": hashlib.sha256(payload).hexdigest()})
    return path


def load_state(path: Path) -> dict[str, Any]:
    """The state dict saved at `path` (tensors on the CPU).

    Raises
    ------
    CheckpointError
        When the file cannot be read as a checkpoint (truncated, not a torch file).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(message(f"checkpoint {str(path)!r}", "a complete reluscope checkpoint",
                                      f"a file torch cannot read ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0][:100] if str(exc) else ''})",
                                      "Delete it (and its .json sidecar) to retrain from the one "
                                      "before.")) from exc


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint state file."""
    return json.loads(Path(path).with_suffix(".json").read_text())
