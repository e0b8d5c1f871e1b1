"""Local complexity (Patel & Montufar; Humayun et al.) against total variation, robustness
and feature rank, and nonlinearity through double descent (Gamba et al.).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from reluscope.experiments.config import Findings
from reluscope.experiments.findings.common import (
    Finding,
    Resampler,
    final_rows,
    is_collapse_variant,
    is_supervised,
)
from reluscope.experiments.findings.regions import _trend_finding
from reluscope.experiments.metric_names import network_of


def within_run_association(table: pd.DataFrame, x: str, y: str, burn_in_epochs: float,
                           runs: pd.Series | None = None) -> pd.DataFrame:
    """Per run: Spearman of `x` with `y` over its checkpoints from the burn-in on.

    Columns run_id, objective, rho, checkpoints; runs lacking either metric are left out.
    `runs` (a boolean mask over `table`) restricts which rows are read.
    """
    rows = []
    part = table if runs is None else table[runs]
    if x not in part or y not in part:
        return pd.DataFrame(columns=["run_id", "objective", "rho", "checkpoints"])
    for run_id, group in part.groupby("run_id"):
        window = group[group["epoch"] >= burn_in_epochs][[x, y]].dropna()
        rho = float(stats.spearmanr(window[x], window[y])[0]) if len(window) >= 4 and \
            window[x].nunique() > 1 and window[y].nunique() > 1 else float("nan")
        rows.append({"run_id": run_id, "objective": group["objective"].iloc[0], "rho": rho,
                     "checkpoints": len(window)})
    return pd.DataFrame(rows)


def finding_local_complexity(table: pd.DataFrame, options: Findings) -> list[Finding]:
    """Patel & Montufar (2024): local complexity bounds the total variation, relates to
    robustness and to low-rank features, and falls over training.

    Each claim is read within runs (Spearman over a run's checkpoints after the burn-in),
    averaged over healthy runs with a cluster-bootstrap interval: "holds" when the interval
    has the claimed sign, "does not hold" when it has the other, else "inconclusive".
    """
    healthy = ~table["objective"].map(is_collapse_variant)
    supervised = table["objective"].map(is_supervised) & healthy
    claims = [
        ("local complexity tracks total variation", "full.lc.total", "full.path.total_variation_density",
         +1, healthy, "full"),
        ("higher local complexity, lower robust accuracy", "full.lc.total", "robust.linf_accuracy", -1,
         supervised, "full"),
        ("lower feature rank comes with lower local complexity", "lc.total", "feature_rankme", +1, healthy,
         "backbone"),
    ]
    boot = Resampler(options)
    out = []
    for title, x, y, sign, mask, network in claims:
        assoc = within_run_association(table, x, y, options.burn_in_epochs, mask).dropna(subset=["rho"])
        criterion = (f"per healthy run, Spearman of {x} with {y} over its checkpoints from epoch "
                     f"{options.burn_in_epochs:g}; mean over runs with a {options.confidence:.0%} "
                     "cluster-bootstrap interval; holds when the interval is "
                     f"{'above' if sign > 0 else 'below'} 0")
        if assoc.empty:
            out.append(Finding(title, "inconclusive", criterion, f"no runs with {x} and {y}", x, network))
            continue
        estimate = boot.mean(assoc["rho"].to_numpy(float))
        per_objective = assoc.groupby("objective")["rho"].mean()
        numbers = (f"mean within-run Spearman {estimate.text('+.2f')} over {len(assoc)} runs; by objective: "
                   + ", ".join(f"{k} {v:+.2f}" for k, v in per_objective.items()))
        if np.isfinite(estimate.lo) and sign * estimate.lo > 0 and sign * estimate.hi > 0:
            verdict = "holds"
        elif np.isfinite(estimate.lo) and sign * estimate.lo < 0 and sign * estimate.hi < 0:
            verdict = "does not hold"
        else:
            verdict = "inconclusive"
        out.append(Finding(title, verdict, criterion, numbers, x, network))
    falls = _trend_finding(table, options, "lc.total", None, "local complexity falls after the first epoch",
                           expand=False)
    return [*out, falls]



def finding_double_descent(table: pd.DataFrame, options: Findings,
                           nonlinearity: str = "full.path.mean_abs_deviation",
                           density: str = "path.boundary_density") -> Finding:
    """Does the nonlinearity follow the test error through model-wise double descent?

    Gamba et al. (AISTATS 2022): across widths around the interpolation threshold, the mean
    |f - affine interpolation| along paths between data (on the classifier's outputs) peaks
    where the test error peaks, while the density of region boundaries only grows with width.
    Read at the final checkpoints of supervised runs, per width, means over seeds.
    """
    title = "nonlinearity follows test error through double descent (Gamba et al.)"
    criterion = (
        f"final checkpoints of supervised runs, means over seeds per width: the test error (1 - classifier "
        f"test accuracy) has a peak inside the sweep; the width where {nonlinearity} peaks is the test "
        f"error's peak width or a neighbour in the sweep in at least {options.confidence:.0%} of bootstrap "
        f"resamples of the seeds (does not hold: at most {1 - options.confidence:.0%}); and {density} grows "
        "with width (Spearman over widths > 0)")
    runs = final_rows(table)
    runs = runs[runs["objective"].map(is_supervised)]
    error_source = "classifier.test_accuracy" if "classifier.test_accuracy" in runs else "probe_test_accuracy"
    widths = sorted(runs["width"].unique())
    if len(widths) < 3 or nonlinearity not in runs or error_source not in runs:
        return Finding(title, "inconclusive", criterion,
                       f"needs supervised runs at >= 3 widths with {nonlinearity}; "
                       f"this grid has {len(widths)}",
                       nonlinearity, network_of(nonlinearity))
    runs = runs.assign(test_error=1 - runs[error_source])
    seeds = sorted(runs["seed"].unique())

    def curves(pick: list[int]) -> pd.DataFrame:
        chosen = pd.concat([runs[runs["seed"] == s] for s in pick])
        return chosen.groupby("width")[["test_error", nonlinearity, density]].mean().reindex(widths)

    mean = curves(seeds)
    peak = int(np.nanargmax(mean["test_error"].to_numpy()))
    nonlin_peak = int(np.nanargmax(mean[nonlinearity].to_numpy()))
    interior = 0 < peak < len(widths) - 1
    rng = np.random.default_rng(options.seed)
    agree = []
    for _ in range(options.n_boot):
        sample = curves([seeds[i] for i in rng.integers(0, len(seeds), len(seeds))])
        agree.append(abs(int(np.nanargmax(sample[nonlinearity].to_numpy()))
                         - int(np.nanargmax(sample["test_error"].to_numpy()))) <= 1)
    share = float(np.mean(agree))
    grows = float(stats.spearmanr(widths, mean[density].to_numpy())[0]) if density in mean else float("nan")
    by_width = ", ".join(f"{w}: {e:.3f}" for w, e in zip(widths, mean["test_error"], strict=True))
    numbers = (f"test error by width: {by_width}; peak at width {widths[peak]}; {nonlinearity} peaks at "
               f"width {widths[nonlin_peak]}; peaks within one step in {share:.0%} of {options.n_boot} "
               f"resamples of {len(seeds)} seeds; "
               f"Spearman(width, {density}) {grows:+.2f}")
    if not interior:
        return Finding(title, "inconclusive", criterion, "no test-error peak inside the sweep (no double "
                       "descent to follow): " + numbers, nonlinearity, network_of(nonlinearity))
    if share >= options.confidence and grows > 0:
        verdict = "holds"
    elif share <= 1 - options.confidence:
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    return Finding(title, verdict, criterion, numbers, nonlinearity, network_of(nonlinearity))
