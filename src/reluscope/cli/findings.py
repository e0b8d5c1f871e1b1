"""``reluscope findings DIR [DIR ...]``: print an experiment's findings (verdict, numbers,
criterion).

Read from the stored results alone, with the ``[findings]`` options the config
pre-registered. Several folders (the arms of one study, e.g. an MLP and a CNN experiment)
are pooled into one table; their ``[findings]`` tables must be the same.

Usage: reluscope findings DIR [DIR ...] [--markdown]
"""

from __future__ import annotations

import argparse

from reluscope._validation import message
from reluscope.errors import InputValueError

NAME = "findings"
HELP = "print an experiment's findings (verdicts, numbers, criteria)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope findings``."""
    parser.add_argument("roots", nargs="+", metavar="root",
                        help="experiment folder written by `reluscope run` (several: pooled)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (verdict, numbers, "
                        "criterion) instead of plain text")


def run(args: argparse.Namespace) -> int:
    """Print the findings of an experiment folder (from its stored results alone)."""
    from reluscope.experiments.findings import findings as compute
    from reluscope.experiments.findings import wide
    from reluscope.experiments.report import findings_options
    from reluscope.experiments.store import Store, load_pooled

    table = wide(load_pooled(args.roots))
    options = [findings_options(Store(root).read_json("experiment.json")) for root in args.roots]
    if any(o != options[0] for o in options[1:]):
        raise InputValueError(message(
            f"experiment folders {args.roots}", "the same pre-registered [findings] table",
            "folders whose configs pre-registered different findings options",
            "Pool only arms of one study (configs with the same [findings] table)."))
    found = compute(table, options[0])
    print(f"{table['run_id'].nunique()} runs, {len(table)} analysed checkpoints in {', '.join(args.roots)}")
    if args.markdown:
        print("| finding | network | verdict | numbers |\n|---|---|---|---|")
        for f in found:
            print(f"| {f.title} | {f.network} | **{f.verdict}** | {f.numbers.replace('|', '/')} |")
        return 0
    for f in found:
        print(f"\n[{f.verdict}] {f.title} ({f.network}: {f.metric})\n  {f.numbers}")
        print(f"  criterion: {f.criterion}")
    return 0
