"""The ``reluscope`` command line."""

from __future__ import annotations

import argparse
import sys

from reluscope import __version__, demo, run_command, slice_command, train_command
from reluscope.errors import ReluscopeError


def _add(commands: argparse._SubParsersAction, name: str, help_text: str, doc: str | None
         ) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=help_text, description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: list[str] | None = None) -> int:
    """Run the ``reluscope`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="reluscope", description="Exact geometry of ReLU networks.")
    parser.add_argument("--version", action="version", version=f"reluscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(_add(commands, "demo", "the main job: a small grid from raw data to a report",
                            demo.__doc__))
    run_command.add_run_arguments(_add(commands, "run", "run an experiment grid (TOML config)",
                                       run_command.__doc__))
    run_command.add_report_arguments(_add(commands, "report", "write an experiment's HTML report",
                                          run_command.__doc__))
    run_command.add_findings_arguments(_add(commands, "findings", "print an experiment's findings "
                                            "(verdicts, numbers, criteria)", run_command.__doc__))
    train_command.add_arguments(_add(commands, "train", "train one run with checkpoints (and evaluate them)",
                                     train_command.__doc__))
    slice_command.add_arguments(_add(commands, "slice", "exact regions of a saved model on a plane through "
                                     "three images", slice_command.__doc__))
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo.run(args)
        elif args.command == "run":
            return run_command.run(args)
        elif args.command == "report":
            return run_command.report(args)
        elif args.command == "findings":
            return run_command.findings(args)
        elif args.command == "train":
            train_command.run(args)
        elif args.command == "slice":
            slice_command.run(args)
    except ReluscopeError as exc:  # bad input: the message says what to do; no traceback
        print(f"reluscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a grid
        print(f"reluscope {args.command}: interrupted; finished runs and checkpoints are kept: run the "
              "same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
