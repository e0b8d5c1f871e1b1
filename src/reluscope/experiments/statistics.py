"""Statistics the findings are built from: trends, resampling of runs, corrections.

Pure functions on numpy arrays. The unit of resampling is the *run* (a training
trajectory): checkpoints of one run are not independent, so intervals come from a
cluster bootstrap that draws whole runs (seeds) with replacement, within each group
(objective) separately.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def theil_sen(x: np.ndarray, y: np.ndarray) -> float:
    """Theil–Sen slope of ``y`` on ``x``: the median of all pairwise slopes (Sen, 1968).

    Robust to a few outlying checkpoints (up to ~29% breakdown). NaN with fewer than two
    distinct ``x`` among the finite pairs.

    Parameters
    ----------
    x, y : (n,) arrays
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    usable = dx != 0
    if not usable.any():
        return float("nan")
    return float(np.median((y[j] - y[i])[usable] / dx[usable]))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (``lo``, ``hi``) at level ``confidence``.

    ``n`` is the number of runs behind it; the interval is NaN when they are too few
    to resample (fewer than 2 in a group).
    """

    value: float
    lo: float
    hi: float
    n: int
    confidence: float

    def text(self, fmt: str = "+.3f", scale: float = 1.0, unit: str = "") -> str:
        """``value [lo, hi]`` formatted (values multiplied by `scale`)."""
        v, lo, hi = self.value * scale, self.lo * scale, self.hi * scale
        if not np.isfinite(lo):
            return f"{v:{fmt}}{unit} [no interval: n={self.n}]"
        return f"{v:{fmt}}{unit} [{lo:{fmt}}, {hi:{fmt}}]"


def bootstrap(groups: Sequence[np.ndarray], statistic: Callable[..., float], *, n_boot: int,
              rng: np.random.Generator, confidence: float) -> Estimate:
    """Cluster bootstrap: `statistic(*groups)` with each group's runs resampled with replacement.

    Parameters
    ----------
    groups : sequence of (n_g,) or (n_g, k) arrays
        One row per run (its per-run value or values); each group is resampled on its own
        (e.g. the runs of one objective, and those of the objective it is compared with).
    statistic : callable
        ``statistic(*groups) -> float``.
    n_boot : int
    rng : numpy Generator
    confidence : float
        Level of the percentile interval.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    n = min((len(g) for g in arrays), default=0)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, confidence)
    value = float(statistic(*arrays))
    if n < 2 or not np.isfinite(value):
        return Estimate(value, float("nan"), float("nan"), n, confidence)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        draws[b] = statistic(*[g[rng.integers(0, len(g), len(g))] for g in arrays])
    draws = draws[np.isfinite(draws)]
    if len(draws) < n_boot // 2:
        return Estimate(value, float("nan"), float("nan"), n, confidence)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value, float(lo), float(hi), n, confidence)


def classify(estimate: Estimate, band: float) -> str:
    """Where an interval lies against a noise band ``[-band, +band]``.

    ``"up"`` (entirely above ``+band``), ``"down"`` (entirely below ``-band``), ``"flat"``
    (entirely inside the band), else ``"inconclusive"`` (it straddles an edge, or has none).
    """
    lo, hi = estimate.lo, estimate.hi
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > band:
        return "up"
    if hi < -band:
        return "down"
    if -band <= lo and hi <= band:
        return "flat"
    return "inconclusive"


def pooled_std(values: np.ndarray, groups: np.ndarray) -> float:
    """Within-group standard deviation pooled over groups (ddof 1 per group).

    The seed noise of a per-run quantity: how much runs differing only in their seed
    disagree. NaN when no group has two values.
    """
    values, groups = np.asarray(values, dtype=float), np.asarray(groups)
    ss, dof = 0.0, 0
    for g in np.unique(groups):
        v = values[(groups == g) & np.isfinite(values)]
        if len(v) >= 2:
            ss += float(((v - v.mean()) ** 2).sum())
            dof += len(v) - 1
    return float(np.sqrt(ss / dof)) if dof else float("nan")


