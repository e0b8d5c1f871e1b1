"""From the results table to answers: correlations with quality, and the paper's findings.

Every verdict states its criterion; thresholds are module constants so they are easy
to find and to change.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: Metric prefixes that measure geometry (candidates to predict quality).
GEOMETRY_PREFIXES = ("slice.", "path.", "path_same.", "path_diff.", "lc.")
#: Up to this many rows, Kendall's tau comes from the pair sign matrices (all columns at once).
KENDALL_PAIRWISE_MAX = 300
#: Quality targets.
TARGETS = ("probe_test_accuracy", "knn_accuracy")
#: Finding 1: "comparable" accuracy gap, and "substantially fewer" regions ratio.
COMPARABLE_GAP = 0.05
FEWER_RATIO = 0.8
#: Findings 2/3: relative change of the region count between the first and last checkpoint.
FLAT_BAND = 0.05
#: Finding 4: an indicator flags collapse once it deviates this much (relative) from the
#: healthy counterpart run at the same step (or from its own step-0 value without one);
#: the probe flags when it is this many points below.
COLLAPSE_DEVIATION = 0.25
PROBE_DROP = 0.02
COLLAPSE_GEOMETRY = ("slice.n_regions", "slice.area_median", "lc.total", "path.n_regions")
COLLAPSE_STANDARD = ("embedding_std", "embedding_rankme", "probe_test_accuracy")


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
    """One question, its verdict, the criterion and the numbers behind it."""

    title: str
    verdict: str
    criterion: str
    numbers: str


def base_objective(objective: str) -> str:
    """The objective without its collapse switch (``simsiam-no-stopgrad`` -> ``simsiam``)."""
    for marker in ("-no-", "-invariance-only"):
        if marker in objective:
            return objective.split(marker)[0]
    return objective


def healthy_reference(table: pd.DataFrame, run: pd.DataFrame) -> pd.DataFrame | None:
    """Per-step means of the run's healthy counterpart (same objective without the switch,
    same seed), or None when the grid has none. `run` holds one run's rows."""
    healthy = table[(table["objective"] == base_objective(run["objective"].iloc[0]))
                    & (table["seed"] == run["seed"].iloc[0])]
    return healthy.groupby("step").mean(numeric_only=True) if not healthy.empty else None


def reference_values(reference: pd.DataFrame | None, run: pd.DataFrame, indicator: str) -> pd.Series:
    """What the run's `indicator` (indexed by step) is compared with: the healthy run at the
    same steps, or the run's own step-0 value without a counterpart."""
    values = run[indicator]
    if reference is not None and indicator in reference:
        return reference[indicator].reindex(values.index)
    return pd.Series(values.iloc[0], index=values.index)


def is_collapse_variant(objective: str) -> bool:
    """Whether the objective is a collapse switch (``-no-...`` or ``-invariance-only``)."""
    return base_objective(objective) != objective


def _final(table: pd.DataFrame) -> pd.DataFrame:
    return table.loc[table.groupby("run_id")["step"].idxmax()]


def finding_fewer_regions(table: pd.DataFrame) -> Finding:
    """1. SSL reaches accuracy comparable to supervised with substantially fewer regions."""
    final = _final(table)
    criterion = (f"final checkpoint, means over seeds: an SSL objective supports the claim when its probe "
                 f"accuracy is within {COMPARABLE_GAP:.0%} of supervised and its region count at most "
                 f"{FEWER_RATIO:.0%} of supervised; holds when every non-collapse SSL objective does, "
                 "does not hold when none does")
    sup = final[final["objective"] == "supervised"]
    ssl = final[(final["family"] != "supervised") & ~final["objective"].map(is_collapse_variant)]
    if sup.empty or ssl.empty or "slice.n_regions" not in final:
        return Finding("SSL: comparable accuracy, fewer regions", "inconclusive", criterion,
                       "needs supervised and SSL runs")
    acc0, reg0 = sup["probe_test_accuracy"].mean(), sup["slice.n_regions"].mean()
    parts, support = [f"supervised: probe {acc0:.3f}, {reg0:.0f} regions"], []
    for name, group in ssl.groupby("objective"):
        acc, reg = group["probe_test_accuracy"].mean(), group["slice.n_regions"].mean()
        ok = (acc0 - acc) <= COMPARABLE_GAP and reg <= FEWER_RATIO * reg0
        support.append(ok)
        parts.append(f"{name}: probe {acc:.3f}, {reg:.0f} regions ({reg / reg0:.2f}x)")
    return Finding("SSL: comparable accuracy, fewer regions", _verdict(support), criterion, "; ".join(parts))


