"""Cost of analysing one checkpoint with a study config, with the breakdown by stage.

Trains one run of the config's grid (default: the first objective of
``configs/paper-mnist.toml``, seed 0) for one epoch, then analyses its step-0 checkpoint
(the untrained network, the densest slices) and its end-of-epoch-1 checkpoint exactly as
the runner does (``reluscope.experiments.analyze.analyse``, one torch thread and one BLAS
thread, like a grid worker with ``workers = 2`` on 2 cores). Prints one JSON line per checkpoint: wall and
process CPU seconds, the seconds of each stage (``time.*``), the backbone's mean region
count, and the machine. The first analysis of a process also pays one-time costs (numba
kernels loaded from their cache, the dataset decoded, L-BFGS imported); ``--warmup`` runs
one analysis before measuring.

Usage: python benchmarks/analysis_bench.py [--config configs/paper-mnist.toml]
       [--objective simclr] [--threads 1] [--data DIR] [--epochs 10 --all] [--repeat 3]

``--epochs 10 --all`` analyses every checkpoint of a full-length run (the study's
schedule) and ends with the mean and the maximum CPU seconds per checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import machine
from reluscope.experiments.analyze import analyse, choose_probes
from reluscope.experiments.config import load_config
from reluscope.experiments.runner import NATIVE_THREAD_VARIABLES
from reluscope.train import train
from reluscope.train.loop import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "configs" / "paper-mnist.toml"))
    parser.add_argument("--objective", default=None, help="objective of the run (default: the grid's first)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", action="store_true", help="analyse once before measuring")
    parser.add_argument("--epochs", type=int, default=1, help="epochs to train (default 1)")
    parser.add_argument("--all", action="store_true",
                        help="analyse every checkpoint of the run (default: the first and the last)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="analyses per checkpoint; the one of least CPU time is printed")
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()
    wanted = {name: str(args.threads) for name in NATIVE_THREAD_VARIABLES}
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        # numpy sizes its BLAS pool when it loads: restart with the limit a grid worker has
        # (reluscope.experiments.runner.native_threads)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **wanted})
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    spec = config.runs()[0].train
    if args.objective:
        spec = dataclasses.replace(spec, objective=args.objective)
    spec = dataclasses.replace(spec, epochs=args.epochs)
    probes, _ = choose_probes(spec.dataset, config.analysis, args.data, None)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(spec, tmp, data_dir=args.data, quiet=True)
        chosen = result.checkpoints if args.all else [result.checkpoints[0], result.checkpoints[-1]]
        if args.warmup:
            _, objective, _ = load_checkpoint(chosen[-1][1])
            analyse(objective, spec.dataset, config.analysis, probes, args.data)
        costs = []
        for step, path in chosen:
            _, objective, meta = load_checkpoint(path)
            runs = []
            for _ in range(max(1, args.repeat)):
                wall, cpu = time.perf_counter(), time.process_time()
                values = analyse(objective, spec.dataset, config.analysis, probes, args.data)
                runs.append((time.process_time() - cpu, time.perf_counter() - wall, values))
            cpu_s, wall_s, values = min(runs, key=lambda r: r[0])
            costs.append(cpu_s)
            row = {"bench": "analysis", "config": config.name, "objective": spec.objective, "step": step,
                   "epoch": meta["epoch"], "wall_seconds": round(wall_s, 2), "cpu_seconds": round(cpu_s, 2),
                   "threads": args.threads,
                   "regions_per_plane": round(values.get("slice.n_regions", float("nan"))),
                   "stages": {k[5:]: round(v, 2) for k, v in values.items() if k.startswith("time.")},
                   "machine": machine()}
            print(json.dumps(row), flush=True)
        print(json.dumps({"bench": "analysis-run", "config": config.name, "objective": spec.objective,
                          "epochs": args.epochs, "checkpoints": len(costs),
                          "cpu_seconds_mean": round(sum(costs) / len(costs), 2),
                          "cpu_seconds_max": round(max(costs), 2), "target_cpu_seconds": 10.0,
                          "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
