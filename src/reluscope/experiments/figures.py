"""The report's figures: partitions over training, metric curves, the collapse timeline and
local complexity (against total variation, robustness and feature rank; double descent over
widths). Each takes the wide results table and writes one PNG, returning its path (None
when the grid has nothing to draw).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reluscope.experiments.findings import (
    COLLAPSE_GEOMETRY,
    COLLAPSE_STANDARD,
    base_objective,
    healthy_reference,
    is_collapse_variant,
)
from reluscope.plotting import plot_partition
from reluscope.plotting.zoom import write_zoom_page
from reluscope.regions import Partition2D

CURVES = ("slice.log_density_mean", "slice.n_regions", "slice.area_median", "slice.eccentricity_mean",
          "slice.boundary_density", "path.boundary_density", "full.path.boundary_density", "lc.total",
          "full.lc.total", "full.path.mean_abs_deviation", "probe_test_accuracy", "knn_accuracy",
          "embedding_std", "embedding_rankme", "feature_rankme", "train.loss")


def save(fig: plt.Figure, path: Path) -> Path:
    """Write `fig` as the PNG `path` (embedded in the report) and beside it as SVG (vector,
    for papers); returns the PNG's path."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return path


def _pictured(root: Path, table: pd.DataFrame, columns: int
              ) -> list[tuple[str, str, pd.DataFrame, list[int]]]:
    """Per run with kept partitions: its id, objective, rows by step and up to `columns`
    steps spread over those whose plane 0 was kept."""
    rows = []
    for run_id, group in table.groupby("run_id"):
        steps = [int(s) for s in group["step"] if _plane0(root, str(run_id), int(s)).is_file()]
        if steps:
            spots = np.linspace(0, len(steps) - 1, min(columns, len(steps)))
            pick = sorted({steps[round(i)] for i in spots})
            rows.append((str(run_id), str(group["objective"].iloc[0]), group.set_index("step"), pick))
    return rows


def _plane0(root: Path, run_id: str, step: int) -> Path:
    return root / "runs" / run_id / "partitions" / f"step_{step:08d}" / "plane0.npz"


def write_zoom_pages(root: Path, table: pd.DataFrame, out: Path, columns: int = 4) -> list[tuple[str, str]]:
    """A zoomable vector page (:func:`reluscope.plotting.zoom.write_zoom_page`) for each
    partition :func:`plot_partitions` draws, under ``out/zoom/``.

    Returns (label, link relative to `out`) per page, in the figure's order.
    """
    links = []
    for run_id, objective, _, pick in _pictured(root, table, columns):
        for step in pick:
            part = Partition2D.load(_plane0(root, run_id, step))
            name = f"zoom/{run_id}_step{step:08d}.html"
            write_zoom_page(part, out / name, f"{objective} ({run_id}), step {step}, plane 0")
            links.append((f"{objective} step {step}", name))
    return links


