"""argparse types for the command line (no torch: ``reluscope --help`` stays fast)."""

from __future__ import annotations

import argparse
import math


def positive_int_argument(text: str) -> int:
    """A positive integer, with a message saying so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float_argument(text: str) -> float:
    """A positive finite number, with a message saying so."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                        help="override a config value (TOML syntax; repeatable), e.g. "
                        "--set training.epochs=1 --set grid.seeds=[0]")


def add_allow_imports_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-imports``: honour backbones and datasets named ``package.module:factory``
    (runs their code)."""
    parser.add_argument("--allow-imports", action="store_true",
                        help="allow backbones ('package.module:factory') and datasets "
                        "('py:package.module:factory') of your own (importing a module runs its code: "
                        "only for modules you trust)")


def add_dataset_argument(parser: argparse.ArgumentParser, builtin: list[str]) -> None:
    """``--dataset``: a built-in name or one of your own (``reluscope.data.own``)."""
    parser.add_argument("--dataset", default="mnist",
                        help=f"one of {', '.join(sorted(builtin))}, or your own: npz:file.npz, "
                        "folder:path (train/<class>/*.png, test/<class>/*.png) or "
                        "py:package.module:factory (with --allow-imports) (default: mnist)")


def apply_allow_imports(args: argparse.Namespace) -> None:
    """Set ``RELUSCOPE_ALLOW_IMPORTS=1`` for this process and its workers when asked."""
    import os

    if getattr(args, "allow_imports", False):
        os.environ["RELUSCOPE_ALLOW_IMPORTS"] = "1"
