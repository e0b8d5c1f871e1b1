"""Which device training runs on: ``"cpu"``, ``"cuda"`` (``"cuda:1"``, ...) or ``"auto"``.

Only training (the costly part of a run) moves; checkpoints are written from CPU copies,
so they load anywhere, and every evaluation and all geometry stay on the CPU in float64.
A run trained on a GPU is not bit-identical to the same run on the CPU (different kernels),
and resuming it on another device continues from the checkpoint, not the same sequence.
"""

from __future__ import annotations

import torch

from reluscope._validation import message
from reluscope.errors import InputValueError


def resolve_device(name: str) -> torch.device:
    """The device named by `name` (``"auto"``: the first CUDA device if there is one, else the CPU).

    Raises
    ------
    InputValueError
        For a name torch does not know, or CUDA asked for where none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputValueError(message("the training device", "'cpu', 'cuda', 'cuda:N' or 'auto'", repr(name),
                                      "Pick one of those.")) from exc
    if device.type not in ("cpu", "cuda"):
        raise InputValueError(message("the training device", "'cpu', 'cuda', 'cuda:N' or 'auto'", repr(name),
                                      "Train on the CPU or a CUDA GPU."))
    if device.type == "cuda" and (not torch.cuda.is_available() or
                                  (device.index or 0) >= torch.cuda.device_count()):
        raise InputValueError(message("the training device", "a CUDA device this machine has", repr(name),
                                      "Use device 'auto' (CUDA when present, else the CPU) or 'cpu'."))
    return device


def cpu_state(state: object) -> object:
    """`state` (nested dicts / lists of tensors) with every tensor copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: cpu_state(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(cpu_state(v) for v in state)
    return state
