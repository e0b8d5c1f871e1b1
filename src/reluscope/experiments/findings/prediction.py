"""Finding 5 (the open question): does the pre-registered metric predict quality across
objectives and architectures? Every other metric in a corrected table.
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
    geometry_metrics,
    is_collapse_variant,
)
from reluscope.experiments.metric_names import network_of
from reluscope.experiments.statistics import Estimate, adjust_pvalues, bootstrap, loo_r2, spearman_permutation


def _prediction(final: pd.DataFrame, metric: str, target: str, by: str, boot: Resampler) -> Estimate:
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
    final = final_rows(table)
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
    final = final_rows(table)
    final = final[~final["objective"].map(is_collapse_variant)]
    if metric not in final or "probe_test_accuracy" not in final or final["objective"].nunique() < 3:
        return Finding(title, "inconclusive", criterion, "needs >= 3 healthy objectives with the metric",
                       metric)
    boot = Resampler(options)
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
