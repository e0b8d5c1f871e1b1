"""Representation quality after a short full-size run of each objective (one JSON line each).

Each objective trains for --epochs on all 60,000 MNIST training images (MLP 784-256-256-256,
batch 512, Adam 1e-3, seed 0); then: linear probe (L-BFGS on all 60,000 train features,
tested on the 10,000 test images), kNN (k=20), and collapse indicators of the embeddings
and backbone features on the first 2,048 test images. The first line is the random-init
backbone.

Usage: python benchmarks/quality_bench.py [--epochs 3] [--objectives simclr byol ...] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from _common import machine
from reluscope.evaluate import representation_quality
from reluscope.train import OBJECTIVES, TrainConfig, build, train

KEYS = ("probe_test_accuracy", "knn_accuracy", "embedding_std", "embedding_rankme", "feature_rankme",
        "dino_teacher_entropy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--objectives", nargs="+", default=[
        "supervised", "simclr", "moco", "byol", "simsiam", "dino", "vicreg", "barlow",
        "simsiam-no-stopgrad", "byol-no-predictor", "dino-no-centering", "vicreg-invariance-only"],
        choices=sorted(OBJECTIVES))
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()

    def show(name: str, quality: dict[str, float], seconds: float) -> None:
        row = {"bench": "quality", "run": name, "train_seconds": round(seconds, 1),
               **{k: round(v, 4) for k, v in quality.items() if k in KEYS}, "machine": machine()}
        print(json.dumps(row), flush=True)

    show("random-init", representation_quality(build(TrainConfig()), "mnist", args.data), 0.0)
    for name in args.objectives:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            config = TrainConfig(objective=name, epochs=args.epochs)
            result = train(config, tmp, data_dir=args.data, quiet=True)
            seconds = time.perf_counter() - start
        show(name, representation_quality(result.objective, "mnist", args.data), seconds)


if __name__ == "__main__":
    main()
