"""Finding 4: does collapse show early in region geometry? Detection steps, the healthy-vs-
healthy null and lead times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reluscope.experiments.config import Findings
from reluscope.experiments.findings.common import Finding, base_objective, is_collapse_variant, log_values
from reluscope.experiments.statistics import persistent_onset

#: Finding 4: the geometry indicators watched beside the pre-registered primary metric, and
#: the standard collapse indicators they race against.
COLLAPSE_GEOMETRY = ("slice.log_density_mean", "path.boundary_density", "full.path.boundary_density",
                     "lc.total")


COLLAPSE_STANDARD = ("embedding_std", "embedding_rankme", "probe_test_accuracy")



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
