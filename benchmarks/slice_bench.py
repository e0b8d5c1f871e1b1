"""Speed and scale of the exact 2D engine (one JSON line per case).

Case: MLP 784-w-w-w-10 (torch.manual_seed(0), default init, nn.Sequential of
Linear/ReLU); planes through MNIST test images (0,1,2), (3,4,5), (6,7,8) scaled to
[0, 1], origin at their centroid, square half-width 1.2 x the largest absolute plane
coordinate of the three images (Plane.through(..., margin=0.2)).

Usage: python benchmarks/slice_bench.py [--widths 64 256 1024] [--data DIR] [--verify] [--plot]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import reluscope as rs
from _common import machine, mlp, peak_rss_mb, reset_peak_rss
from reluscope.data import load_idx_images

TRIPLETS = [(0, 1, 2), (3, 4, 5), (6, 7, 8)]


def plot_seconds(part: rs.Partition2D) -> float:
    """Time to draw the partition (default mode for its size) and save a 150 dpi PNG."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reluscope.plotting import plot_partition

    start = time.perf_counter()
    ax = plot_partition(part)
    with tempfile.TemporaryDirectory() as tmp:
        ax.figure.savefig(f"{tmp}/p.png", dpi=150)
    plt.close(ax.figure)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    parser.add_argument("--verify", action="store_true", help="also run Partition2D.verify")
    parser.add_argument("--planes", type=int, default=3, help="how many of the 3 planes to run")
    parser.add_argument("--plot", action="store_true", help="also time plot_partition + savefig")
    args = parser.parse_args()
    images, _ = load_idx_images("mnist", "test", args.data)
    x = torch.from_numpy(images).double()
    # warm-up: torch initialises forward-mode AD lazily (~1-2 s once per process)
    start = time.perf_counter()
    rs.slice_regions(mlp(4).eval(), rs.Plane.through(x[0], x[1], x[2]))
    print(json.dumps({"bench": "warmup", "seconds": round(time.perf_counter() - start, 3)}), flush=True)
    for width in args.widths:
        model = mlp(width).eval()
        for triplet in TRIPLETS[: args.planes]:
            plane = rs.Plane.through(*(x[i] for i in triplet), margin=0.2)
            reset_peak_rss()  # peak memory of this case alone
            start = time.perf_counter()
            part = rs.slice_regions(model, plane)
            seconds = time.perf_counter() - start
            row = {"bench": "slice_regions", "width": width, "images": list(triplet),
                   "regions": part.n_regions, "vertices": part.n_vertices,
                   "seconds": round(seconds, 4), "us_per_region": round(1e6 * seconds / part.n_regions, 2),
                   "peak_rss_mb": round(peak_rss_mb(), 1), "degenerate": part.n_degenerate,
                   "machine": machine(),
                   "stages": part.timings}
            if args.verify:
                report = part.verify(model, max_regions=2000,
                                     generator=torch.Generator().manual_seed(0))
                row["verified"] = report.ok
            if args.plot:
                row["plot_seconds"] = round(plot_seconds(part), 3)
            print(json.dumps(row), flush=True)
            del part  # the next case's peak memory is its own


if __name__ == "__main__":
    main()
