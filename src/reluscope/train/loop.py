"""The training loop: seeded, checkpointed on a log-spaced schedule, resumable.

Determinism without touching the global RNG: model initialisation runs under
``torch.random.fork_rng`` seeded from the config; the order of each epoch comes from a
generator seeded by (seed, epoch), the augmentation of each step from one seeded by
(seed, step). A resumed run therefore sees exactly the batches and views the
uninterrupted run would have, and ends with the same parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reluscope._files import write_json
from reluscope._validation import check_int, message
from reluscope.data import load_idx_images
from reluscope.data.augment import Augment, two_views
from reluscope.errors import InputValueError
from reluscope.nets.zoo import build_backbone
from reluscope.progress import progress_bar
from reluscope.train.checkpoints import (
    checkpoint_steps,
    completed_checkpoints,
    load_state,
    read_sidecar,
    save_checkpoint,
)
from reluscope.train.device import cpu_state, resolve_device
from reluscope.train.objectives import OBJECTIVES, Batch, Objective, build_objective


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (its checkpoints depend on nothing else).

    Attributes
    ----------
    dataset : {"mnist", "fashion-mnist"}
    objective : str
        A key of ``reluscope.train.OBJECTIVES`` (collapse variants included).
    backbone : {"mlp", "cnn", "lenet"} or str
        A built-in backbone, or ``"package.module:factory"`` for one of your own (imported
        only when allowed: see :mod:`reluscope.nets.custom`).
    width, depth : int
        MLP: ``depth`` hidden layers of ``width``; CNN: ``width`` units after the convs; a
        factory of your own gets them when its signature takes them.
    backbone_options : dict
        Keyword arguments of your own backbone's factory.
    batchnorm : bool
        BatchNorm in the backbone (analysed in eval mode).
    epochs : int
    batch_size : int
    lr, weight_decay : float
        Adam.
    seed : int
    subset : int or None
        Train on the first ``subset`` training images (None: all 60,000).
    checkpoints_per_decade : int
        Log-spaced checkpoints per factor of 10 in steps (plus step 0 and epoch ends).
    objective_options : dict
        Extra keyword arguments of the objective (temperatures, head sizes, ...).
    label_noise : float
        Symmetric label noise: this fraction of the training labels (exactly
        ``round(label_noise * n)``, chosen by the seed) is replaced by a uniformly random
        *other* class, once, before training (see :func:`noisy_labels`).
    checkpoint_every_epochs : int
        Checkpoint the end of every N-th epoch (0: only the log-spaced steps and the last);
        long runs (hundreds of epochs) want more than 1.
    """

    dataset: str = "mnist"
    objective: str = "simclr"
    backbone: str = "mlp"
    width: int = 256
    depth: int = 3
    batchnorm: bool = False
    epochs: int = 5
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-6
    seed: int = 0
    subset: int | None = None
    checkpoints_per_decade: int = 4
    objective_options: dict[str, Any] = field(default_factory=dict)
    label_noise: float = 0.0
    checkpoint_every_epochs: int = 1
    backbone_options: dict[str, Any] = field(default_factory=dict)

    #: Fields added after run ids were first published, with the default that leaves a run's
    #: id (and its folder) as it was: they enter the id only when set to something else.
    LATER_FIELDS: ClassVar[dict[str, Any]] = {"label_noise": 0.0, "checkpoint_every_epochs": 1,
                                              "backbone_options": {}}

    def __post_init__(self) -> None:
        from reluscope.nets.custom import is_import_path

        if self.backbone not in ("mlp", "cnn", "lenet") and not is_import_path(self.backbone):
            raise InputValueError(message(
                "`backbone` of TrainConfig", "'mlp', 'cnn', 'lenet' or 'package.module:factory'",
                repr(self.backbone),
                "Pick a built-in backbone or name your own factory (e.g. 'mynets.models:make_backbone')."))
        if not isinstance(self.backbone_options, dict):
            raise InputValueError(message("`backbone_options` of TrainConfig", "a table (dict) of keyword "
                                          "arguments", repr(self.backbone_options), "e.g. {channels = 8}."))
        if self.objective not in OBJECTIVES:
            raise InputValueError(message("`objective` of TrainConfig", f"one of {sorted(OBJECTIVES)}",
                                          repr(self.objective), "Pick a listed objective."))
        for name in ("epochs", "batch_size", "width", "depth", "checkpoints_per_decade", "subset"):
            value = getattr(self, name)
            if name == "subset" and value is None:
                continue
            check_int(value, f"`{name}` of TrainConfig")
        check_int(self.checkpoint_every_epochs, "`checkpoint_every_epochs` of TrainConfig", low=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputValueError(message("`seed` of TrainConfig", "a non-negative integer", repr(self.seed),
                                          "Pass e.g. 0."))
        noise = self.label_noise
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < 1:
            raise InputValueError(message("`label_noise` of TrainConfig", "a fraction in [0, 1)", repr(noise),
                                          "Pass e.g. 0.2 for 20% symmetric noise, or 0."))
        for name, strict in (("lr", True), ("weight_decay", False)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                and (value > 0 if strict else value >= 0)
            if not ok:
                raise InputValueError(message(f"`{name}` of TrainConfig",
                                              f"a finite number {'>' if strict else '>='} 0", repr(value),
                                              "Pass e.g. 1e-3." if strict else "Pass e.g. 1e-6 or 0."))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What a run's id is derived from: :meth:`to_dict` without later fields at their default."""
        data = self.to_dict()
        for name, default in self.LATER_FIELDS.items():
            if data.get(name) == default:
                data.pop(name, None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputValueError(message("a training config", f"only the fields {sorted(known)}",
                                          f"unknown fields {unknown}", "Remove or rename them."))
        return cls(**data)


@dataclass
class TrainResult:
    """The trained objective (backbone inside) and the checkpoints of the run."""

    objective: Objective
    checkpoints: list[tuple[int, Path]]
    resumed_from: int | None
    seconds: float


def build(config: TrainConfig) -> Objective:
    """The objective with a freshly initialised backbone, seeded by ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        backbone = build_backbone(config.backbone, config.width, config.depth, config.batchnorm,
                                  config.backbone_options)
        return build_objective(config.objective, backbone, **config.objective_options)


def _step_generator(seed: int, *keys: int) -> torch.Generator:
    mixed = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & ((1 << 63) - 1))


def load_checkpoint(path: str | Path) -> tuple[TrainConfig, Objective, dict[str, Any]]:
    """Rebuild a checkpoint's objective (in eval mode) from its sidecar config and state."""
    meta = read_sidecar(Path(path))
    config = TrainConfig.from_dict(meta["config"])
    objective = build(config)
    objective.load_state_dict(load_state(Path(path))["objective"])
    objective.eval()
    return config, objective, meta


def train(config: TrainConfig, run_dir: str | Path, *, data_dir: str | Path | None = None,
          quiet: bool | None = None, on_step: Callable[[int, Objective], None] | None = None,
          device: str = "cpu", on_log: Callable[[int, dict[str, float]], None] | None = None
          ) -> TrainResult:
    """Train (or resume) one run, writing checkpoints under ``run_dir/checkpoints``.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
        The run's folder; ``config.json`` is written there. If it holds checkpoints of
        this config, training resumes after the last complete one.
    data_dir : path, optional
        Dataset folder (default ``$RELUSCOPE_DATA``).
    quiet : bool, optional
        Hide the progress bar (default: hidden in CI and off a terminal).
    on_step : callable, optional
        ``on_step(step, objective)`` after each step's checkpoint (if any) is written.
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (see
        :mod:`reluscope.train.device`); the returned objective is back on the CPU.
    on_log : callable, optional
        ``on_log(step, logs)`` after each step with the loss and the objective's logs (e.g.
        a :class:`~reluscope.train.loggers.TensorBoardLogger`).
    """
    start_time = time.perf_counter()
    run = Path(run_dir)
    x, y = _training_data(config, data_dir)
    n = len(x)
    batch = min(config.batch_size, n)
    steps_per_epoch = n // batch
    total = config.epochs * steps_per_epoch
    schedule = set(checkpoint_steps(total, steps_per_epoch, config.checkpoints_per_decade,
                                    config.checkpoint_every_epochs))
    _check_same_config(run, config)

    where = resolve_device(device)
    objective = build(config).to(where)
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    done = completed_checkpoints(run)
    present = {s for s, _ in done}
    resumed = _resume(done, schedule, objective, optimizer, total)
    step = resumed or 0
    augment = Augment.for_dataset(config.dataset)

    def checkpoint(step: int, logs: dict[str, float]) -> None:
        state = {"objective": cpu_state(objective.state_dict()),  # loads anywhere
                 "optimizer": cpu_state(optimizer.state_dict()), "step": step}
        meta = {"config": config.to_dict(), "step": step, "epoch": step / max(steps_per_epoch, 1),
                "seed": config.seed, "total_steps": total, "metrics": logs}
        save_checkpoint(run, step, state, meta)

    if step == 0 and 0 in schedule and 0 not in present:
        checkpoint(0, {})
    objective.train()
    bar = progress_bar(total=total, initial=step, desc=f"{config.objective} {config.dataset}", unit="step",
                       disable=quiet)
    order = None
    with bar:
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            if index == 0 or order is None:
                order = torch.randperm(n, generator=_step_generator(config.seed, 0, epoch))
            rows = order[index * batch: (index + 1) * batch]
            tick = time.perf_counter()
            views = None
            if objective.needs_views:  # augmented on the CPU (seeded per step), then moved
                views = tuple(v.to(where) for v in two_views(x[rows], augment,
                                                             _step_generator(config.seed, 1, step)))
            out = objective(Batch(x[rows].to(where), y[rows].to(where), views,  # type: ignore[arg-type]
                                  _step_generator(config.seed, 2, step)))
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            step += 1
            objective.after_step(step, total)
            logs = {"loss": float(out.loss.detach()), **out.logs}
            if step in schedule:
                checkpoint(step, logs)
            rate = len(rows) / (time.perf_counter() - tick)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", img_s=f"{rate:.0f}")
            bar.update(1)
            if on_step is not None:
                on_step(step, objective)
            if on_log is not None:
                on_log(step, logs)
    objective.cpu().eval()
    # verified at the start; the ones written since are fresh: no second pass of hashing
    return TrainResult(objective, completed_checkpoints(run, verify=False), resumed,
                       time.perf_counter() - start_time)


def _training_data(config: TrainConfig, data_dir: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) and labels (N,) of the run: its subset, with its label noise."""
    images, labels = load_idx_images(config.dataset, "train", data_dir, quiet=True)
    if config.subset is not None:
        images, labels = images[: config.subset], labels[: config.subset]
    x = torch.from_numpy(images)[:, None]
    y = torch.from_numpy(labels)
    if config.label_noise > 0:
        y = noisy_labels(y, config.label_noise, config.seed)
    return x, y


def _resume(done: list[tuple[int, Path]], schedule: set[int], objective: Objective,
            optimizer: torch.optim.Optimizer, total: int) -> int | None:
    """Load the last checkpoint of the unbroken prefix of the schedule; returns its step.

    Resuming there (not after the last checkpoint present) means a checkpoint set aside as
    corrupt is trained again and rewritten.
    """
    present = {s for s, _ in done}
    prefix = []
    for point in sorted(schedule):
        if point not in present:
            break
        prefix.append(point)
    if not prefix:
        return None
    resumed = prefix[-1]
    state = load_state(dict(done)[resumed])
    objective.load_state_dict(state["objective"])
    optimizer.load_state_dict(state["optimizer"])
    objective.schedule(resumed, total)
    return resumed


def noisy_labels(labels: torch.Tensor, fraction: float, seed: int, n_classes: int | None = None
                 ) -> torch.Tensor:
    """Symmetric label noise: exactly ``round(fraction * n)`` labels, chosen by `seed`, each moved
    to a uniformly random different class. labels : (n,) int; returns a new (n,) tensor."""
    n_classes = n_classes or int(labels.max()) + 1
    gen = _step_generator(seed, 3, 0)
    count = round(fraction * len(labels))
    chosen = torch.randperm(len(labels), generator=gen)[:count]
    shift = torch.randint(1, n_classes, (count,), generator=gen)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + shift) % n_classes
    return noisy


def _check_same_config(run: Path, config: TrainConfig) -> None:
    """Write ``config.json``, or refuse a run folder that holds another config's run."""
    path = run / "config.json"
    if path.is_file():
        existing = json.loads(path.read_text())
        try:
            same = TrainConfig.from_dict(existing) == config  # later fields take their defaults
        except InputValueError:
            same = False
        if not same:
            raise InputValueError(message(
                f"run folder {str(run)!r}", "empty or holding a run of the same config",
                "a run of a different config", "Use a new folder for a new config."))
        return
    write_json(path, config.to_dict())
