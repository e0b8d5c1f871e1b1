"""Objectives (supervised, contrastive, self-distillation, redundancy reduction, masked
modelling), the training loop and its checkpoints.

Names load on first use (PEP 562), so ``reluscope.train.names`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reluscope.train.checkpoints import checkpoint_steps, completed_checkpoints
    from reluscope.train.loop import TrainConfig, TrainResult, build, load_checkpoint, train
    from reluscope.train.objectives import OBJECTIVES, Batch, LossOutput, Objective, build_objective

_LAZY = {"checkpoint_steps": "checkpoints", "completed_checkpoints": "checkpoints", "TrainConfig": "loop",
         "TrainResult": "loop", "build": "loop", "load_checkpoint": "loop", "train": "loop",
         "OBJECTIVES": "objectives", "Batch": "objectives", "LossOutput": "objectives",
         "Objective": "objectives", "build_objective": "objectives"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'reluscope.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"reluscope.train.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = ["OBJECTIVES", "Batch", "LossOutput", "Objective", "TrainConfig", "TrainResult", "build",
           "build_objective", "checkpoint_steps", "completed_checkpoints", "load_checkpoint", "train"]
