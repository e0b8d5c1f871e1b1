"""Typed experiment configs (TOML), validated, expanded into runs with stable ids.

A config has five tables; every field is documented on its dataclass below.

```toml
name = "demo"
[grid]       # what to train: datasets x objectives x backbones x widths x seeds
[training]   # budget and checkpoint schedule, shared by every run
[analysis]   # what to measure at every checkpoint
[execution]  # how to run the grid (workers, engine)
[findings]   # how the findings read the results (pre-registered primary metric, burn-in)
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reluscope._files import safe_name
from reluscope._toml import toml_value
from reluscope._validation import message
from reluscope.data.own import is_own_dataset, own_dataset_problem, own_train_size
from reluscope.data.registry import DATASETS
from reluscope.errors import InputValueError
from reluscope.train.loop import TrainConfig
from reluscope.train.objectives import OBJECTIVES


@dataclass(frozen=True)
class Grid:
    """The runs: every combination of these lists.

    Attributes
    ----------
    datasets : list of {"mnist", "fashion-mnist"}
    objectives : list of str
        Keys of ``reluscope.train.OBJECTIVES`` (collapse variants included).
    backbones : list of {"mlp", "cnn", "lenet"} or "package.module:factory"
        Built-in backbones, or your own (imported only with ``--allow-imports``; its
        factory gets ``[training] backbone_options``).
    widths : list of int
        MLP hidden width / CNN head width.
    depth : int
        MLP hidden layers.
    seeds : list of int
    """

    datasets: list[str] = field(default_factory=lambda: ["mnist"])
    objectives: list[str] = field(default_factory=lambda: ["supervised", "simclr"])
    backbones: list[str] = field(default_factory=lambda: ["mlp"])
    widths: list[int] = field(default_factory=lambda: [64])
    depth: int = 3
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass(frozen=True)
class Training:
    """The training budget every run of the grid shares: the ``[training]`` table.

    Its fields are :class:`~reluscope.train.loop.TrainConfig` fields of the same names,
    meaning and checks (documented there); only the defaults are the grid's. The grid
    gives the rest of each run's TrainConfig (dataset, objective, backbone, width, depth,
    seed), see :meth:`train_config`.
    """

    epochs: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    subset: int | None = None
    checkpoints_per_decade: int = 3
    label_noise: float = 0.0
    checkpoint_every_epochs: int = 1
    backbone_options: dict[str, Any] = field(default_factory=dict)

    def train_config(self, **per_run: Any) -> TrainConfig:
        """One run's TrainConfig: these shared fields plus the run's own (`per_run`)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return TrainConfig(**shared, **per_run)


