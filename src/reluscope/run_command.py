"""``reluscope run`` and ``reluscope report``: an experiment grid and its report.

``reluscope run CONFIG.toml --root DIR`` trains every run of the grid, analyses every
checkpoint into DIR's result store, and skips what is already done (an interrupted grid
resumes; a failing run is reported and the others go on). ``reluscope report DIR``
writes DIR/report/report.html; ``reluscope findings DIR`` prints the findings.
"""

from __future__ import annotations

import argparse

from reluscope._arguments import positive_int_argument


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope run``."""
    parser.add_argument("config", help="experiment config (TOML), e.g. configs/mnist.toml")
    parser.add_argument("--root", default=None, help="experiment folder (default outputs/<name>)")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--workers", type=positive_int_argument, default=None,
                        help="parallel runs (default: from the config)")
    parser.add_argument("--report", action="store_true", help="write the report when the grid is done")


def run(args: argparse.Namespace) -> int:
    """Run the grid; returns 1 if a run failed, else 0."""
    from reluscope.experiments.config import load_config
    from reluscope.experiments.report import write_report
    from reluscope.experiments.runner import run_experiment

    config = load_config(args.config)
    root = args.root or f"outputs/{config.name}"
    report = run_experiment(config, root, data_dir=args.data, workers=args.workers)
    print(f"{config.name}: {len(report.completed)} runs done, {len(report.skipped)} already complete, "
          f"{len(report.failed)} failed ({report.seconds:.0f}s); results in {root}")
    for run_id, error in report.failed.items():
        print(f"  failed {run_id}: {error} (details: {root}/runs/{run_id}/error.txt)")
    for run_id in report.busy:
        print(f"  left to another process: {run_id} (its lock is held; rerun later to pick up its results)")
    if args.report:
        print(f"report: {write_report(root)}")
    return 1 if report.failed else 0


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope report``."""
    parser.add_argument("root", help="experiment folder written by `reluscope run`")


def add_findings_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope findings``."""
    parser.add_argument("root", help="experiment folder written by `reluscope run`")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (verdict, numbers, "
                        "criterion) instead of plain text")


def findings(args: argparse.Namespace) -> int:
    """Print the findings of an experiment folder (from its stored results alone)."""
    from reluscope._validation import message
    from reluscope.errors import InputValueError
    from reluscope.experiments.findings import findings as compute
    from reluscope.experiments.findings import wide
    from reluscope.experiments.report import findings_options
    from reluscope.experiments.store import Store, load_results

    results = load_results(args.root)
    if results.empty:
        raise InputValueError(message(f"experiment folder {str(args.root)!r}", "analysed checkpoints",
                                      "no results", "Run `reluscope run CONFIG --root DIR` first."))
    table = wide(results)
    found = compute(table, findings_options(Store(args.root).read_json("experiment.json")))
    print(f"{table['run_id'].nunique()} runs, {len(table)} analysed checkpoints in {args.root}")
    if args.markdown:
        print("| finding | network | verdict | numbers |\n|---|---|---|---|")
        for f in found:
            print(f"| {f.title} | {f.network} | **{f.verdict}** | {f.numbers.replace('|', '/')} |")
        return 0
    for f in found:
        print(f"\n[{f.verdict}] {f.title} ({f.network}: {f.metric})\n  {f.numbers}")
        print(f"  criterion: {f.criterion}")
    return 0


def report(args: argparse.Namespace) -> int:
    """Write the report of an experiment folder."""
    from reluscope.experiments.report import write_report

    print(f"report: {write_report(args.root)}")
    return 0
