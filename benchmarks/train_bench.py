"""Speed of training and evaluation (one JSON line per case).

* ``simclr_epoch``: one SimCLR epoch on all 60,000 MNIST training images (two augmented
  views per image, MLP 784-256-256-256 + projector 256-512-128, batch 512, Adam), the
  whole ``train`` call (data loading, augmentation, checkpoints) timed;
* ``linear_probe``: L-BFGS logistic regression on the 60,000 x 256 backbone features
  (test on 10,000), and ``knn``: weighted kNN (k=20) on the same features.

Usage: python benchmarks/train_bench.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from _common import machine
from reluscope.evaluate import extract_features, knn_accuracy, linear_probe
from reluscope.evaluate.quality import load_split
from reluscope.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()
    config = TrainConfig(objective="simclr", epochs=1, batch_size=512, width=256, depth=3)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(config, tmp, data_dir=args.data, quiet=True)
        seconds = time.perf_counter() - start
    print(json.dumps({"bench": "simclr_epoch", "images": 60000, "batch": 512, "steps": 117,
                      "seconds": round(seconds, 2), "machine": machine()}), flush=True)
    train_x, train_y = load_split("mnist", "train", args.data, None)
    test_x, test_y = load_split("mnist", "test", args.data, None)
    with torch.no_grad():
        f_train = extract_features(result.objective.backbone, train_x)
        f_test = extract_features(result.objective.backbone, test_x)
    start = time.perf_counter()
    probe = linear_probe(f_train, train_y, f_test, test_y)
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": "linear_probe", "train": list(f_train.shape), "seconds": round(seconds, 2),
                      "test_accuracy": round(probe["probe_test_accuracy"], 4), "machine": machine()}),
          flush=True)
    start = time.perf_counter()
    acc = knn_accuracy(f_train, train_y, f_test, test_y)
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": "knn", "train": list(f_train.shape), "seconds": round(seconds, 2),
                      "accuracy": round(acc, 4), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
