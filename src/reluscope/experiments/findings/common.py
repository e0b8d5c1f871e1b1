"""The results table as findings read it: wide rows, objective families, the Finding
record, and the shared bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reluscope.experiments.config import Findings
from reluscope.experiments.metric_names import is_geometry
from reluscope.experiments.statistics import Estimate, bootstrap

#: Quality targets.
TARGETS = ("probe_test_accuracy", "knn_accuracy")


def wide(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step), one column per metric."""
    index = ["run_id", "dataset", "objective", "family", "backbone", "width", "seed", "step", "epoch"]
    table = results.pivot_table(index=index, columns="metric", values="value", aggfunc="mean")
    return table.reset_index().sort_values(["run_id", "step"]).reset_index(drop=True)


def geometry_metrics(table: pd.DataFrame) -> list[str]:
    """Columns of `table` that are geometry metrics."""
    return [c for c in table.columns if isinstance(c, str) and is_geometry(c)]


@dataclass
class Finding:
    """One question, its verdict, the criterion and the numbers behind it.

    ``network`` says which network the metric measures (``"backbone"`` or ``"full"``:
    backbone + trained head); ``metric`` names it.
    """

    title: str
    verdict: str
    criterion: str
    numbers: str
    metric: str = ""
    network: str = "backbone"


def base_objective(objective: str) -> str:
    """The objective without its collapse switch (``simsiam-no-stopgrad`` -> ``simsiam``)."""
    for marker in ("-no-", "-invariance-only"):
        if marker in objective:
            return objective.split(marker)[0]
    return objective


def is_collapse_variant(objective: str) -> bool:
    """Whether the objective is a collapse switch (``-no-...`` or ``-invariance-only``)."""
    return base_objective(objective) != objective


def is_supervised(objective: str) -> bool:
    """Supervised baselines (``supervised``, ``supervised-aug``)."""
    return objective.startswith("supervised")


def log_values(metric: str, values: np.ndarray) -> np.ndarray:
    """The metric on a log scale: as is when already a log (``log_`` in its name), else log."""
    values = np.asarray(values, dtype=float)
    if "log_" in metric:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(values), np.nan)


def healthy_reference(table: pd.DataFrame, run: pd.DataFrame) -> pd.DataFrame | None:
    """Per-step means of the healthy counterpart of `run` (same objective without its switch)
    over the grid's other seeds, or None when there is none. `run` holds one run's rows."""
    objective, seed = run["objective"].iloc[0], run["seed"].iloc[0]
    healthy = table[(table["objective"] == base_objective(objective)) & (table["seed"] != seed)]
    return healthy.groupby("step").mean(numeric_only=True) if not healthy.empty else None


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table.loc[table.groupby("run_id")["step"].idxmax()]


def healthy_ssl(table: pd.DataFrame) -> list[str]:
    names = table["objective"].unique()
    return sorted(o for o in names if not is_supervised(o) and not is_collapse_variant(o))


def summarise(verdicts: dict[str, str], support: str, refute: set[str]) -> str:
    """Overall verdict from per-objective outcomes: `support` for the claim, `refute` against."""
    values = list(verdicts.values())
    if not values:
        return "inconclusive"
    if all(v == support for v in values):
        return "holds"
    if all(v in refute for v in values):
        return "does not hold"
    if any(v == support for v in values) and any(v in refute for v in values):
        return "mixed"
    return "inconclusive"


class Resampler:
    """Bootstrap settings of one findings pass (a seeded generator shared by all intervals)."""

    def __init__(self, options: Findings) -> None:
        self.options = options
        self.rng = np.random.default_rng(options.seed)

    def mean(self, values: np.ndarray) -> Estimate:
        return bootstrap([values], lambda v: float(np.mean(v)), n_boot=self.options.n_boot, rng=self.rng,
                         confidence=self.options.confidence)

    def difference(self, a: np.ndarray, b: np.ndarray) -> Estimate:
        return bootstrap([a, b], lambda u, v: float(np.mean(u) - np.mean(v)), n_boot=self.options.n_boot,
                         rng=self.rng, confidence=self.options.confidence)
