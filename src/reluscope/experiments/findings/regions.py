"""Findings 1-3: fewer regions than supervised at comparable accuracy; contrastive
objectives expand regions; self-distillation merges them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reluscope.experiments.config import Findings
from reluscope.experiments.findings.common import (
    Finding,
    Resampler,
    final_rows,
    healthy_ssl,
    is_collapse_variant,
    log_values,
    summarise,
)
from reluscope.experiments.metric_names import network_of
from reluscope.experiments.statistics import classify, first_crossing, pooled_std, theil_sen

#: Matched-quality comparison (finding 1): probe-accuracy levels spread over the range both
#: trajectories reach.
MATCHED_LEVELS = 5



def matched_quality_gap(table: pd.DataFrame, objective: str, reference: str, metric: str,
                        target: str = "probe_test_accuracy") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log metric of each run the first time it reaches each of ``MATCHED_LEVELS`` accuracies.

    The levels are spread over the accuracy range that every run of both objectives
    reaches (from the highest starting accuracy to the lowest best accuracy). Returns the
    levels, and the (runs, levels) log-metric arrays of `objective` and `reference` (empty
    when the ranges do not overlap).
    """
    runs = {name: [g.sort_values("step") for _, g in table[table["objective"] == name].groupby("run_id")]
            for name in (objective, reference)}
    every = runs[objective] + runs[reference]
    if not runs[objective] or not runs[reference] or target not in table or metric not in table:
        return np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
    low = max(float(g[target].iloc[0]) for g in every)
    high = min(float(g[target].max()) for g in every)
    if not high > low:
        return np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
    levels = np.linspace(low, high, MATCHED_LEVELS + 2)[1:-1]

    def at_levels(group: pd.DataFrame) -> list[float]:
        y = log_values(metric, group[metric].to_numpy(float))
        return [first_crossing(group[target].to_numpy(float), y, a) for a in levels]

    return (levels, np.array([at_levels(g) for g in runs[objective]]),
            np.array([at_levels(g) for g in runs[reference]]))


def finding_fewer_regions(table: pd.DataFrame, options: Findings, metric: str | None = None,
                          reference: str = "supervised") -> Finding:
    """1. SSL reaches accuracy comparable to supervised with fewer regions.

    `reference` is the supervised baseline: ``"supervised"``, or ``"supervised-aug"`` (trained
    on the SSL augmentations, so that augmentation is not confounded with the objective).
    """
    metric = metric or options.primary_metric
    gap = options.comparable_gap
    title = "SSL: comparable accuracy, fewer regions" + ("" if reference == "supervised" else
                                                          f" (against {reference})")
    criterion = (
        f"per healthy SSL objective against {reference}, final checkpoints, {options.confidence:.0%} "
        f"cluster-bootstrap intervals over seeds: comparable = interval of ({reference} - SSL) probe "
        f"accuracy below {gap:.0%} points; fewer = interval of the log-ratio of {metric} below minus the "
        "seed-noise band (pooled within-objective std of the final log metric). Supports: comparable and "
        "fewer; refutes: gap interval above the margin, or log-ratio interval above minus the band. Also the "
        "log-ratio at matched probe accuracy (first time each run reaches it). Accuracy gains are over "
        "each run's untrained network (step 0)")
    final = final_rows(table)
    sup = final[final["objective"] == reference]
    ssl_names = healthy_ssl(final)
    if sup.empty or not ssl_names or metric not in final or "probe_test_accuracy" not in final:
        return Finding(title, "inconclusive", criterion, "needs supervised and SSL runs with this metric",
                       metric, network_of(metric))
    start = table.loc[table.groupby("run_id")["step"].idxmin()].set_index("run_id")["probe_test_accuracy"]
    gain = final.set_index("run_id")["probe_test_accuracy"] - start
    healthy = final[~final["objective"].map(is_collapse_variant)]
    band = pooled_std(log_values(metric, healthy[metric].to_numpy(float)), healthy["objective"].to_numpy())
    band = band if np.isfinite(band) else 0.0
    boot = Resampler(options)
    sup_acc = sup["probe_test_accuracy"].to_numpy(float)
    sup_log = log_values(metric, sup[metric].to_numpy(float))
    parts = [f"{reference}: probe {boot.mean(sup_acc).text('.3f')}, gain over untrained "
             f"{gain[sup['run_id']].mean():+.3f}; seed-noise band {band:.3f} (log units)"]
    verdicts: dict[str, str] = {}
    for name in ssl_names:
        runs = final[final["objective"] == name]
        acc = runs["probe_test_accuracy"].to_numpy(float)
        diff_acc = boot.difference(sup_acc, acc)
        ratio = boot.difference(log_values(metric, runs[metric].to_numpy(float)), sup_log)
        _, mine, theirs = matched_quality_gap(table, name, reference, metric)
        matched = (boot.difference(np.nanmean(mine, 1), np.nanmean(theirs, 1)) if mine.size and theirs.size
                   else None)
        comparable = np.isfinite(diff_acc.hi) and diff_acc.hi < gap
        fewer = np.isfinite(ratio.hi) and ratio.hi < -band
        if comparable and fewer:
            verdicts[name] = "supports"
        elif (np.isfinite(diff_acc.lo) and diff_acc.lo > gap) or (np.isfinite(ratio.lo) and ratio.lo > -band):
            verdicts[name] = "refutes"
        else:
            verdicts[name] = "unclear"
        parts.append(f"{name} ({verdicts[name]}): accuracy gap {diff_acc.text('+.3f')}, gain "
                     f"{gain[runs['run_id']].mean():+.3f}; log-ratio {ratio.text('+.2f')} "
                     f"(x{np.exp(ratio.value):.2f}); at matched accuracy "
                     f"{matched.text('+.2f') if matched is not None else 'no common range'}")
    return Finding(title, summarise(verdicts, "supports", {"refutes"}), criterion, "; ".join(parts),
                   metric, network_of(metric))



