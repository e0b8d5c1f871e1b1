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
import json
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from reluscope._files import write_bytes
from reluscope.experiments.config import Findings, config_from_dict
from reluscope.experiments.figures import (
    CURVES,
    plot_collapse,
    plot_complexity,
    plot_curves,
    plot_partitions,
    save,
    write_zoom_pages,
)
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


def _figure(path: Path | None, caption: str) -> str:
    """An embedded PNG with its caption (HTML)."""
    if path is None:
        return "<p><em>(no data)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    svg = path.with_suffix(".svg")
    vector = f', <a href="{svg.name}">vector (SVG)</a>' if svg.is_file() else ""
    return (f'<figure><a href="{path.name}" title="open at full resolution (zoom in)">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption[:80])}"></a>'
            f"<figcaption>{caption} <a href=\"{path.name}\">Full resolution</a>{vector}."
            "</figcaption></figure>")


def _cell(value: object, floatfmt: str) -> str:
    """One table cell: integral numbers as integers, others by `floatfmt`, NaN empty."""
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return floatfmt.format(value)
    text = html.escape(str(value))
    if text.startswith("runs/") and text.endswith(".html"):
        return f'<a href="{text}">run page</a>'
    if text in ("holds", "does not hold"):
        return f"<span class='{'holds' if text == 'holds' else 'not'}'>{text}</span>"
    return text


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if frame.empty:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v, floatfmt)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


#: The papers the report's findings and metrics come from.
REFERENCES = (
    "Muthivhi, M. &amp; van Zyl, T. (2026). Complexity of Linear Regions in Self-supervised Deep ReLU "
    "Networks.",
    "Humayun, A. I., Balestriero, R., Balakrishnan, G. &amp; Baraniuk, R. (2023). SplineCam: Exact "
    "Visualization and Characterization of Deep Network Geometry and Decision Boundaries. CVPR.",
    "Gamba, M., Chmielewski-Anders, A., Sullivan, J., Azizpour, H. &amp; Björkman, M. (2022). Are All "
    "Linear Regions Created Equal? AISTATS.",
    "Patel, N. &amp; Montúfar, G. (2024). On the Local Complexity of Linear Regions in Deep ReLU Networks.",
    "Humayun, A. I., Balestriero, R. &amp; Baraniuk, R. (2024). Deep Networks Always Grok and Here is "
    "Why. ICML.",
    "Chen, T., Kornblith, S., Norouzi, M. &amp; Hinton, G. (2020). A Simple Framework for Contrastive "
    "Learning of Visual Representations (SimCLR). ICML.",
    "Grill, J.-B. et al. (2020). Bootstrap Your Own Latent (BYOL). NeurIPS.",
    "Caron, M. et al. (2021). Emerging Properties in Self-Supervised Vision Transformers (DINO). ICCV.",
    "He, K., Chen, X., Xie, S., Li, Y., Dollár, P. &amp; Girshick, R. (2022). Masked Autoencoders Are "
    "Scalable Vision Learners (MAE). CVPR.",
    "Garrido, Q., Balestriero, R., Najman, L. &amp; LeCun, Y. (2023). RankMe: Assessing the Downstream "
    "Performance of Pretrained Self-Supervised Representations by Their Rank. ICML.",
)


def provenance() -> dict[str, str]:
    """Version, commit (when run from a git checkout), date, machine and library versions."""
    import datetime
    import os
    import platform
    import subprocess

    import torch

    from reluscope import __version__

    commit = ""
    try:
        here = str(Path(__file__).resolve().parent)
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "commit": commit,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, {platform.system()}",
            "python": platform.python_version(), "torch": torch.__version__}


def is_convolutional(backbone: str) -> bool:
    """Whether a backbone name of the results table is a conv net (the zoo's ``cnn`` and
    ``lenet``, or a custom factory whose name says so)."""
    name = backbone.lower()
    return name in ("cnn", "lenet") or "conv" in name or "cnn" in name