@dataclass(frozen=True)
class Analysis:
    """What is measured at each checkpoint (on the backbone, in eval mode).

    Attributes
    ----------
    planes : int
        Planes per dataset through triplets of test images, chosen once by ``plane_seed``
        and stored; half of them through three images of one class, half mixed.
    plane_margin : float
        Margin of ``Plane.through`` around the three images.
    plane_scale : float
        Half-width of each plane's square as a fraction of ``Plane.through``'s (1: the whole
        plane through the three images; 0.1: a local square around their centroid, the
        domain a conv net's slices can afford -- its whole plane holds millions of regions).
    plane_seed : int
    keep_partitions : int
        Partitions of the first planes saved at each pictured checkpoint, for the report.
    keep_checkpoints : int
        Pictured checkpoints per run: the first, the end of epoch 1, the last, then more
        spread over training (see ``runner.pictured_steps``).
    keep_seeds : int
        Only runs of the first ``keep_seeds`` seeds of the grid keep partitions.
    max_regions : int
        Region budget of one slice (larger slices are recorded as failed metrics).
    paths : int
        Segments between test images per checkpoint (half same class, half different).
    lc_points : int
        Test images where local complexity is measured.
    lc_radius : float
        Cross-polytope radius (input units, pixels in [0, 1]).
    lc_directions : int
        Cross-polytope directions P.
    lc_estimators : list of {"cross_polytope", "ball", "smooth"}
        Local-complexity estimators at the same points: cross-polytope always (``lc.*``),
        the ball (``|z| <= eps ||grad z||``, ``lc_ball.*``) and smooth (Patel & Montufar,
        ``lc_smooth.*``) ones when listed.
    lc_epsilon : float
        Radius of the ball estimator and sigma of the smooth one.
    lc_probes : int
        Gaussian probes of the Jacobian rows for the ball and smooth estimators.
    probe_train, probe_test : int or None
        Images of the train/test split used by the linear probe and kNN (None: all).
    knn_test : int or None
        Test images the kNN classifies (its bank is the probe's training images); None:
        the probe's test images. The similarity matrix costs ``knn_test x probe_train x d``.
    networks : list of {"backbone", "full"}
        Which networks the geometry is measured on: the backbone (metrics without prefix)
        and the backbone with the head the loss trains through (``full.`` metrics:
        classifier, projector, or DINO head before its normalisation).
    finetune_fractions : list of float
        Label fractions (class-balanced) at which the backbone is fine-tuned end to end with a
        new linear head (``reluscope.evaluate.finetune``), e.g. [0.01, 0.1, 1.0]; empty: off.
    finetune_steps : int
        Adam steps of each fine-tuning (batch 256, lr 1e-3).
    finetune_checkpoints : int
        Checkpoints per run that are fine-tuned: the last, the end of epoch 1, then more
        spread over training.
    robust_points : int
        Test images attacked by PGD at every checkpoint of a supervised run
        (``robust.linf_accuracy``, ``robust.l2_accuracy``; 0: off).
    robust_eps_linf, robust_eps_l2 : float
        Radii of the l-infinity and l2 balls (pixels in [0, 1]).
    robust_steps : int
        PGD steps (step size 2.5 eps / steps, random start, pixels kept in [0, 1]).
    full_planes : int
        Planes (the first ones) sliced for the full network. A 512-wide projector refines
        the backbone's regions about 10x, so these slices cost about 10x the backbone's; a
        linear classifier keeps them, and adds its decision boundary (about 1 s per plane of
        ~60,000 regions). Paths and local complexity always cover the full network.
    """

    planes: int = 4
    plane_margin: float = 0.2
    plane_scale: float = 1.0
    plane_seed: int = 0
    keep_partitions: int = 1
    keep_checkpoints: int = 4
    keep_seeds: int = 1
    max_regions: int = 2_000_000
    paths: int = 32
    lc_points: int = 200
    lc_radius: float = 0.5
    lc_directions: int = 8
    lc_estimators: list[str] = field(default_factory=lambda: ["cross_polytope"])
    lc_epsilon: float = 0.05
    lc_probes: int = 32
    probe_train: int | None = 10_000
    probe_test: int | None = 2_000
    knn_test: int | None = None
    networks: list[str] = field(default_factory=lambda: ["backbone", "full"])
    full_planes: int = 0
    finetune_fractions: list[float] = field(default_factory=list)
    finetune_steps: int = 300
    finetune_checkpoints: int = 3
    robust_points: int = 0
    robust_eps_linf: float = 0.1
    robust_eps_l2: float = 1.0
    robust_steps: int = 10


