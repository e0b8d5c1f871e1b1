"""``reluscope report``: one self-contained HTML page (figures embedded) plus the PNGs.

Sections: the runs at their last checkpoint; the findings table with verdicts and
criteria; partitions of the same plane at several checkpoints for each objective;
metric curves over training beside probe accuracy; correlations with quality; the
collapse timeline; local complexity and double descent. The figures are drawn in
:mod:`reluscope.experiments.figures`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from reluscope._files import write_bytes
from reluscope.experiments.config import Findings, config_from_dict
from reluscope.experiments.figures import CURVES, plot_collapse, plot_complexity, plot_curves, plot_partitions
from reluscope.experiments.findings import (
    correlations,
    detection_steps,
    false_alarm_rates,
    findings,
    secondary_metrics,
    wide,
)
from reluscope.experiments.metric_names import lookup, split_network
from reluscope.experiments.store import Store, load_analysed


def glossary(names: list[str]) -> pd.DataFrame:
    """Meaning, unit and direction of each metric name (from :mod:`metric_names`)."""
    direction = {1: "larger = more regions", -1: "larger = fewer regions", 0: ""}
    rows = []
    for name in names:
        spec = lookup(name)
        network, _ = split_network(name)
        meaning = "(not described)" if spec is None else spec.meaning
        if network == "full":
            meaning += "; of the backbone with its trained head"
        rows.append({"metric": name, "meaning": meaning, "unit": "" if spec is None else spec.unit,
                     "direction": "" if spec is None else direction[spec.complexity]})
    return pd.DataFrame(rows)


def _img(path: Path | None) -> str:
    if path is None:
        return "<p><em>(no data)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def findings_options(experiment: dict[str, object] | None) -> Findings:
    """The ``[findings]`` table of a stored experiment config (defaults for older stores)."""
    if not experiment:
        return Findings()
    return config_from_dict(dict(experiment)).findings


def write_report(root: str | Path) -> Path:
    """Write ``report/report.html`` (self-contained) and its PNGs under an experiment's root."""
    # Long on purpose: the page is one list of sections in reading order, and most of its
    # lines are the report's own prose; the computations are the functions it calls.
    root = Path(root)
    results = load_analysed(root)
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    table = wide(results)
    final = table.loc[table.groupby("run_id")["step"].idxmax()]
    summary_cols = [c for c in ("objective", "family", "backbone", "width", "seed", "step",
                                "probe_test_accuracy", "knn_accuracy", "slice.n_regions", "slice.area_median",
                                "lc.total", "path.n_regions", "embedding_std", "embedding_rankme")
                    if c in final]
    options = findings_options(Store(root).read_json("experiment.json"))
    found = findings(table, options)
    findings_frame = pd.DataFrame([{"finding": f.title, "network": f.network, "metric": f.metric,
                                    "verdict": f.verdict, "numbers": f.numbers, "criterion": f.criterion}
                                   for f in found])
    secondary = secondary_metrics(table, options)
    corr = correlations(table)
    pooled = corr[corr["scope"] == "pooled"].copy()
    pooled["abs"] = pooled["spearman"].abs()
    top = pooled.sort_values("abs", ascending=False).drop(columns="abs").head(20)
    per_objective = corr[(corr["scope"] != "pooled") & corr["metric"].isin(["slice.n_regions", "lc.total",
                                                                            "path.n_regions"])]
    steps = detection_steps(table, options)
    alarms = false_alarm_rates(steps).rename("false-alarm rate").reset_index()
    figures = {"partitions": plot_partitions(root, table, out), "curves": plot_curves(table, out),
               "collapse": plot_collapse(table, steps, out), "complexity": plot_complexity(table, out)}
    failures = Store(root).failures()
    config = Store(root).read_json("experiment.json") or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reluscope report</title><style>",
        "body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}table{border-collapse:collapse;"
        "font-size:12px;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "th{background:#eee}.holds{color:#070}.not{color:#a00}</style></head><body>",
        f"<h1>reluscope: {html.escape(str(config.get('name', root.name)))}</h1>",
        f"<p>{len(final)} runs, {len(table)} analysed checkpoints. Geometry is measured exactly on the "
        "backbone (float64): linear regions of planes through test-image triplets, breakpoints along "
        "segments between test images, and cross-polytope local complexity at test images; quality by a "
        "linear probe and kNN on frozen features.</p>",
        "<h2>Findings</h2>",
        "<p>The four findings of Muthivhi &amp; van Zyl (2026) and the question they leave open, tested on "
        "this grid with the pre-registered primary metric "
        f"<code>{html.escape(options.primary_metric)}</code> "
        f"(backbone) and <code>{html.escape(options.full_network_metric)}</code> (full trained network). "
        "Each verdict follows the criterion in its row, with "
        f"{options.confidence:.0%} cluster-bootstrap intervals over seeds: <em>holds</em> when every "
        "objective's interval supports the claim, <em>does not hold</em> when every one contradicts it, "
        "<em>mixed</em> when some do each, <em>inconclusive</em> when an interval straddles or the grid "
        "lacks the runs to decide.</p>", _table(findings_frame),
        "<h3>Every geometry metric against probe accuracy across objectives</h3>",
        "<p>Spearman over objective means of the final checkpoints (healthy runs), p-values adjusted by "
        f"{html.escape(options.correction)}; leave-one-objective-out R² over runs.</p>", _table(secondary),
        "<h2>Runs at their last checkpoint</h2>", _table(final[summary_cols]),
        "<h2>Partitions over training</h2>", _img(figures["partitions"]),
        "<h2>Metrics over training</h2>",
        "<p>Mean over seeds per objective, shaded over the seeds' range; dashed lines: collapse "
        "variants. What each panel measures:</p>", _table(glossary([m for m in CURVES if m in table])),
        _img(figures["curves"]),
        "<h2>Correlation with representation quality</h2>",
        "<p>Spearman and Kendall over all runs and checkpoints (pooled; the 20 strongest), with 95% "
        "bootstrap intervals.</p>", _table(top),
        "<h3>Per objective (region count, local complexity, path regions)</h3>", _table(per_objective),
        "<h2>Collapse timeline</h2>",
        "<p>Each collapse variant's indicators divided by the mean of the same objective without the switch "
        "over the other seeds, at the same step (1 = no difference). Bands mark where each indicator flags "
        "collapse (see finding 4); solid lines are geometry, dotted lines the standard indicators. The "
        "null rows test healthy runs against their own other seeds: their flags are false alarms.</p>",
        _img(figures["collapse"]),
        _table(alarms) if not alarms.empty else "",
        _table(steps) if not steps.empty else "<p>No collapse variants in this grid.</p>",
        "<h2>Local complexity and double descent</h2>",
        "<p>Every checkpoint of every healthy run: local complexity against the total variation of the "
        "output along test segments (Humayun et al. bound one by the other), against robust accuracy "
        "and against feature rank (Patel &amp; Montúfar); for a grid over widths, the test error and the "
        "nonlinearity along test segments at the last checkpoint (Gamba et al.).</p>",
        _img(figures["complexity"]),
    ]
    if failures:
        parts += ["<h2>Failed runs</h2>", _table(pd.DataFrame(
            [{"run": k, "error": v.strip().splitlines()[-1]} for k, v in failures.items()]))]
    parts.append("</body></html>")
    page = "\n".join(parts)
    for verdict, css in (("holds", "holds"), ("does not hold", "not")):
        page = page.replace(f"<td>{verdict}</td>", f"<td class='{css}'><b>{verdict}</b></td>")
    return write_bytes(out / "report.html", page.encode())
