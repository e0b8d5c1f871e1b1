"""Training logs to TensorBoard or Weights & Biases (optional extras, off by default).

Each logger is a callable ``logger(step, logs)`` for :func:`reluscope.train.train`'s
``on_log`` (the loss and the objective's own logs after every step), with ``close()``.
``reluscope train --tensorboard DIR`` / ``--wandb PROJECT`` and ``[execution] loggers =
["tensorboard", "wandb"]`` (one log per run, under the run's folder) use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from reluscope._extras import require


class TensorBoardLogger:
    """Scalars ``train/<name>`` per step into TensorBoard event files under `log_dir`."""

    def __init__(self, log_dir: str | Path) -> None:
        require(("tensorboard",), "tensorboard", "TensorBoardLogger")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def __call__(self, step: int, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            self.writer.add_scalar(f"train/{name}", float(value), step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """One Weights & Biases run; ``mode="offline"`` writes it locally (``wandb sync`` later)."""

    def __init__(self, project: str, name: str | None = None, config: dict[str, Any] | None = None,
                 mode: Literal["online", "offline", "disabled"] | None = None,
                 directory: str | Path | None = None) -> None:
        require(("wandb",), "wandb", "WandbLogger")
        import wandb

        self.run = wandb.init(project=project, name=name, config=config, mode=mode,
                              dir=None if directory is None else str(directory), reinit=True)

    def __call__(self, step: int, logs: dict[str, float]) -> None:
        self.run.log({f"train/{k}": float(v) for k, v in logs.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


class Loggers:
    """Several loggers as one ``on_log`` callable (an empty one logs nothing)."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = loggers

    def __call__(self, step: int, logs: dict[str, float]) -> None:
        for logger in self.loggers:
            logger(step, logs)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
