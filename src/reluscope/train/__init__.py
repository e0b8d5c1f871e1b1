"""Objectives (supervised, contrastive, self-distillation, redundancy reduction), the
training loop and its checkpoints."""

from reluscope.train.checkpoints import checkpoint_steps, completed_checkpoints
from reluscope.train.loop import TrainConfig, TrainResult, build, load_checkpoint, train
from reluscope.train.objectives import OBJECTIVES, Batch, LossOutput, Objective, build_objective

__all__ = ["OBJECTIVES", "Batch", "LossOutput", "Objective", "TrainConfig", "TrainResult", "build",
           "build_objective", "checkpoint_steps", "completed_checkpoints", "load_checkpoint", "train"]
