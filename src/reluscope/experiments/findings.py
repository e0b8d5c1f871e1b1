"""From the results table to answers: correlations with quality, and the paper's findings.

Every finding reads whole trajectories or matched points, never two hand-picked
checkpoints; its unit of evidence is the run (intervals from a cluster bootstrap over
seeds, :mod:`reluscope.experiments.statistics`); its thresholds are seed-noise bands
(how much runs that differ only in their seed disagree), not fixed percentages; it tests
the one metric pre-registered in the config's ``[findings]`` table and prints its
criterion, numbers and intervals; "inconclusive" whenever an interval straddles.

Findings (Muthivhi & van Zyl, 2026, and the question they leave open):

1. SSL reaches accuracy comparable to supervised with fewer regions (final checkpoint,
   and at matched probe accuracy along the trajectories).
2. Contrastive objectives expand regions over training (trend after the burn-in).
3. Self-distillation merges them (trend after the burn-in: down or flat).
4. Collapse shows early in region geometry (lead over the standard indicators, with a
   healthy-vs-healthy null for the false-alarm rate of every indicator).
5. Geometry predicts quality across objectives (leave-one-objective-out) and across
   architectures (leave-one-architecture-out); every other metric in a corrected table.

Findings 1-3 are asked of the backbone (the primary metric) and of the full trained
network (``findings.full_network_metric``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from reluscope.experiments.config import Findings
from reluscope.experiments.statistics import (
    Estimate,
    adjust_pvalues,
    bootstrap,
    classify,
    first_crossing,
    loo_r2,
    persistent_onset,
    pooled_std,
    spearman_permutation,
    theil_sen,
)

#: Metric prefixes that measure geometry (candidates to predict quality).
GEOMETRY_PREFIXES = ("slice.", "path.", "path_same.", "path_diff.", "lc.")
#: Up to this many rows, Kendall's tau comes from the pair sign matrices (all columns at once).
KENDALL_PAIRWISE_MAX = 300
#: Quality targets.
TARGETS = ("probe_test_accuracy", "knn_accuracy")
#: Finding 4: the geometry indicators watched beside the pre-registered primary metric, and
#: the standard collapse indicators they race against.
COLLAPSE_GEOMETRY = ("slice.log_density_mean", "path.boundary_density", "full.path.boundary_density",
                     "lc.total")
COLLAPSE_STANDARD = ("embedding_std", "embedding_rankme", "probe_test_accuracy")
#: Matched-quality comparison (finding 1): probe-accuracy levels spread over the range both
#: trajectories reach.
MATCHED_LEVELS = 5


def wide(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step), one column per metric."""
    index = ["run_id", "dataset", "objective", "family", "backbone", "width", "seed", "step", "epoch"]
    table = results.pivot_table(index=index, columns="metric", values="value", aggfunc="mean")
    return table.reset_index().sort_values(["run_id", "step"]).reset_index(drop=True)


def geometry_metrics(table: pd.DataFrame) -> list[str]:
    """Columns of `table` that are geometry metrics."""
    return [c for c in table.columns if isinstance(c, str) and c.startswith(GEOMETRY_PREFIXES)]


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman and Kendall of two vectors (NaN when undefined)."""
    rho, tau = rank_correlations(np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float))
    return float(rho[0]), float(tau[0])


def rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho and Kendall tau-b of each column of ``x`` (n, m) with ``y`` (n,).

    Rows with a non-finite value are dropped per column; NaN where fewer than 3 remain
    or a side is constant. Vectorised over columns (Kendall from the pair sign matrices).
    """
    m = x.shape[1]
    rho, tau = np.full(m, np.nan), np.full(m, np.nan)
    for cols, keep in _column_groups(x, y):
        xs, ys = x[keep][:, cols], y[keep]
        if len(ys) < 3 or np.ptp(ys) == 0:
            continue
        rx = stats.rankdata(xs, axis=0)
        ry = stats.rankdata(ys)
        rx, ry = rx - rx.mean(0), ry - ry.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[cols] = (rx * ry[:, None]).sum(0) / np.sqrt((rx ** 2).sum(0) * (ry ** 2).sum())
            if len(ys) <= KENDALL_PAIRWISE_MAX:
                sx = np.sign(xs[:, None, :] - xs[None, :, :])  # (k, k, c)
                sy = np.sign(ys[:, None] - ys[None, :])[..., None]
                concord = (sx * sy).sum((0, 1))
                tau[cols] = concord / np.sqrt((sx ** 2).sum((0, 1)) * (sy ** 2).sum())
            else:  # large tables: O(n log n) per column
                tau[cols] = [stats.kendalltau(xs[:, c], ys)[0] for c in range(xs.shape[1])]
    return rho, tau