def _trend(table: pd.DataFrame, family: str) -> tuple[list[str], list[float], list[float]]:
    runs = table[(table["family"] == family) & ~table["objective"].map(is_collapse_variant)]
    parts, counts, areas = [], [], []
    for (name, _), group in runs.groupby(["objective", "run_id"]):
        group = group.sort_values("step")
        if len(group) < 2 or "slice.n_regions" not in group:
            continue
        count = group["slice.n_regions"].iloc[-1] / group["slice.n_regions"].iloc[0] - 1
        area = group["slice.area_median"].iloc[-1] / group["slice.area_median"].iloc[0] - 1
        rho = _corr(group["step"].to_numpy(float), group["slice.n_regions"].to_numpy(float))[0]
        counts.append(count)
        areas.append(area)
        parts.append(f"{name}: regions {count:+.0%}, median area {area:+.0%}, "
                     f"Spearman(step, regions) {rho:+.2f}")
    return parts, counts, areas


def _verdict(ok: list[bool]) -> str:
    """'holds' when every case supports the claim, 'does not hold' when none does."""
    return "holds" if all(ok) else "does not hold" if not any(ok) else "inconclusive"


def _trend_finding(table: pd.DataFrame, family: str, title: str, criterion: str, expand: bool) -> Finding:
    parts, counts, areas = _trend(table, family)
    if not counts:
        return Finding(title, "inconclusive", criterion, f"no {family} runs")
    if expand:
        ok = [c > FLAT_BAND and a < 0 for c, a in zip(counts, areas, strict=True)]
    else:
        ok = [c <= FLAT_BAND and a > 0 for c, a in zip(counts, areas, strict=True)]
    return Finding(title, _verdict(ok), criterion, "; ".join(parts))


def finding_contrastive_expand(table: pd.DataFrame) -> Finding:
    """2. Contrastive objectives expand regions over training (count up, area down)."""
    criterion = (f"first vs last checkpoint of each contrastive run: region count up by more than "
                 f"{FLAT_BAND:.0%} and median region area down; holds when all runs do, does not hold when "
                 "none does")
    return _trend_finding(table, "contrastive", "contrastive: regions multiply", criterion, expand=True)


def finding_distillation_merge(table: pd.DataFrame) -> Finding:
    """3. Self-distillation consolidates (count down or flat, mean area up)."""
    criterion = (f"first vs last checkpoint of each self-distillation run (collapse variants excluded): "
                 f"region count down or within {FLAT_BAND:.0%} and median area up; holds when all runs do, "
                 "does not hold when none does")
    return _trend_finding(table, "self-distillation", "self-distillation: regions merge", criterion,
                          expand=False)


def detection_steps(table: pd.DataFrame) -> pd.DataFrame:
    """For each collapse-variant run and indicator, the first step that flags collapse.

    Rule: relative deviation above ``COLLAPSE_DEVIATION`` from the healthy counterpart
    (same objective without the switch, same seed) at the same step, or from the run's
    own step-0 value when there is no counterpart; the probe flags at ``PROBE_DROP``
    below. Returns rows (run_id, objective, indicator, kind, step) with step NaN if never.
    """
    rows = []
    for run_id, group in table[table["objective"].map(is_collapse_variant)].groupby("run_id"):
        group = group.sort_values("step").set_index("step")
        objective = group["objective"].iloc[0]
        reference = healthy_reference(table, group)
        for indicator in COLLAPSE_GEOMETRY + COLLAPSE_STANDARD:
            if indicator not in group:
                continue
            values = group[indicator]
            ref = reference_values(reference, group, indicator)
            if indicator == "probe_test_accuracy":
                flags = values < ref - PROBE_DROP
            else:
                flags = (values / ref - 1).abs() > COLLAPSE_DEVIATION
            hit = flags[flags.fillna(False)].index
            rows.append({"run_id": run_id, "objective": objective, "indicator": indicator,
                         "kind": "geometry" if indicator in COLLAPSE_GEOMETRY else "standard",
                         "step": float(hit[0]) if len(hit) else float("nan")})
    return pd.DataFrame(rows, columns=["run_id", "objective", "indicator", "kind", "step"])


