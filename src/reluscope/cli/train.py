"""``reluscope train``: train one run with checkpoints, and measure its representations.

Trains (or resumes) the run in ``--out`` and, with ``--evaluate``, measures every
checkpoint (linear probe, kNN, collapse indicators), writing ``quality.json`` beside
each checkpoint (skipped when already there) and printing a table.

Usage: reluscope train --objective simclr [--dataset mnist] [--epochs 5] [--out runs/NAME] [--evaluate]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reluscope._files import write_json
from reluscope._toml import toml_value
from reluscope._validation import message
from reluscope.cli._arguments import (
    add_allow_imports_argument,
    add_dataset_argument,
    apply_allow_imports,
    positive_float_argument,
    positive_int_argument,
)
from reluscope.data.registry import DATASETS
from reluscope.errors import InputValueError
from reluscope.train.names import OBJECTIVE_NAMES

NAME = "train"
HELP = "train one run with checkpoints (and evaluate them)"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the train command (one per TrainConfig field)."""
    parser.add_argument("--objective", choices=sorted(OBJECTIVE_NAMES), default="simclr")
    add_dataset_argument(parser, list(DATASETS))
    parser.add_argument("--backbone", default="mlp",
                        help="mlp, cnn, or your own as package.module:factory (with --allow-imports)")
    parser.add_argument("--backbone-option", action="append", default=[], metavar="KEY=VALUE",
                        dest="backbone_options", help="keyword argument of your backbone's factory "
                        "(TOML value; repeatable), e.g. --backbone-option channels=8")
    add_allow_imports_argument(parser)
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also log the training losses to TensorBoard event files in DIR")
    parser.add_argument("--wandb", default=None, metavar="PROJECT",
                        help="also log the training losses to a Weights & Biases run of PROJECT "
                        "(WANDB_MODE=offline keeps it local)")
    parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:N or auto (CUDA "
                        "when present; evaluation stays on the CPU) (default: cpu)")
    parser.add_argument("--width", type=positive_int_argument, default=256)
    parser.add_argument("--depth", type=positive_int_argument, default=3)
    parser.add_argument("--batchnorm", action="store_true")
    parser.add_argument("--epochs", type=positive_int_argument, default=5)
    parser.add_argument("--batch-size", type=positive_int_argument, default=512)
    parser.add_argument("--lr", type=positive_float_argument, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=positive_int_argument, default=None,
                        help="train on the first N images")
    parser.add_argument("--out", default=None, help="run folder (default runs/<objective>-<dataset>-s<seed>)")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--evaluate", action="store_true", help="probe, kNN and collapse indicators at "
                        "every checkpoint")
    parser.add_argument("--eval-train", type=positive_int_argument, default=None,
                        help="probe on the first N train images")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train, then (optionally) evaluate each checkpoint; returns the evaluations."""
    from reluscope.train.loop import TrainConfig, load_checkpoint, train

    apply_allow_imports(args)
    options: dict[str, Any] = {}
    for text in args.backbone_options:  # KEY=VALUE with a TOML value, like --set
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise InputValueError(message("`--backbone-option`", "KEY=VALUE", repr(text),
                                          "e.g. --backbone-option channels=8"))
        options[key.strip()] = toml_value(raw)
    config = TrainConfig(dataset=args.dataset, objective=args.objective, backbone=args.backbone,
                         width=args.width, depth=args.depth, batchnorm=args.batchnorm, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, seed=args.seed, subset=args.subset,
                         backbone_options=options)
    out = Path(args.out or f"runs/{args.objective}-{args.dataset}-s{args.seed}")
    from reluscope.train.loggers import Loggers, TensorBoardLogger, WandbLogger

    loggers: list[Any] = []
    if args.tensorboard:
        loggers.append(TensorBoardLogger(args.tensorboard))
    if args.wandb:
        # the run's files beside its checkpoints (offline mode: WANDB_MODE=offline, then `wandb sync`)
        loggers.append(WandbLogger(args.wandb, name=out.name, config=config.to_dict(), directory=out))
    on_log = Loggers(loggers)
    try:
        result = train(config, out, data_dir=args.data, device=args.device,
                       on_log=on_log if loggers else None)
    finally:
        on_log.close()
    print(f"trained {config.objective} on {config.dataset} in {result.seconds:.1f}s "
          f"({len(result.checkpoints)} checkpoints in {out / 'checkpoints'})")
    rows: list[dict[str, Any]] = []
    if not args.evaluate:
        return rows
    from reluscope.evaluate import representation_quality
    from reluscope.progress import progress_bar

    for step, path in progress_bar(result.checkpoints, desc="evaluate checkpoints"):
        target = path.with_name(path.stem + ".quality.json")
        if target.is_file():
            row = json.loads(target.read_text())
        else:
            _, objective, _ = load_checkpoint(path)
            row = {"step": step, **representation_quality(objective, config.dataset, args.data,
                                                          train_limit=args.eval_train)}
            write_json(target, row)
        rows.append(row)
    print(f"{'step':>7} {'probe':>7} {'knn':>7} {'emb std':>8} {'rankme':>8}")
    for row in rows:
        print(f"{row['step']:>7} {row['probe_test_accuracy']:>7.4f} {row['knn_accuracy']:>7.4f} "
              f"{row['embedding_std']:>8.3f} {row['embedding_rankme']:>8.1f}")
    return rows
