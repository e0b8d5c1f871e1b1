"""Demo: exact linear regions of an MNIST MLP on a plane through three test images.

Trains a small 784-64-64-64-10 ReLU MLP for one pass over 12,000 MNIST training
images (a few seconds on a CPU), then computes the exact partition of the plane
through test images 0, 1 and 2 before and after training, verifies both, and writes
a side-by-side picture, the partitions (.npz) and their summary (JSON).

Usage: reluscope demo [--out outputs/slice_demo] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import reluscope as rs
from reluscope.data import load_idx_images
from reluscope.plotting import plot_partition


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """A few Adam steps of cross-entropy on random mini-batches (seeded)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (128,), generator=gen)
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo command."""
    parser.add_argument("--out", default="outputs/slice_demo", help="output folder")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")


def run(args: argparse.Namespace) -> None:
    """Train the small MLP, slice, verify, and write the picture and partitions."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_x, train_y = load_idx_images("mnist", "train", args.data)
    test_x, test_y = load_idx_images("mnist", "test", args.data)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    anchors = torch.from_numpy(test_x[:3]).double()
    plane = rs.Plane.through(anchors[0], anchors[1], anchors[2], margin=0.2)
    anchor_coords = plane.coordinates(anchors).numpy()

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.3))
    summary = {}
    for ax, stage in zip(axes, ("init", "trained"), strict=True):
        if stage == "trained":
            start = time.perf_counter()
            loss = train(model, torch.from_numpy(train_x[:12000]), torch.from_numpy(train_y[:12000]),
                         steps=100)
            with torch.no_grad():
                acc = (model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean()
            print(f"trained 100 steps in {time.perf_counter() - start:.1f}s: loss {loss:.3f}, "
                  f"test accuracy {acc:.3f}")
        model.eval()
        start = time.perf_counter()
        part = rs.slice_regions(model, plane)
        seconds = time.perf_counter() - start
        report = part.verify(model, max_regions=2000, generator=torch.Generator().manual_seed(0))
        part.save(out / f"partition_{stage}.npz")
        areas = part.areas()
        summary[stage] = {"regions": part.n_regions, "seconds": round(seconds, 3),
                          "mean_area": float(areas.mean()), "median_area": float(np.median(areas)),
                          "verified": report.ok}
        print(f"{stage}: {part.n_regions} regions in {seconds:.2f}s (verified: {report.ok})")
        plot_partition(part, ax, anchors=anchor_coords)
        ax.set_title(f"{stage}: {part.n_regions:,} linear regions")
        model.train()
    labels = ", ".join(str(int(y)) for y in test_y[:3])
    fig.suptitle(f"MLP 784-64-64-64-10 on the plane through MNIST test images 0-2 (digits {labels})")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out / "partitions.png", dpi=130)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"picture: {out / 'partitions.png'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m reluscope.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
