"""``reluscope configs [NAME]``: the experiment configs installed with the package.

Without NAME, one line per config (its name and what it is); with NAME, the config itself
(TOML, with its comments: copy it to start your own). ``reluscope run NAME`` runs a
shipped config by name.

Usage: reluscope configs [NAME]
"""

from __future__ import annotations

import argparse

NAME = "configs"
HELP = "list the shipped experiment configs, or print one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``reluscope configs``."""
    parser.add_argument("name", nargs="?", default=None, help="a config to print (e.g. paper-mnist)")


def run(args: argparse.Namespace) -> int:
    """List the shipped configs, or print one."""
    from reluscope._validation import message
    from reluscope.errors import InputValueError
    from reluscope.experiments.config import describe_config, shipped_configs

    configs = shipped_configs()
    if args.name is None:
        width = max(len(name) for name in configs)
        for name in sorted(configs):
            print(f"{name:<{width}}  {describe_config(configs[name])}")
        return 0
    name = args.name.removesuffix(".toml")
    if name not in configs:
        raise InputValueError(message("the config name", f"one of {sorted(configs)}", repr(args.name),
                                      "Run `reluscope configs` to list them."))
    print(configs[name].read_text(), end="")
    return 0
