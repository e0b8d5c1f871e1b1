"""``reluscope demo``: the main job, from raw data to a report in a few minutes (2-core CPU).

Runs the demo grid (``reluscope/experiments/configs/demo.toml``: MNIST; supervised,
SimCLR, BYOL, SimSiam and SimSiam without stop-gradient, 3 seeds each; an MLP
784-64-64-64; 3 epochs on 10,000 images), analyses every checkpoint (exact slices through test images, paths,
local complexity, probe, kNN, collapse indicators), then writes the report and prints
where it is. Rerunning resumes: finished runs and checkpoints are not recomputed.

Usage: reluscope demo [--root outputs/demo] [--data DIR] [--workers N] [--config GRID.toml]
"""

from __future__ import annotations

import argparse
from importlib import resources

from reluscope.cli._arguments import add_overrides_argument, positive_int_argument

NAME = "demo"
HELP = "the main job: a small grid from raw data to a report"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo command."""
    parser.add_argument("--root", default="outputs/demo", help="experiment folder")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--workers", type=positive_int_argument, default=None,
                        help="parallel runs (default 2)")
    parser.add_argument("--config", default=None, help="another grid (TOML) instead of the demo's")
    add_overrides_argument(parser)


def run(args: argparse.Namespace) -> None:
    """Run the demo grid and write its report."""
    from reluscope.experiments.config import load_config
    from reluscope.experiments.report import write_report
    from reluscope.experiments.runner import run_experiment

    if args.config is not None:
        config = load_config(args.config, args.overrides)
    else:
        with resources.as_file(resources.files("reluscope.experiments") / "configs" / "demo.toml") as path:
            config = load_config(path, args.overrides)
    report = run_experiment(config, args.root, data_dir=args.data, workers=args.workers)
    print(f"grid: {len(report.completed)} runs done, {len(report.skipped)} already complete, "
          f"{len(report.failed)} failed ({report.seconds:.0f}s)")
    for run_id, error in report.failed.items():
        print(f"  failed {run_id}: {error}")
    page = write_report(args.root)
    print(f"report: {page}")