def finding_collapse_early(table: pd.DataFrame) -> Finding:
    """4. Collapse shows early in region geometry (lead time over std, RankMe, probe)."""
    criterion = ("per collapse-variant run, the first step at which any geometry metric "
                 f"({', '.join(COLLAPSE_GEOMETRY)}) flags versus the first at which embedding std, RankMe or "
                 f"the probe flag (relative deviation > {COLLAPSE_DEVIATION:.0%} from the healthy run at the "
                 f"same step; probe: {PROBE_DROP:.0%} points below); holds when geometry is strictly "
                 "first in every run, does not hold when it is never first")
    steps = detection_steps(table)
    if steps.empty:
        return Finding("collapse is visible early in geometry", "inconclusive", criterion,
                       "no collapse variants")
    parts, ok = [], []
    for _, group in steps.groupby("run_id"):
        geo = group[group["kind"] == "geometry"]["step"].min()
        std = group[group["kind"] == "standard"]["step"].min()
        first = group.dropna().sort_values("step")
        who = ", ".join(f"{r.indicator}@{int(r.step)}" for r in first.itertuples()) or "none flagged"
        lead = std - geo if np.isfinite(geo) and np.isfinite(std) else float("nan")
        parts.append(f"{group['objective'].iloc[0]}: geometry {geo:.0f}, standard {std:.0f}, lead "
                     f"{lead:+.0f} steps ({who})")
        if np.isfinite(geo) and (not np.isfinite(std) or geo < std):
            ok.append(True)
        elif np.isfinite(std) and (not np.isfinite(geo) or geo > std):
            ok.append(False)
    verdict = ("holds" if ok and all(ok) else "does not hold" if ok and not any(ok) else "inconclusive")
    return Finding("collapse is visible early in geometry", verdict, criterion, "; ".join(parts))


def finding_across_architectures(table: pd.DataFrame) -> Finding:
    """Open question: do the metrics predict accuracy across objectives and architectures?"""
    final = _final(table)
    criterion = ("final checkpoints of all non-collapse runs: |Spearman| of the best geometry metric with "
                 "probe accuracy >= 0.5 pooled over objectives and backbones, and the same sign within each "
                 "backbone; needs at least two backbones and five runs")
    final = final[~final["objective"].map(is_collapse_variant)]
    if final["backbone"].nunique() < 2 or len(final) < 5:
        return Finding("geometry predicts accuracy across architectures", "inconclusive", criterion,
                       f"{final['backbone'].nunique()} backbone(s), {len(final)} runs")
    best, best_rho = None, 0.0
    for metric in geometry_metrics(final):
        rho = _corr(final[metric].to_numpy(float), final["probe_test_accuracy"].to_numpy(float))[0]
        if np.isfinite(rho) and abs(rho) > abs(best_rho):
            best, best_rho = metric, rho
    if best is None:
        return Finding("geometry predicts accuracy across architectures", "inconclusive", criterion,
                       "no data")
    within = {b: _corr(g[best].to_numpy(float), g["probe_test_accuracy"].to_numpy(float))[0]
              for b, g in final.groupby("backbone")}
    same_sign = all(np.sign(r) == np.sign(best_rho) for r in within.values() if np.isfinite(r))
    verdict = "holds" if abs(best_rho) >= 0.5 and same_sign else "does not hold"
    detail = ", ".join(f"{b} {r:+.2f}" for b, r in within.items())
    return Finding("geometry predicts accuracy across architectures", verdict, criterion,
                   f"best metric {best}: pooled Spearman {best_rho:+.2f}; within backbones: {detail}")


def findings(table: pd.DataFrame) -> list[Finding]:
    """The paper's four findings and the open question, in order."""
    return [finding_fewer_regions(table), finding_contrastive_expand(table),
            finding_distillation_merge(table), finding_collapse_early(table),
            finding_across_architectures(table)]