def _column_groups(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Columns sharing the same set of usable rows (usually all of them), with that row mask."""
    finite = np.isfinite(x) & np.isfinite(y)[:, None]
    groups: dict[bytes, list[int]] = {}
    for j in range(x.shape[1]):
        groups.setdefault(finite[:, j].tobytes(), []).append(j)
    return [(np.array(cols), finite[:, cols[0]]) for cols in groups.values()]


def correlations(table: pd.DataFrame, *, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Spearman and Kendall correlation of every geometry metric with probe and kNN accuracy.

    Scopes: ``pooled`` (all runs and checkpoints) and each objective. 95% confidence
    intervals by bootstrap: seeds are resampled with replacement when a scope has
    several, else checkpoints (column ``resampled`` says which).
    """
    rng = np.random.default_rng(seed)
    rows = []
    scopes = [("pooled", table)] + [(name, part) for name, part in table.groupby("objective")]
    for scope, part in scopes:
        metrics = geometry_metrics(part)
        seeds = part["seed"].to_numpy()
        unique = np.unique(seeds)
        by_seed = len(unique) > 1
        samples = []
        for _ in range(n_boot):
            if by_seed:
                pick = rng.choice(unique, len(unique))
                samples.append(np.concatenate([np.nonzero(seeds == s)[0] for s in pick]))
            else:
                samples.append(rng.integers(0, len(part), len(part)))
        x = part[metrics].to_numpy(float)
        for target in TARGETS:
            if target not in part or not metrics:
                continue
            y = part[target].to_numpy(float)
            rho, tau = rank_correlations(x, y)
            boot = np.array([rank_correlations(x[idx], y[idx]) for idx in samples])  # (B, 2, m)
            with warnings.catch_warnings():  # constant metrics: all-NaN columns
                warnings.simplefilter("ignore", RuntimeWarning)
                lo = np.nanpercentile(boot, 2.5, axis=0)
                hi = np.nanpercentile(boot, 97.5, axis=0)
            for j, metric in enumerate(metrics):
                rows.append({"scope": scope, "metric": metric, "target": target, "n": len(part),
                             "spearman": rho[j], "spearman_lo": lo[0, j], "spearman_hi": hi[0, j],
                             "kendall": tau[j], "kendall_lo": lo[1, j], "kendall_hi": hi[1, j],
                             "resampled": "seeds" if by_seed else "checkpoints"})
    return pd.DataFrame(rows)


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


def network_of(metric: str) -> str:
    """``"full"`` for metrics of the backbone + head (``full.`` prefix), else ``"backbone"``."""
    return "full" if metric.startswith("full.") else "backbone"


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


def _final(table: pd.DataFrame) -> pd.DataFrame:
    return table.loc[table.groupby("run_id")["step"].idxmax()]


def _healthy_ssl(table: pd.DataFrame) -> list[str]:
    names = table["objective"].unique()
    return sorted(o for o in names if not is_supervised(o) and not is_collapse_variant(o))


def _summarise(verdicts: dict[str, str], support: str, refute: set[str]) -> str:
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


class _Resampler:
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


# ---------------------------------------------------------------------------- finding 1
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
    final = _final(table)
    sup = final[final["objective"] == reference]
    ssl_names = _healthy_ssl(final)
    if sup.empty or not ssl_names or metric not in final or "probe_test_accuracy" not in final:
        return Finding(title, "inconclusive", criterion, "needs supervised and SSL runs with this metric",
                       metric, network_of(metric))
    start = table.loc[table.groupby("run_id")["step"].idxmin()].set_index("run_id")["probe_test_accuracy"]
    gain = final.set_index("run_id")["probe_test_accuracy"] - start
    healthy = final[~final["objective"].map(is_collapse_variant)]
    band = pooled_std(log_values(metric, healthy[metric].to_numpy(float)), healthy["objective"].to_numpy())
    band = band if np.isfinite(band) else 0.0
    boot = _Resampler(options)
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
    return Finding(title, _summarise(verdicts, "supports", {"refutes"}), criterion, "; ".join(parts),
                   metric, network_of(metric))


# ---------------------------------------------------------------------------- findings 2, 3
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
    boot = _Resampler(options)
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
        verdict = _summarise(verdicts, "up", {"down", "flat"})
    else:
        merged = {k: ("merge" if v in ("down", "flat") else v) for k, v in verdicts.items()}
        verdict = _summarise(merged, "merge", {"up"})
    return Finding(title, verdict, criterion, "; ".join(parts), metric, network_of(metric))


def finding_contrastive_expand(table: pd.DataFrame, options: Findings, metric: str | None = None) -> Finding:
    """2. Contrastive objectives expand regions over training."""
    return _trend_finding(table, options, metric or options.primary_metric, "contrastive",
                          "contrastive: regions multiply", expand=True)


def finding_distillation_merge(table: pd.DataFrame, options: Findings, metric: str | None = None) -> Finding:
    """3. Self-distillation merges regions over training (down or flat)."""
    return _trend_finding(table, options, metric or options.primary_metric, "self-distillation",
                          "self-distillation: regions merge", expand=False)


# ---------------------------------------------------------------------------- finding 4
def detection_steps(table: pd.DataFrame, options: Findings | None = None,
                    indicators: tuple[str, ...] | None = None) -> pd.DataFrame:
    """When each indicator flags collapse, in every collapse-variant run and in a null.

    For a tested run of seed s, the reference is the healthy objective (the variant
    without its switch) in the grid's other seeds, at the same checkpoints. An indicator
    deviates by ``|log x - mean(log x_ref)| / noise``, ``noise`` being the median over
    checkpoints of the reference runs' std of log x; it flags at the first checkpoint of
    ``detection_persistence`` consecutive deviations above ``detection_z``. The null tests
    every healthy run of an objective that has a collapse variant the same way against its
    own other seeds: a flag there is a false alarm.

    Returns
    -------
    DataFrame
        run_id, objective, seed, null (bool), indicator, kind ("geometry"/"standard"),
        step, epoch (of the flagging checkpoint; NaN if never), epoch_before (the
        checkpoint before it: detection happened in ``(epoch_before, epoch]``).
    """
    options = options or Findings()
    indicators = indicators or tuple(dict.fromkeys((options.primary_metric, *COLLAPSE_GEOMETRY,
                                                    *COLLAPSE_STANDARD)))
    columns = ["run_id", "objective", "seed", "null", "indicator", "kind", "step", "epoch", "epoch_before"]
    variants = [o for o in table["objective"].unique() if is_collapse_variant(o)]
    bases = {base_objective(o) for o in variants}
    tested = table[table["objective"].isin(variants) | table["objective"].isin(bases)]
    rows = []
    for run_id, group in tested.groupby("run_id"):
        group = group.sort_values("step").set_index("step")
        objective, seed = group["objective"].iloc[0], group["seed"].iloc[0]
        base = base_objective(objective)
        reference = table[(table["objective"] == base) & (table["seed"] != seed)]
        if reference["seed"].nunique() < 2:
            continue
        for indicator in indicators:
            if indicator not in group or indicator not in reference:
                continue
            ref = reference.pivot_table(index="step", columns="seed", values=indicator)
            ref_log = pd.DataFrame(log_values(indicator, ref.to_numpy()), index=ref.index)
            noise = float(np.nanmedian(ref_log.std(axis=1, ddof=1)))
            x = pd.Series(log_values(indicator, group[indicator].to_numpy(float)), index=group.index)
            centre = ref_log.mean(axis=1).reindex(x.index)
            z = ((x - centre).abs() / max(noise, 1e-12)).to_numpy()
            onset = persistent_onset(np.nan_to_num(z, nan=0.0) > options.detection_z,
                                     options.detection_persistence)
            epochs = group["epoch"].to_numpy(float)
            rows.append({"run_id": run_id, "objective": objective, "seed": seed,
                         "null": not is_collapse_variant(objective), "indicator": indicator,
                         "kind": "standard" if indicator in COLLAPSE_STANDARD else "geometry",
                         "step": float(group.index[onset]) if onset >= 0 else float("nan"),
                         "epoch": float(epochs[onset]) if onset >= 0 else float("nan"),
                         "epoch_before": float(epochs[onset - 1]) if onset > 0 else
                         (float(epochs[0]) if onset == 0 else float("nan"))})
    return pd.DataFrame(rows, columns=columns)


def false_alarm_rates(steps: pd.DataFrame) -> pd.Series:
    """Share of null (healthy) runs in which each indicator flagged, by indicator."""
    null = steps[steps["null"].astype(bool)]
    if null.empty:
        return pd.Series(dtype=float, name="epoch")
    return null.groupby("indicator")["epoch"].apply(lambda e: float(np.isfinite(e).mean()))


def finding_collapse_early(table: pd.DataFrame, options: Findings) -> Finding:
    """4. Collapse shows early in region geometry (lead time over std, RankMe and the probe)."""
    primary = options.primary_metric
    title = "collapse is visible early in geometry"
    criterion = (
        f"per collapse-variant run: {primary} flags when its log deviation from the healthy objective's "
        f"other seeds exceeds {options.detection_z:g} seed-noise units for {options.detection_persistence} "
        "consecutive checkpoints; the standard detector is the first of embedding std, RankMe and probe "
        "accuracy under the same rule. Lead = standard epoch - geometry epoch, as an interval over the "
        "checkpoint spacing (each detection lies in (previous checkpoint, flagging checkpoint]). Null: each "
        "healthy run against its own other seeds gives every indicator's false-alarm rate. Holds when in "
        "every variant run the lead interval is above 0 and the primary metric's false-alarm rate is 0; "
        "does not hold when in every run it is at most 0 (or geometry never flags)")
    steps = detection_steps(table, options)
    variants = steps[~steps["null"]]
    if variants.empty:
        return Finding(title, "inconclusive", criterion,
                       "no collapse variants with two healthy reference seeds", primary)
    alarms = false_alarm_rates(steps)
    parts = ["false alarms in healthy runs: " + ", ".join(f"{k} {v:.0%}" for k, v in alarms.items())]
    outcome = []
    for run_id, group in variants.groupby("run_id"):
        geo = group[group["indicator"] == primary]
        std = group[group["kind"] == "standard"].dropna(subset=["epoch"]).sort_values("epoch")
        geo_hi = float(geo["epoch"].iloc[0]) if len(geo) else float("nan")
        geo_lo = float(geo["epoch_before"].iloc[0]) if len(geo) else float("nan")
        if std.empty:
            parts.append(f"{run_id}: no standard indicator flags (no collapse to detect)")
            outcome.append("unclear")
            continue
        std_hi, std_lo, who = float(std["epoch"].iloc[0]), float(std["epoch_before"].iloc[0]), \
            str(std["indicator"].iloc[0])
        if not np.isfinite(geo_hi):
            parts.append(f"{run_id}: geometry never flags; {who} at epoch {std_hi:.2f}")
            outcome.append("late")
            continue
        lead_lo, lead_hi = std_lo - geo_hi, std_hi - geo_lo
        parts.append(f"{run_id}: geometry epoch {geo_hi:.2f}, {who} {std_hi:.2f}, lead in "
                     f"[{lead_lo:+.2f}, {lead_hi:+.2f}] epochs")
        outcome.append("early" if lead_lo > 0 else "late" if lead_hi <= 0 else "unclear")
    clean = alarms.get(primary, np.nan) == 0
    if outcome and all(o == "early" for o in outcome) and clean:
        verdict = "holds"
    elif outcome and all(o == "late" for o in outcome):
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    return Finding(title, verdict, criterion, "; ".join(parts), primary)


# ---------------------------------------------------------------------------- finding 5
def _prediction(final: pd.DataFrame, metric: str, target: str, by: str, boot: _Resampler) -> Estimate:
    """Leave-one-`by`-out R² of `target` on `metric` with a bootstrap over runs within each group."""
    data = final[[metric, target, by]].dropna()
    names = sorted(data[by].unique())
    groups = [data[data[by] == g][[metric, target]].to_numpy(float) for g in names]

    def statistic(*arrays: np.ndarray) -> float:
        x = np.concatenate([a[:, 0] for a in arrays])
        y = np.concatenate([a[:, 1] for a in arrays])
        labels = np.concatenate([np.full(len(a), i) for i, a in enumerate(arrays)])
        return loo_r2(x, y, labels, min_groups=2 if by == "backbone" else 3)

    return bootstrap(groups, statistic, n_boot=boot.options.n_boot, rng=boot.rng,
                     confidence=boot.options.confidence)


def secondary_metrics(table: pd.DataFrame, options: Findings,
                      target: str = "probe_test_accuracy") -> pd.DataFrame:
    """Every geometry metric against `target` across objectives, corrected for multiplicity.

    Final checkpoints of healthy runs, averaged per objective (the objectives are the
    independent units); Spearman over those means with its permutation p-value, adjusted by
    ``options.correction`` across all metrics; and the leave-one-objective-out R² over runs.
    """
    final = _final(table)
    final = final[~final["objective"].map(is_collapse_variant)]
    rows = []
    if target not in final:
        return pd.DataFrame(columns=["metric", "network", "spearman", "p", "p_adjusted", "loo_r2"])
    means = final.groupby("objective").mean(numeric_only=True)
    rng = np.random.default_rng(options.seed)
    for metric in geometry_metrics(final):
        pair = means[[metric, target]].dropna()
        if len(pair) < 3 or np.ptp(pair[metric]) == 0:
            continue
        rho, p = spearman_permutation(pair[metric].to_numpy(), pair[target].to_numpy(), rng=rng)
        data = final[[metric, target, "objective"]].dropna()
        r2 = loo_r2(data[metric].to_numpy(float), data[target].to_numpy(float), data["objective"].to_numpy())
        rows.append({"metric": metric, "network": network_of(metric), "spearman": float(rho), "p": float(p),
                     "loo_r2": r2})
    frame = pd.DataFrame(rows, columns=["metric", "network", "spearman", "p", "loo_r2"])
    frame["p_adjusted"] = adjust_pvalues(frame["p"].to_numpy(float), options.correction)
    return frame.sort_values("p").reset_index(drop=True)


def finding_across_architectures(table: pd.DataFrame, options: Findings) -> Finding:
    """5. Does the primary metric predict accuracy across objectives and architectures?"""
    metric = options.primary_metric
    title = "geometry predicts accuracy across objectives and architectures"
    criterion = (
        f"final checkpoints of healthy runs: leave-one-objective-out R² of probe accuracy on {metric} (a "
        "line fitted on the other objectives predicts the held-out one; 0 = no better than their mean), "
        f"{options.confidence:.0%} interval from a bootstrap of runs within objectives; the same leaving one "
        "backbone out; the same R² for fine-tuned accuracy where the grid fine-tunes. Holds when both "
        "probe intervals are above 0, does not hold when either lies at or below 0, "
        f"else inconclusive. Secondary metrics: Spearman over objective means, {options.correction} "
        "correction (table in the report)")
    final = _final(table)
    final = final[~final["objective"].map(is_collapse_variant)]
    if metric not in final or "probe_test_accuracy" not in final or final["objective"].nunique() < 3:
        return Finding(title, "inconclusive", criterion, "needs >= 3 healthy objectives with the metric",
                       metric)
    boot = _Resampler(options)
    by_objective = _prediction(final, metric, "probe_test_accuracy", "objective", boot)
    parts = [f"leave-one-objective-out R² {by_objective.text('+.2f')} over {len(final)} runs, "
             f"{final['objective'].nunique()} objectives"]
    if "knn_accuracy" in final:
        parts.append(f"kNN: {_prediction(final, metric, 'knn_accuracy', 'objective', boot).text('+.2f')}")
    for target in sorted(c for c in final.columns if isinstance(c, str) and c.startswith("finetune")
                         and c.endswith(".accuracy")):
        if final[target].notna().sum() >= 3:
            estimate = _prediction(final, metric, target, "objective", boot)
            parts.append(f"{target.split('.')[0]} (fine-tuned at that % of labels): {estimate.text('+.2f')}")
    means = final.groupby("objective")[[metric, "probe_test_accuracy"]].mean()
    rho = stats.spearmanr(means[metric], means["probe_test_accuracy"])[0]
    parts.append(f"Spearman over objective means {rho:+.2f}")
    secondary = secondary_metrics(table, options)
    significant = secondary[secondary["p_adjusted"] < 1 - options.confidence]
    parts.append(f"secondary metrics significant after {options.correction}: "
                 + (", ".join(significant["metric"]) if len(significant) else "none")
                 + f" of {len(secondary)}")
    backbones = final["backbone"].nunique()
    if backbones < 2:
        parts.append(f"leave-one-architecture-out needs >= 2 backbones; this grid has {backbones} "
                     f"({', '.join(sorted(final['backbone'].unique()))})")
        by_backbone = None
    else:
        by_backbone = _prediction(final, metric, "probe_test_accuracy", "backbone", boot)
        parts.append(f"leave-one-backbone-out R² {by_backbone.text('+.2f')}")
    lows = [e.lo for e in (by_objective, by_backbone) if e is not None]
    highs = [e.hi for e in (by_objective, by_backbone) if e is not None]
    if any(np.isfinite(h) and h <= 0 for h in highs):
        verdict = "does not hold"
    elif by_backbone is not None and all(np.isfinite(lo) and lo > 0 for lo in lows):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    return Finding(title, verdict, criterion, "; ".join(parts), metric)


# ---------------------------------------------------------------------------- Patel & Montufar
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
    boot = _Resampler(options)
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


# ---------------------------------------------------------------------------- Gamba et al.
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
    runs = _final(table)
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


def findings(table: pd.DataFrame, options: Findings | None = None) -> list[Finding]:
    """The paper's four findings and the open question, in order; 1-3 also for the full network."""
    options = options or Findings()
    full = options.full_network_metric
    out = [finding_fewer_regions(table, options)]
    if "supervised-aug" in set(table["objective"]):
        out.append(finding_fewer_regions(table, options, reference="supervised-aug"))
    out += [finding_contrastive_expand(table, options), finding_distillation_merge(table, options)]
    if full in table:
        out += [finding_fewer_regions(table, options, full), finding_contrastive_expand(table, options, full),
                finding_distillation_merge(table, options, full)]
    out += [finding_collapse_early(table, options), finding_across_architectures(table, options)]
    if "lc.total" in table:
        out += finding_local_complexity(table, options)
    if table["width"].nunique() >= 3:
        out.append(finding_double_descent(table, options))
    return out