def plot_partitions(root: Path, table: pd.DataFrame, out: Path, columns: int = 4) -> Path | None:
    """Plane 0 of every objective at up to `columns` checkpoints, side by side."""
    rows = _pictured(root, table, columns)
    if not rows:
        return None
    columns = max(len(pick) for *_, pick in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.2 * columns, 3.3 * len(rows)), squeeze=False)
    for r, (run_id, objective, group, pick) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            if c >= len(pick):
                ax.axis("off")
                continue
            step = pick[c]
            part = Partition2D.load(_plane0(root, run_id, step))
            plot_partition(part, ax, pixels=500, legend=False)
            probe = group.loc[step].get("probe_test_accuracy", np.nan)
            ax.set_title(f"{objective} step {step}\n{part.n_regions:,} regions, probe {probe:.3f}",
                         fontsize=8)
    fig.suptitle("The same plane through three test images, over training (edges coloured by layer)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.3 * len(rows))))
    return save(fig, out / "partitions.png")


def seed_interval(values: pd.core.groupby.SeriesGroupBy, confidence: float = 0.95
                  ) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Mean over seeds at each step and its Student-t interval (the mean itself where one seed)."""
    from scipy import stats

    mean, std, count = values.mean(), values.std(ddof=1), values.count()
    t = pd.Series(stats.t.ppf(0.5 + confidence / 2, np.maximum(count - 1, 1)), index=count.index)
    half = (t * std / np.sqrt(count)).where(count > 1, 0.0).fillna(0.0)
    return mean, mean - half, mean + half


def plot_curves(table: pd.DataFrame, out: Path) -> Path:
    """Each metric over training steps: the mean over seeds per objective, with its 95% interval."""
    metrics = [m for m in CURVES if m in table]
    cols = 4
    nrows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    palette = plt.get_cmap("tab20")
    objectives = sorted(table["objective"].unique())
    for i, metric in enumerate(metrics):
        ax = axes.flat[i]
        for k, objective in enumerate(objectives):
            runs = table[table["objective"] == objective].groupby("step")[metric]
            mean, low, high = seed_interval(runs)
            color = palette(k % 20)
            style = "--" if is_collapse_variant(objective) else "-"
            ax.plot(mean.index + 1, mean.to_numpy(), style, color=color, marker=".", markersize=3,
                    label=objective)
            ax.fill_between(mean.index + 1, low.to_numpy(), high.to_numpy(), color=color, alpha=0.15,
                            linewidth=0)
        ax.set_xscale("log")
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step + 1", fontsize=8)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle("Mean over seeds (band: 95% t-interval of the mean over seeds); dashed: collapse variants",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.98))
    return save(fig, out / "curves.png")


def plot_collapse(table: pd.DataFrame, steps: pd.DataFrame, out: Path) -> Path | None:
    """For each collapse variant: indicators relative to the healthy run, with detection steps."""
    runs = [r for r in table["run_id"].unique() if is_collapse_variant(table[table["run_id"] == r]
                                                                       ["objective"].iloc[0])]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 3.8), squeeze=False)
    for ax, run_id in zip(axes[0], runs, strict=True):
        group = table[table["run_id"] == run_id].set_index("step")
        objective = group["objective"].iloc[0]
        reference = healthy_reference(table, group)
        for indicator in COLLAPSE_GEOMETRY + COLLAPSE_STANDARD:
            if indicator not in group:
                continue
            if reference is None or indicator not in reference:
                continue
            ref = reference[indicator].reindex(group.index)
            style = "-" if indicator in COLLAPSE_GEOMETRY else ":"
            line = ax.plot(group.index + 1, group[indicator] / ref, style, marker=".", label=indicator)[0]
            hit = steps[(steps["run_id"] == run_id) & (steps["indicator"] == indicator)]["step"]
            hit = hit.dropna()
            if len(hit) and np.isfinite(hit.iloc[0]):
                ax.axvline(hit.iloc[0] + 1, color=line.get_color(), alpha=0.4, linewidth=3)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xscale("log")
        ax.set_title(f"{objective} relative to {base_objective(objective)} (other seeds)", fontsize=9)
        ax.set_xlabel("step + 1 (bands: first flag of each indicator)", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no healthy run of another seed to compare with", ha="center",
                    transform=ax.transAxes, fontsize=8)
    return save(fig, out / "collapse.png")


#: Within-run pairs the complexity figure draws (x, y): local complexity against total
#: variation (Humayun et al.'s bound), against robust accuracy, and against feature rank.
COMPLEXITY_PAIRS = (("full.lc.total", "full.path.total_variation_density"),
                    ("full.lc.total", "robust.linf_accuracy"), ("lc.total", "feature_rankme"))


def plot_complexity(table: pd.DataFrame, out: Path) -> Path | None:
    """Local complexity against total variation, robust accuracy and feature rank (every
    checkpoint of every healthy run, one colour per objective), and, for a grid over widths,
    test error and nonlinearity against width at the last checkpoint (double descent)."""
    pairs = [(x, y) for x, y in COMPLEXITY_PAIRS
             if x in table and y in table and table[[x, y]].notna().any().all()]
    widths = sorted(table["width"].unique())
    descent = len(widths) > 2 and "classifier.test_accuracy" in table
    panels = len(pairs) + (2 if descent else 0)
    if panels == 0:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.6), squeeze=False)
    palette = plt.get_cmap("tab20")
    healthy = table[~table["objective"].map(is_collapse_variant)]
    objectives = sorted(healthy["objective"].unique())
    for ax, (x, y) in zip(axes[0], pairs, strict=False):
        for k, objective in enumerate(objectives):
            rows = healthy[healthy["objective"] == objective]
            ax.scatter(rows[x], rows[y], s=6, color=palette(k % 20), label=objective, alpha=0.7)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(y, fontsize=8)
        if x.endswith("lc.total") and y.endswith("total_variation_density"):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded minor labels
    if pairs:
        axes[0][0].legend(fontsize=6, markerscale=2)
    if descent:
        final = table.loc[table.groupby("run_id")["step"].idxmax()]
        by_width = final.groupby("width")
        error = 1.0 - by_width["classifier.test_accuracy"].agg(["mean", "min", "max"])
        ax = axes[0][len(pairs)]
        ax.plot(error.index, error["mean"], marker="o", label="test error")
        ax.fill_between(error.index, error["min"], error["max"], alpha=0.2)
        if "classifier.train_accuracy" in final:
            train = 1.0 - by_width["classifier.train_accuracy"].mean()
            ax.plot(train.index, train.to_numpy(), marker=".", linestyle=":",
                    label="train error (noisy labels)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width", fontsize=8)
        ax.legend(fontsize=7)
        ax.set_title("error at the last checkpoint (range over seeds)", fontsize=9)
        ax = axes[0][len(pairs) + 1]
        for metric in ("full.path.mean_abs_deviation", "full.path.boundary_density"):
            if metric in final:
                values = by_width[metric].mean()
                ax.plot(values.index, values / values.max(), marker="o", label=f"{metric} (/ max)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width", fontsize=8)
        ax.legend(fontsize=7)
        ax.set_title("nonlinearity and region density along test segments", fontsize=9)
    fig.tight_layout()
    return save(fig, out / "complexity.png")
