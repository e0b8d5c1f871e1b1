"""The ``reluscope`` command line: one module per command.

Every command module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args)``
(its exit status, or None for 0), and imports the heavy libraries only inside ``run`` so
``reluscope --help`` stays fast. Bad input (any :class:`~reluscope.ReluscopeError`) is
printed as one line with exit status 2; Ctrl-C or SIGTERM exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from reluscope import __version__
from reluscope.cli import configs, demo, findings, report, run, slice, train
from reluscope.errors import ReluscopeError


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Docstrings as written, and each option's default in ``--help`` unless its help says it
    already (or there is none to show: a flag, or a default computed at run time)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


#: The commands, in the order ``--help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (demo, run, report, findings, train, slice, configs)


def main(argv: list[str] | None = None) -> int:
    """Run the ``reluscope`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="reluscope", description="Exact geometry of ReLU networks.")
    parser.add_argument("--version", action="version", version=f"reluscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    by_name = {}
    for command in COMMANDS:
        sub = commands.add_parser(command.NAME, help=command.HELP, description=command.__doc__,
                                  formatter_class=_HelpFormatter)
        command.add_arguments(sub)
        for action in sub._actions:  # options without help still show their default
            if action.help is None and action.option_strings and action.default not in (None, False):
                action.help = "(default: %(default)s)"
        by_name[command.NAME] = command
    args = parser.parse_args(argv)
    try:
        status = by_name[args.command].run(args)
    except ReluscopeError as exc:  # bad input: the message says what to do; no traceback
        print(f"reluscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a grid
        print(f"reluscope {args.command}: interrupted; finished runs and checkpoints are kept: run the "
              "same command again to resume", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
