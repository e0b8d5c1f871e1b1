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

import dataclasses

import pandas as pd

from reluscope.experiments.config import Findings
from reluscope.experiments.findings.collapse import (
    COLLAPSE_GEOMETRY,
    COLLAPSE_STANDARD,
    detection_steps,
    false_alarm_rates,
    finding_collapse_early,
)
from reluscope.experiments.findings.common import (
    TARGETS,
    Finding,
    Resampler,
    base_objective,
    final_rows,
    geometry_metrics,
    healthy_reference,
    healthy_ssl,
    is_collapse_variant,
    is_supervised,
    log_values,
    summarise,
    wide,
)
from reluscope.experiments.findings.complexity import (
    finding_double_descent,
    finding_local_complexity,
    within_run_association,
)
from reluscope.experiments.findings.correlations import KENDALL_PAIRWISE_MAX, correlations, rank_correlations
from reluscope.experiments.findings.prediction import finding_across_architectures, secondary_metrics
from reluscope.experiments.findings.regions import (
    MATCHED_LEVELS,
    finding_contrastive_expand,
    finding_distillation_merge,
    finding_fewer_regions,
    matched_quality_gap,
    run_trends,
)
from reluscope.experiments.metric_names import network_of

__all__ = [
    "COLLAPSE_GEOMETRY",
    "COLLAPSE_STANDARD",
    "KENDALL_PAIRWISE_MAX",
    "MATCHED_LEVELS",
    "TARGETS",
    "Finding",
    "Resampler",
    "base_objective",
    "correlations",
    "detection_steps",
    "false_alarm_rates",
    "final_rows",
    "finding_across_architectures",
    "finding_collapse_early",
    "finding_contrastive_expand",
    "finding_distillation_merge",
    "finding_double_descent",
    "finding_fewer_regions",
    "finding_local_complexity",
    "findings",
    "geometry_metrics",
    "healthy_reference",
    "healthy_ssl",
    "is_collapse_variant",
    "is_supervised",
    "log_values",
    "matched_quality_gap",
    "network_of",
    "rank_correlations",
    "run_trends",
    "secondary_metrics",
    "summarise",
    "wide",
    "within_run_association",
]


def findings(table: pd.DataFrame, options: Findings | None = None) -> list[Finding]:
    """The paper's four findings and the open question, in order; 1-3 also for the full network.

    A table of several backbones (arms of one study pooled) gets findings 1-4 and the local
    complexity findings per backbone (their seed-noise bands and trends are within one
    architecture; titles end in ``[backbone]``), and the open question (5) on all runs,
    which is where leaving one architecture out needs them.
    """
    options = options or Findings()
    backbones = sorted(table["backbone"].unique()) if "backbone" in table else []
    if len(backbones) <= 1:
        return [finding_across_architectures(table, options) if f is None else f
                for f in _arm_findings(table, options)]
    out: list[Finding] = []
    for backbone in backbones:
        out += [dataclasses.replace(f, title=f"{f.title} [{backbone}]")
                for f in _arm_findings(table[table["backbone"] == backbone], options) if f is not None]
    out.append(finding_across_architectures(table, options))
    return out


def _arm_findings(table: pd.DataFrame, options: Findings) -> list[Finding | None]:
    """Findings 1-4 and local complexity on one table; ``None`` marks where 5 goes."""
    full = options.full_network_metric
    out: list[Finding | None] = [finding_fewer_regions(table, options)]
    if "supervised-aug" in set(table["objective"]):
        out.append(finding_fewer_regions(table, options, reference="supervised-aug"))
    out += [finding_contrastive_expand(table, options), finding_distillation_merge(table, options)]
    if full in table and table[full].notna().any():
        out += [finding_fewer_regions(table, options, full), finding_contrastive_expand(table, options, full),
                finding_distillation_merge(table, options, full)]
    out += [finding_collapse_early(table, options), None]
    if "lc.total" in table:
        out += finding_local_complexity(table, options)
    if table["width"].nunique() >= 3:
        out.append(finding_double_descent(table, options))
    return out
