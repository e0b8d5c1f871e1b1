"""The ``reluscope`` command line."""

from __future__ import annotations

import argparse
import sys

from reluscope import demo


def main(argv: list[str] | None = None) -> int:
    """Run the ``reluscope`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="reluscope", description="Exact geometry of ReLU networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="slice an MNIST MLP before/after training",
                                      description=demo.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_arguments(demo_parser)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
