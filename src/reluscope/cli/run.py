"""``reluscope run``: an experiment grid, trained and analysed into a result store.

``reluscope run CONFIG.toml --root DIR`` trains every run of the grid, analyses every
checkpoint into DIR's result store, and skips what is already done (an interrupted grid
resumes; a failing run is reported and the others go on; SIGTERM or Ctrl-C stops the
workers and keeps every finished checkpoint). ``--report`` then writes the report.

Usage: reluscope run CONFIG.toml [--root DIR] [--data DIR] [--workers N] [--report]
       [--set SECTION.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from reluscope.cli._arguments import (
    add_allow_imports_argument,
    add_overrides_argument,
    apply_allow_imports,
    positive_int_argument,
)

NAME = "run"
HELP = "run an experiment grid (TOML config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope run``."""
    parser.add_argument("config", help="experiment config (TOML), e.g. configs/mnist.toml")
    parser.add_argument("--root", default=None, help="experiment folder (default outputs/<name>)")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--workers", type=positive_int_argument, default=None,
                        help="parallel runs (default: from the config)")
    parser.add_argument("--report", action="store_true", help="write the report when the grid is done")
    add_overrides_argument(parser)
    add_allow_imports_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the grid; returns 1 if a run failed, else 0."""
    from reluscope.experiments.config import load_config
    from reluscope.experiments.report import write_report
    from reluscope.experiments.runner import run_experiment

    apply_allow_imports(args)
    config = load_config(args.config, args.overrides)
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