def adjust_pvalues(p: np.ndarray, method: str) -> np.ndarray:
    """Multiple-comparison adjusted p-values: ``"holm"`` (family-wise) or ``"bh"`` (FDR).

    Holm (1979): step-down ``max_{j<=i} (m - j + 1) p_(j)``; Benjamini & Hochberg (1995):
    step-up ``min_{j>=i} m p_(j) / j``; both capped at 1. NaNs stay NaN and do not count in m.
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q)
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}; use 'holm' or 'bh'")
    result = np.empty(m)
    result[order] = np.minimum(adj, 1.0)
    out[ok] = result
    return out


def first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """``y`` where ``x`` first reaches `level` along a trajectory (linear between checkpoints).

    ``x`` (e.g. probe accuracy) need not be monotonic: this is the value of ``y`` the first
    time the run attains the level. NaN if it never does.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    hit = np.nonzero(x >= level)[0]
    if not len(hit):
        return float("nan")
    k = int(hit[0])
    if k == 0 or x[k] == x[k - 1]:
        return float(y[k])
    t = (level - x[k - 1]) / (x[k] - x[k - 1])
    return float(y[k - 1] + t * (y[k] - y[k - 1]))


def persistent_onset(flags: np.ndarray, persistence: int) -> int:
    """Index of the first checkpoint that starts a run of `persistence` consecutive flags, or -1."""
    flags = np.asarray(flags, dtype=bool)
    count = 0
    for i, f in enumerate(flags):
        count = count + 1 if f else 0
        if count >= persistence:
            return i - persistence + 1
    return -1


def loo_r2(x: np.ndarray, y: np.ndarray, groups: np.ndarray, min_groups: int = 3) -> float:
    """Leave-one-group-out R² of the least-squares line ``y ~ x``.

    Each group (objective, or architecture) is predicted by the line fitted on the others;
    ``1 - SSE / SST`` where SST uses the others' mean as the prediction (the no-information
    baseline). Positive: `x` predicts `y` in groups it has not seen; <= 0: no better than
    the mean. NaN with fewer than `min_groups` groups (2 suffices for architectures: each
    is predicted from the other).
    """
    x, y, groups = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(groups)
    names = np.unique(groups)
    if len(names) < max(min_groups, 2):
        return float("nan")
    sse = sst = 0.0
    for g in names:
        held = groups == g
        xt, yt = x[~held], y[~held]
        if np.ptp(xt) == 0:
            return float("nan")
        slope, intercept = np.polyfit(xt, yt, 1)
        sse += float(((y[held] - (slope * x[held] + intercept)) ** 2).sum())
        sst += float(((y[held] - yt.mean()) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def spearman_permutation(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator,
                         n_resamples: int = 20_000, exact_below: int = 8) -> tuple[float, float]:
    """Spearman's rho and its two-sided permutation p-value.

    With few points (objective means: 5-12) the usual t approximation is far too
    optimistic (it gives p ~ 0 for a perfect ranking of 5 points, whose exact p is 2/120).
    The p-value is exact (all n! orderings) below `exact_below` points, else Monte Carlo
    with ``(hits + 1) / (n_resamples + 1)``. NaN with fewer than 3 points or a constant side.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    from scipy.stats import rankdata

    rx, ry = rankdata(x) - (n + 1) / 2, rankdata(y) - (n + 1) / 2
    scale = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    rho = float(rx @ ry / scale)
    if n < exact_below:
        import itertools

        orders = np.array(list(itertools.permutations(range(n))))
        null = ry[orders] @ rx / scale
        return rho, float(np.mean(np.abs(null) >= abs(rho) - 1e-12))
    orders = np.argsort(rng.random((n_resamples, n)), axis=1)
    null = ry[orders] @ rx / scale
    return rho, float((np.sum(np.abs(null) >= abs(rho) - 1e-12) + 1) / (n_resamples + 1))
