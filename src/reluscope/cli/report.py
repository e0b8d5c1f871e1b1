"""``reluscope report DIR``: write DIR/report/report.html from the stored results alone.

Usage: reluscope report DIR
"""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write an experiment's HTML report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope report``."""
    parser.add_argument("root", help="experiment folder written by `reluscope run`")


def run(args: argparse.Namespace) -> int:
    """Write the report of an experiment folder."""
    from reluscope.experiments.report import write_report

    print(f"report: {write_report(args.root)}")
    return 0