def cnn_arm_config(name: str) -> str | None:
    """The shipped config of the CNN arm of experiment `name` (``<name>-cnn``), if one ships."""
    from reluscope.experiments.config import shipped_configs

    return f"{name}-cnn" if f"{name}-cnn" in shipped_configs() else None


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
    store = Store(root)
    config = store.read_json("experiment.json") or {}
    options = findings_options(config)
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
    zoom = write_zoom_pages(root, table, out)
    backbones = sorted(str(b) for b in table["backbone"].unique())
    failures = store.failures()
    downloads = []
    for label, frame in (("final checkpoints", final), ("findings", findings_frame),
                         ("secondary metrics", secondary), ("correlations", corr)):
        name = f"{label.replace(' ', '_')}.csv"
        write_bytes(out / name, frame.to_csv(index=False).encode())
        downloads.append((f"{label} (CSV)", name))
    failed = pd.DataFrame([{"run": k, "error": v.strip().splitlines()[-1]} for k, v in failures.items()])
    run_pages = write_run_pages(root, table, out)
    final = final.assign(page=final["run_id"].map(run_pages))
    captions = {
        "partitions": "Exact linear regions of the first plane (through three test images) at the pictured "
                      "checkpoints of each objective's first seed; edges coloured by the ReLU site that "
                      "made them.",
        "curves": "Mean over seeds per objective, shaded over its 95% Student-t interval across seeds (none "
                  "where a single seed); dashed lines: collapse variants.",
        "collapse": "Each collapse variant's indicators divided by the mean of the same objective without "
                    "the switch over the other seeds, at the same step (1 = no difference). Bands mark where "
                    "each indicator flags collapse (see finding 4); solid lines are geometry, dotted lines "
                    "the standard indicators. The null rows test healthy runs against their own other seeds: "
                    "their flags are false alarms.",
        "complexity": "Every checkpoint of every healthy run: local complexity against the total variation "
                      "of the output along test segments (Humayun et al. bound one by the other), against "
                      "robust accuracy and against feature rank (Patel &amp; Montúfar); for a grid over "
                      "widths, the test error and the nonlinearity along test segments at the last "
                      "checkpoint (Gamba et al.).",
    }
    tables = {
        "findings": _table(findings_frame), "secondary": _table(secondary),
        "final": _table(final[[*summary_cols, "page"]]),
        "glossary": _table(glossary([m for m in CURVES if m in table])), "correlations": _table(top),
        "per_objective": _table(per_objective), "alarms": _table(alarms),
        "steps": _table(steps) if not steps.empty else "<p>No collapse variants in this grid.</p>",
        "failures": _table(failed),
    }
    page = _render("report.html.j2", name=str(config.get("name", root.name)), n_runs=len(final),
                   n_checkpoints=len(table), options=options, downloads=downloads,
                   tables={k: Markup(v) for k, v in tables.items()},
                   figures={k: Markup(_figure(figures[k], captions[k])) for k in figures},
                   references=[Markup(r) for r in REFERENCES], provenance=provenance(), zoom=zoom,
                   backbones=backbones, has_cnn=any(is_convolutional(b) for b in backbones),
                   cnn_config=cnn_arm_config(str(config.get("name", ""))))
    return write_bytes(out / "report.html", page.encode())


#: Metrics drawn on each run's page (those the run has).
RUN_CURVES = ("slice.log_density_mean", "path.boundary_density", "lc.total", "probe_test_accuracy",
              "knn_accuracy", "feature_rankme", "train.loss", "full.path.boundary_density")


def write_run_pages(root: Path, table: pd.DataFrame, out: Path) -> dict[str, str]:
    """One page per run (``report/runs/<run_id>.html``): its training config, its main
    metrics over training, and every metric at every checkpoint (also as CSV). Returns the
    pages' paths relative to the report, by run id."""
    import matplotlib.pyplot as plt

    folder = out / "runs"
    folder.mkdir(exist_ok=True)
    store = Store(root)
    pages = {}
    for run_id, rows in table.groupby("run_id"):
        rows = rows.sort_values("step")
        config = store.read_json(f"runs/{run_id}/config.json") or {}
        config_frame = pd.DataFrame([{"field": k, "value": json.dumps(v) if isinstance(v, dict | list) else v}
                                     for k, v in config.items()])
        metrics = [m for m in RUN_CURVES if m in rows and rows[m].notna().any()]
        fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(3.2 * max(len(metrics), 1), 2.8),
                                 squeeze=False)
        for ax, metric in zip(axes.flat, metrics, strict=False):
            ax.plot(rows["step"] + 1, rows[metric], marker=".")
            ax.set_xscale("log")
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel("step + 1", fontsize=8)
        png = save(fig, folder / f"{run_id}.png")  # closes the figure
        csv = f"{run_id}.csv"
        write_bytes(folder / csv, rows.to_csv(index=False).encode())
        shown = rows.set_index("step").drop(columns="run_id").T.reset_index()
        shown.columns = ["metric", *[f"step {int(c)}" for c in shown.columns[1:]]]
        page = _render("run.html.j2", run_id=str(run_id), config=Markup(_table(config_frame)),
                       figure=Markup(_figure(png, f"{', '.join(metrics)} of this run over training steps.")),
                       metrics=Markup(_table(shown, "{:.4g}")), csv=csv)
        write_bytes(folder / f"{run_id}.html", page.encode())
        pages[str(run_id)] = f"runs/{run_id}.html"
    return pages


def _render(template: str, **context: object) -> str:
    """Render one of the package's Jinja2 templates (text autoescaped; ``Markup`` kept)."""
    from importlib import resources

    import jinja2

    source = (resources.files("reluscope.experiments") / "templates" / template).read_text()
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True)
    return environment.from_string(source).render(**context)
