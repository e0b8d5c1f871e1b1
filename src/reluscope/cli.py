"""The ``reluscope`` command line."""

from __future__ import annotations

import argparse
import sys

from reluscope import demo, slice_command, train_command
from reluscope.errors import ReluscopeError


def main(argv: list[str] | None = None) -> int:
    """Run the ``reluscope`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="reluscope", description="Exact geometry of ReLU networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="slice an MNIST MLP before/after training",
                                      description=demo.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_arguments(demo_parser)
    slice_parser = commands.add_parser("slice", help="exact regions of a saved model on a plane "
                                       "through three images", description=slice_command.__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    slice_command.add_arguments(slice_parser)
    train_parser = commands.add_parser("train", help="train one run with checkpoints (and evaluate them)",
                                       description=train_command.__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    train_command.add_arguments(train_parser)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo.run(args)
        elif args.command == "slice":
            slice_command.run(args)
        elif args.command == "train":
            train_command.run(args)
    except ReluscopeError as exc:  # bad input: the message says what to do; no traceback
        print(f"reluscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