def run_trends(table: pd.DataFrame, metric: str, burn_in_epochs: float) -> pd.DataFrame:
    """Per run: Theil–Sen slope of the log metric against log(step) from the burn-in on.

    Columns: run_id, objective, family, seed, slope, change (slope x the span of
    log(step) read, i.e. the fitted change of the log metric over the window), final
    (log metric at the last checkpoint), checkpoints (how many were read).
    """
    rows = []
    if metric not in table:
        return pd.DataFrame(columns=["run_id", "objective", "family", "seed", "slope", "change", "final",
                                     "checkpoints"])
    for run_id, group in table.groupby("run_id"):
        group = group.sort_values("step")
        window = group[(group["epoch"] >= burn_in_epochs) & (group["step"] > 0)]
        y = log_values(metric, window[metric].to_numpy(float))
        x = np.log(window["step"].to_numpy(float))
        slope = theil_sen(x, y) if len(window) >= 3 else float("nan")
        span = float(x.max() - x.min()) if len(x) else float("nan")
        rows.append({"run_id": run_id, "objective": group["objective"].iloc[0],
                     "family": group["family"].iloc[0], "seed": group["seed"].iloc[0], "slope": slope,
                     "change": slope * span, "final": log_values(metric, group[metric].to_numpy(float))[-1],
                     "checkpoints": len(window)})
    return pd.DataFrame(rows)


def _trend_finding(table: pd.DataFrame, options: Findings, metric: str, family: str | None, title: str,
                   expand: bool) -> Finding:
    claim = "up (expand)" if expand else "down or flat (merge)"
    criterion = " ".join([
        f"per {family or 'healthy'} objective (collapse variants excluded): Theil-Sen slope of log",
        f"{metric} against log step from epoch {options.burn_in_epochs:g} on, times the span read =",
        f"fitted log change over the window; mean over seeds with a {options.confidence:.0%}",
        "cluster-bootstrap interval, against the seed-noise band (pooled within-objective std of the",
        f"final log metric). Claim: {claim}; holds when every objective's interval says so, does not",
        "hold when every one says the opposite, mixed or inconclusive otherwise"])
    trends = run_trends(table, metric, options.burn_in_epochs)
    healthy = trends[~trends["objective"].map(is_collapse_variant)]
    picked = healthy if family is None else healthy[healthy["family"] == family]
    if picked.empty or picked["change"].isna().all():
        return Finding(title, "inconclusive", criterion, f"no {family} runs with {metric} after the burn-in",
                       metric, network_of(metric))
    band = pooled_std(healthy["final"].to_numpy(float), healthy["objective"].to_numpy())
    band = band if np.isfinite(band) else 0.0
    boot = Resampler(options)
    verdicts, parts = {}, [f"seed-noise band {band:.3f}"]
    for name, runs in picked.groupby("objective"):
        change = boot.mean(runs["change"].dropna().to_numpy(float))
        direction = classify(change, band)
        verdicts[str(name)] = direction
        parts.append(f"{name}: log change {change.text('+.2f')} (x{np.exp(change.value):.2f}), {direction}")
    if family is not None:
        rest = healthy[(healthy["family"] != family)].dropna(subset=["change"])
        others = rest.groupby("family")["change"].mean()
        parts.append("other families: " + ", ".join(f"{f} {v:+.2f}" for f, v in others.items()))
    if expand:
        verdict = summarise(verdicts, "up", {"down", "flat"})
    else:
        merged = {k: ("merge" if v in ("down", "flat") else v) for k, v in verdicts.items()}
        verdict = summarise(merged, "merge", {"up"})
    return Finding(title, verdict, criterion, "; ".join(parts), metric, network_of(metric))


def finding_contrastive_expand(table: pd.DataFrame, options: Findings, metric: str | None = None) -> Finding:
    """2. Contrastive objectives expand regions over training."""
    return _trend_finding(table, options, metric or options.primary_metric, "contrastive",
                          "contrastive: regions multiply", expand=True)


def finding_distillation_merge(table: pd.DataFrame, options: Findings, metric: str | None = None) -> Finding:
    """3. Self-distillation merges regions over training (down or flat)."""
    return _trend_finding(table, options, metric or options.primary_metric, "self-distillation",
                          "self-distillation: regions merge", expand=False)