@dataclass(frozen=True)
class Execution:
    """How the grid runs.

    Attributes
    ----------
    workers : int
        Runs in parallel (processes on this machine).
    engine : {"local", "ray"}
        ``"ray"`` submits each run as a task to an existing Ray cluster
        (``ray.init(address="auto")``) instead of local processes; results land in the same
        folder, which must be shared storage.
    device : str
        Where training runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
        present); evaluation and geometry stay on the CPU (see ``reluscope.train.device``).
    loggers : list of {"tensorboard", "wandb"}
        Also log each run's training losses: TensorBoard event files in
        ``runs/<run_id>/tensorboard/``, or a Weights & Biases run (project = the experiment's
        name; ``WANDB_MODE=offline`` keeps it local). Off by default (optional extras).
    """

    workers: int = 2
    engine: str = "local"
    device: str = "cpu"
    loggers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Findings:
    """How the findings read the results: fixed in the config before the runs (pre-registered).

    Attributes
    ----------
    primary_metric : str
        The one geometry metric the findings and the open question test (others are
        reported with a multiple-comparison correction). Default: the mean over planes of
        log(regions per unit area) of the backbone's slices.
    full_network_metric : str
        The same questions asked of the full trained network (backbone + head): default the
        exact boundary density along the test segments (boundaries per unit length).
    burn_in_epochs : float
        Trends are read from this epoch on (every objective first loses most of its
        regions during epoch 1; a trend from step 0 measures that transient).
    confidence : float
        Level of every interval (cluster bootstrap over runs).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.
    correction : {"holm", "bh"}
        Multiple-comparison correction of the secondary metrics (Holm's family-wise, or
        Benjamini–Hochberg false discovery rate).
    comparable_gap : float
        "Comparable accuracy": the interval of (supervised − SSL) final probe accuracy lies
        below this many points (fraction; 0.02 = 2 points).
    detection_z : float
        Collapse detection: an indicator flags when its log deviation from the healthy runs
        of the other seeds at the same step exceeds this many seed-noise units.
    detection_persistence : int
        ... for this many consecutive checkpoints (one-checkpoint blips do not flag).
    """

    primary_metric: str = "slice.log_density_mean"
    burn_in_epochs: float = 1.0
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    correction: str = "holm"
    full_network_metric: str = "full.path.boundary_density"
    comparable_gap: float = 0.02
    detection_z: float = 3.0
    detection_persistence: int = 2


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: its name and the four tables."""

    name: str = "experiment"
    grid: Grid = field(default_factory=Grid)
    training: Training = field(default_factory=Training)
    analysis: Analysis = field(default_factory=Analysis)
    execution: Execution = field(default_factory=Execution)
    findings: Findings = field(default_factory=Findings)

    def runs(self) -> list[RunSpec]:
        """Every run of the grid, in a stable order."""
        g = self.grid
        return [RunSpec(self.training.train_config(dataset=d, objective=o, backbone=b, width=w, depth=g.depth,
                                                   seed=s))
                for d in g.datasets for b in g.backbones for w in g.widths for o in g.objectives
                for s in g.seeds]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its training config and a stable id derived from it."""

    train: TrainConfig

    def train_steps_per_epoch(self) -> int:
        """Optimiser steps per epoch of this run (training images // batch size)."""
        subset = self.train.subset
        if subset is not None:
            images = subset
        elif is_own_dataset(self.train.dataset):
            images = own_train_size(self.train.dataset)
        else:
            images = DATASETS[self.train.dataset].train_size
        return max(1, images // min(self.train.batch_size, images))

    @property
    def run_id(self) -> str:
        """``<objective>-<dataset>-<backbone><width>-s<seed>-<hash>``, stable across sessions."""
        c = self.train
        digest = hashlib.sha256(json.dumps(c.identity(), sort_keys=True).encode()).hexdigest()[:8]
        # a dataset file or a backbone's import path: as a folder name
        return f"{c.objective}-{safe_name(c.dataset)}-{safe_name(c.backbone)}{c.width}-s{c.seed}-{digest}"


_TABLES = {"grid": Grid, "training": Training, "analysis": Analysis, "execution": Execution,
           "findings": Findings}


def _build(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputValueError(message(where, "a table", repr(data), f"Write it as [{where}]."))
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputValueError(message(f"table [{where}]", f"only the fields {sorted(known)}",
                                      f"unknown fields {unknown}", "Fix the spelling or remove them."))
    return cls(**data)


class _Problems:
    """Every problem of a config, collected so that all are reported at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def fail(self, name: str, expected: str, got: Any, fix: str) -> None:
        self.found.append(message(f"`{name}` of the experiment config", expected, repr(got), fix))

    def integers(self, fields: dict[str, Any], low: int, optional: bool = False) -> None:
        for name, value in fields.items():
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "a positive integer" if low == 1 else f"an integer >= {low}"
                self.fail(name, kind + (" or absent (all)" if optional else ""), value,
                          "Use 0 to switch it off." if low == 0 else "Use 1 or more.")

    def reals(self, fields: dict[str, Any], low: float = 0.0, strict: bool = True) -> None:
        for name, value in fields.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                and (value > low if strict else value >= low)
            if not ok:
                self.fail(name, f"a finite number {'>' if strict else '>='} {low:g}", value, "e.g. 0.5.")

    def names(self, name: str, values: Any, allowed: list[str]) -> None:
        if not isinstance(values, list) or not values or any(v not in allowed for v in values):
            self.fail(name, f"a non-empty list of {allowed}", values, "Use the listed names.")
        elif len(set(values)) != len(values):
            self.fail(name, "distinct names", values, "Remove the repeated ones.")

    def integer_list(self, name: str, values: Any, low: int) -> None:
        if not isinstance(values, list) or not values or any(
                isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
            self.fail(name, f"a non-empty list of integers >= {low}", values, "e.g. [64, 256].")
        elif len(set(values)) != len(values):
            self.fail(name, "distinct values (a repeated one schedules the same runs twice)", values,
                      "Remove the repeated ones.")


def _check(config: ExperimentConfig) -> None:
    """Validate every field; raise one error listing all problems."""
    g, t, a, e, f = config.grid, config.training, config.analysis, config.execution, config.findings
    problems = _Problems()
    named = g.datasets
    if isinstance(named, list):  # your own (npz:, folder:, py:) are checked in full when loaded
        for name in named:
            problem = own_dataset_problem(name) if is_own_dataset(name) else None
            if problem:
                problems.fail("grid.datasets", "datasets of your own that exist (see reluscope.data.own)",
                              f"{name!r}: {problem}", "Check the path.")
        named = [d for d in named if not is_own_dataset(d)]
    problems.names("grid.datasets", named or ["mnist"], sorted(DATASETS))
    problems.names("grid.objectives", g.objectives, sorted(OBJECTIVES))
    from reluscope.nets.custom import is_import_path

    builtin = g.backbones
    if isinstance(builtin, list):  # your own backbones (import paths) are checked when built
        builtin = [b for b in builtin if not is_import_path(b)]
    problems.names("grid.backbones", builtin or ["mlp"], ["cnn", "lenet", "mlp"])
    problems.names("analysis.networks", a.networks, ["backbone", "full"])
    problems.names("analysis.lc_estimators", a.lc_estimators, ["ball", "cross_polytope", "smooth"])
    problems.integer_list("grid.widths", g.widths, 1)
    problems.integer_list("grid.seeds", g.seeds, 0)
    problems.integers({"grid.depth": g.depth, "training.epochs": t.epochs,
                       "training.batch_size": t.batch_size,
                       "training.checkpoints_per_decade": t.checkpoints_per_decade,
                       "analysis.planes": a.planes, "analysis.max_regions": a.max_regions,
                       "analysis.lc_directions": a.lc_directions,
                       "analysis.keep_checkpoints": a.keep_checkpoints, "analysis.keep_seeds": a.keep_seeds,
                       "execution.workers": e.workers,
                       "findings.detection_persistence": f.detection_persistence}, 1)
    problems.integers({"findings.n_boot": f.n_boot}, 100)
    problems.integers({"analysis.finetune_steps": a.finetune_steps,
                       "analysis.finetune_checkpoints": a.finetune_checkpoints,
                       "analysis.robust_steps": a.robust_steps}, 1)
    problems.integers({"analysis.robust_points": a.robust_points}, 0)
    problems.integers({"analysis.lc_probes": a.lc_probes}, 1)
    problems.reals({"analysis.lc_epsilon": a.lc_epsilon})
    problems.reals({"analysis.robust_eps_linf": a.robust_eps_linf, "analysis.robust_eps_l2": a.robust_eps_l2})
    fractions = a.finetune_fractions
    if not isinstance(fractions, list) or any(isinstance(v, bool) or not isinstance(v, int | float)
                                              or not 0 < v <= 1 for v in fractions):
        problems.fail("analysis.finetune_fractions", "a list of label fractions in (0, 1]", fractions,
                      "e.g. [0.01, 0.1, 1.0], or [] to switch fine-tuning off.")
    problems.integers({"analysis.paths": a.paths, "analysis.lc_points": a.lc_points,
                       "analysis.keep_partitions": a.keep_partitions, "analysis.full_planes": a.full_planes,
                       "analysis.plane_seed": a.plane_seed, "findings.seed": f.seed}, 0)
    problems.integers({"training.subset": t.subset, "analysis.probe_train": a.probe_train,
                       "analysis.probe_test": a.probe_test, "analysis.knn_test": a.knn_test}, 1,
                      optional=True)
    problems.reals({"training.lr": t.lr, "analysis.lc_radius": a.lc_radius,
                    "analysis.plane_margin": a.plane_margin, "analysis.plane_scale": a.plane_scale,
                    "findings.comparable_gap": f.comparable_gap,
                    "findings.detection_z": f.detection_z})
    problems.reals({"training.weight_decay": t.weight_decay, "findings.burn_in_epochs": f.burn_in_epochs,
                    "training.label_noise": t.label_noise}, strict=False)
    problems.integers({"training.checkpoint_every_epochs": t.checkpoint_every_epochs}, 0)
    if isinstance(t.label_noise, int | float) and not t.label_noise < 1:
        problems.fail("training.label_noise", "a fraction in [0, 1)", t.label_noise, "e.g. 0.2.")
    if isinstance(a.lc_directions, int) and a.lc_directions > 784:
        problems.fail("analysis.lc_directions", "at most 784 (orthonormal directions of a 28x28 input)",
                      a.lc_directions, "e.g. 25.")
    for name, metric in {"findings.primary_metric": f.primary_metric,
                         "findings.full_network_metric": f.full_network_metric}.items():
        if not isinstance(metric, str) or not metric:
            problems.fail(name, "a metric name", metric, 'e.g. "slice.log_density_mean".')
    if not isinstance(f.confidence, float) or not 0.5 <= f.confidence < 1:
        problems.fail("findings.confidence", "a number in [0.5, 1)", f.confidence, "e.g. 0.95.")
    if f.correction not in ("holm", "bh"):
        problems.fail("findings.correction", "'holm' or 'bh'", f.correction,
                      "Use 'holm' (family-wise) or 'bh' (FDR).")
    if not isinstance(e.device, str) or not (e.device in ("cpu", "cuda", "auto") or
                                             re.fullmatch(r"cuda:\d+", e.device)):
        problems.fail("execution.device", "'cpu', 'cuda', 'cuda:N' or 'auto'", e.device,
                      "Train on the CPU, a CUDA GPU, or 'auto' (CUDA when present).")
    if not isinstance(e.loggers, list) or any(name not in ("tensorboard", "wandb") for name in e.loggers):
        problems.fail("execution.loggers", "a list of 'tensorboard' and 'wandb'", e.loggers,
                      "e.g. ['tensorboard'].")
    if e.engine not in ("local", "ray"):
        problems.fail("execution.engine", "'local' or 'ray'", e.engine,
                      "Use 'local' unless a Ray cluster is running.")
    if len(problems.found) == 1:
        raise InputValueError(problems.found[0])
    if problems.found:
        raise InputValueError(f"the experiment config has {len(problems.found)} problems:\n  - "
                              + "\n  - ".join(problems.found))


def shipped_configs() -> dict[str, Path]:
    """The experiment configs installed with the package, by name (file stem)."""
    from importlib import resources

    folder = resources.files("reluscope.experiments") / "configs"
    return {entry.name.removesuffix(".toml"): Path(str(entry)) for entry in folder.iterdir()
            if entry.name.endswith(".toml")}


def describe_config(path: Path) -> str:
    """The first line of a config's leading comment (what it is), or ''."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read and validate a TOML experiment config (a path, or the name of a shipped config:
    see :func:`shipped_configs`), with ``section.key=value`` `overrides` (see
    :func:`apply_overrides`) applied before validation."""
    source = Path(path)
    if not source.is_file():
        source = shipped_configs().get(str(path).removesuffix(".toml"), source)
    if not source.is_file():
        raise InputValueError(message("the experiment config",
                                      "an existing TOML file or a shipped config's name",
                                      f"{str(source)!r}, which does not exist",
                                      "Check the path; `reluscope configs` lists the shipped configs."))
    try:
        data = tomllib.loads(source.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputValueError(message("the experiment config", "valid TOML", f"{str(source)!r}: {exc}",
                                      "Fix the syntax at the position given.")) from exc
    if "grid" not in data:  # an empty file would silently start the default grid
        raise InputValueError(message("the experiment config", "a [grid] table saying what to train",
                                      f"{str(source)!r} without one", "Start from configs/mnist-small.toml."))
    return config_from_dict(apply_overrides(data, overrides or []))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`data` with each ``section.key=value`` (or ``name=value``) set; values are TOML
    (``3``, ``1e-3``, ``true``, ``[0, 1, 2]``, ``"simclr"``), bare words are strings."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for text in overrides:
        key, sep, raw = text.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path) or len(path) > 2 or (len(path) == 1 and path[0] != "name"):
            raise InputValueError(message("`--set` of the experiment config",
                                          "section.key=value (or name=...)", repr(text),
                                          "e.g. --set training.epochs=2 --set grid.seeds=[0]"))
        value = toml_value(raw)
        if len(path) == 1:
            out["name"] = value
        else:
            table = out.setdefault(path[0], {})
            if not isinstance(table, dict):
                raise InputValueError(message(f"`--set {key}`", "a key of a table",
                                              f"{path[0]!r} is not a table",
                                              "Set table keys such as training.epochs."))
            table[path[1]] = value
    return out


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config from a parsed TOML/JSON dict."""
    unknown = sorted(set(data) - {"name", *_TABLES})
    if unknown:
        raise InputValueError(message("the experiment config", f"the keys name, {', '.join(_TABLES)}",
                                      f"unknown keys {unknown}", "Fix the spelling or remove them."))
    tables = {key: _build(cls, data.get(key, {}), key) for key, cls in _TABLES.items()}
    name = data.get("name", "experiment")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise InputValueError(message("`name` of the experiment config",
                                      "a folder name of letters, digits, '.', '_' and '-' (no path "
                                      "separators, not starting with '.')", repr(name),
                                      'e.g. name = "mnist-study"; choose where it is written with --root.'))
    config = ExperimentConfig(name=name, **tables)
    _check(config)
    return config
