"""Speed of the local-complexity estimators (one JSON line per case).

Cross-polytope LC (Humayun et al., 2024) with P directions and radius r at the first N
MNIST test images, on the MLPs 784-w-w-w-10 of slice_bench; the vertex forward pass in
float64 and in float32; ball and smooth LC with k Gaussian probes.

Usage: python benchmarks/lc_bench.py [--widths 1024] [--points 1000] [--directions 25] [--radius 0.5]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import reluscope as rs
from _common import machine, mlp
from reluscope.data import load_idx_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[1024])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--directions", type=int, default=25)
    parser.add_argument("--radius", type=float, default=0.5)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()
    images, _ = load_idx_images("mnist", "test", args.data)
    x = torch.from_numpy(images[: args.points]).double()
    for width in args.widths:
        model = mlp(width)
        for dtype in (torch.float64, torch.float32):
            start = time.perf_counter()
            lc = rs.metrics.cross_polytope_lc(model, x, args.radius, args.directions, dtype=dtype,
                                              generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
            print(json.dumps({"bench": "cross_polytope_lc", "width": width, "points": len(x),
                              "directions": args.directions, "radius": args.radius,
                              "dtype": str(dtype).replace("torch.", ""), "seconds": round(seconds, 3),
                              "mean_total": round(float(lc.total.mean()), 2), "machine": machine()}),
                  flush=True)
        estimators = (("ball_lc", rs.metrics.ball_lc, 0.05), ("smooth_lc", rs.metrics.smooth_lc, 0.05))
        for name, fn, param in estimators:
            start = time.perf_counter()
            lc = fn(model, x, param, probes=args.probes)
            seconds = time.perf_counter() - start
            print(json.dumps({"bench": name, "width": width, "points": len(x), "probes": args.probes,
                              "param": param, "seconds": round(seconds, 3),
                              "mean_total": round(float(lc.total.mean()), 2), "machine": machine()}),
                  flush=True)


if __name__ == "__main__":
    main()
