"""The float64 copy of a model's state that instrumented passes run on, remembered per model.

Every slice of a model copies its parameters and buffers to float64 (the user's model is
never modified). For a conv net with a wide linear head that copy is the largest fixed
cost of a small slice (SmallCNN: 1.6 M parameters, 13 MB), and every plane of one
checkpoint makes the same one. So the latest copy of each model is remembered (weakly:
it goes with the model) under a digest of the model's own tensors, and reused while

* the model's tensors hash to the same digest (any change to a weight or buffer, in
  place or by loading a state dict, makes a new copy), on the same device, and
* no tensor of the copy was modified in place since it was made (torch's version
  counters; a forward pass that writes into a buffer makes the copy unusable, never
  silently reused).
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reluscope._validation import message
from reluscope.errors import InputValueError


def model_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The model's named parameters, then its named buffers."""
    return list(model.named_parameters()) + list(model.named_buffers())


def fingerprint(model: nn.Module) -> str:
    """SHA-256 digest of the model's tensors: names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name, tensor in model_tensors(model):
        digest.update(repr((name, tuple(tensor.shape), str(tensor.dtype))).encode())
        # the array's own buffer (no copy)
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).data)
    return digest.hexdigest()


def check_finite(model: nn.Module, where: str) -> None:
    """Refuse a model with a NaN or infinite parameter or buffer (a clear message)."""
    for name, tensor in model_tensors(model):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            bad = int((~torch.isfinite(tensor.detach())).sum())
            raise InputValueError(message(
                f"`model` of {where}", "finite parameters and buffers",
                f"`{name}` with {bad} non-finite value(s) (NaN or inf)",
                "Fix or reload the weights (a diverged training run leaves NaNs)."))


def float64_state(model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """A new copy of the model's tensors on `device`, floating ones in float64."""
    state = {}
    for name, tensor in model_tensors(model):
        if tensor.is_floating_point():
            tensor = tensor.detach().to(device=device, dtype=torch.float64)
        state[name] = tensor
    return state


@dataclass(frozen=True)
class _Entry:
    digest: str
    device: torch.device
    state: dict[str, torch.Tensor]
    versions: tuple[int, ...]  # of the copy's tensors when it was made


def _versions(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    return tuple(t._version for t in state.values())


class StateMemo:
    """The latest float64 copy of each model (see the module docstring)."""

    def __init__(self) -> None:
        self._by_model: weakref.WeakKeyDictionary[Any, _Entry] = weakref.WeakKeyDictionary()

    def state_of(self, model: nn.Module, device: torch.device, where: str
                 ) -> tuple[str, dict[str, torch.Tensor]]:
        """(digest of the model's tensors, their float64 copy on `device`).

        Raises
        ------
        InputValueError
            A parameter or buffer has a NaN or infinite value.
        """
        digest = fingerprint(model)
        entry = self._by_model.get(model)
        if entry is not None and entry.digest == digest and entry.device == device \
                and _versions(entry.state) == entry.versions:
            return digest, entry.state
        check_finite(model, where)
        state = float64_state(model, device)
        self._by_model[model] = _Entry(digest, device, state, _versions(state))
        return digest, state

    def forget(self, model: nn.Module) -> None:
        """Drop the model's remembered copy."""
        self._by_model.pop(model, None)


#: The process's remembered float64 states (see StateMemo).
STATES = StateMemo()
