"""``reluscope findings DIR``: print an experiment's findings (verdict, numbers, criterion).

Read from DIR's stored results alone, with the ``[findings]`` options its config
pre-registered.

Usage: reluscope findings DIR [--markdown]
"""

from __future__ import annotations

import argparse

NAME = "findings"
HELP = "print an experiment's findings (verdicts, numbers, criteria)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope findings``."""
    parser.add_argument("root", help="experiment folder written by `reluscope run`")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (verdict, numbers, "
                        "criterion) instead of plain text")


def run(args: argparse.Namespace) -> int:
    """Print the findings of an experiment folder (from its stored results alone)."""
    from reluscope.experiments.findings import findings as compute
    from reluscope.experiments.findings import wide
    from reluscope.experiments.report import findings_options
    from reluscope.experiments.store import Store, load_analysed

    table = wide(load_analysed(args.root))
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
