"""Correlations of every geometry metric with quality (pairwise-complete Kendall and Spearman)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from reluscope.experiments.findings.common import TARGETS, geometry_metrics

#: Up to this many rows, Kendall's tau comes from the pair sign matrices (all columns at once).
KENDALL_PAIRWISE_MAX = 300


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
