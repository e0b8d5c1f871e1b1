"""Speed of the exact 1D engine (one JSON line per case).

Cases, on the MLPs 784-w-w-w-10 of slice_bench (torch.manual_seed(0), default init) and
MNIST test images scaled to [0, 1]:

* ``segment``: the segment from test image 0 to test image 1 (best of --repeats runs);
* ``batch``: the 1,000 segments from test image i to i+1, i = 0..999, as one batch;
* ``conv_batch``: the first --conv-segments of those on the zoo's SmallCNN and LeNet
  (random init, torch.manual_seed(0)), as one batch, with the cost per piece.

Usage: python benchmarks/path_bench.py [--widths 64 256 1024] [--batch-widths 256]
       [--conv-segments 16] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import reluscope as rs
from _common import machine, mlp, peak_rss_mb
from reluscope.data import load_idx_images
from reluscope.nets.zoo import build_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batch-widths", type=int, nargs="*", default=[256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conv-segments", type=int, default=16, help="segments for the conv nets (0: none)")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()
    images, _ = load_idx_images("mnist", "test", args.data)
    x = torch.from_numpy(images).double()
    rs.path_regions(mlp(4), rs.Path.segment(x[0], x[1]))  # warm-up (lazy torch init)
    for width in args.widths:
        model = mlp(width)
        best, part = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            part = rs.path_regions(model, rs.Path.segment(x[0], x[1]))
            best = min(best, time.perf_counter() - start)
        assert part is not None
        print(json.dumps({"bench": "path_segment", "width": width, "images": [0, 1],
                          "regions": int(part.region_counts()[0]), "seconds": round(best, 4),
                          "machine": machine()}), flush=True)
    for width in args.batch_widths:
        model = mlp(width)
        paths = [rs.Path.segment(x[i], x[i + 1]) for i in range(1000)]
        start = time.perf_counter()
        part = rs.path_regions(model, paths)
        seconds = time.perf_counter() - start
        counts = part.region_counts()
        print(json.dumps({"bench": "path_batch", "width": width, "segments": len(paths),
                          "regions_total": int(counts.sum()), "regions_mean": round(float(counts.mean()), 1),
                          "seconds": round(seconds, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
                          "machine": machine()}), flush=True)

    for kind in ("cnn", "lenet") if args.conv_segments else ():
        torch.manual_seed(0)
        model = build_backbone(kind, 256).eval()
        paths = [rs.Path.segment(x[i][None], x[i + 1][None]) for i in range(args.conv_segments)]
        rs.path_regions(model, paths[:1])  # warm-up
        start = time.perf_counter()
        part = rs.path_regions(model, paths)
        seconds = time.perf_counter() - start
        print(json.dumps({"bench": "path_conv_batch", "backbone": kind, "segments": len(paths),
                          "pieces": part.n_pieces, "seconds": round(seconds, 3),
                          "us_per_piece": round(1e6 * seconds / part.n_pieces, 1),
                          "peak_rss_mb": round(peak_rss_mb(), 1), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
