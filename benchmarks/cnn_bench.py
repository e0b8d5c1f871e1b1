"""Speed and memory of the exact 2D engine on conv nets, beside an MLP (one JSON line per case).

Cases: ``zoo.SmallCNN`` (conv 16 -> avg-pool -> conv 32 -> avg-pool -> linear 256, ReLUs;
torch.manual_seed(0), default init), untrained and (``--trained``) after one epoch of
supervised training on all of MNIST; planes through MNIST test images (0, 1, 2) centred
like ``Plane.through(..., margin=0.2)``, as squares of ``--scales`` times its half-width
(1.0 is the full plane). ``--lenet`` adds ``zoo.LeNet`` (conv 6 -> ReLU -> max-pool 2 ->
conv 16 -> ReLU -> max-pool 2 -> linear 120, ReLU; seed 0) at ``--lenet-scales``: its
values come from the vertex values of each pooled site (gathered windows) and the pools'
links (``EngineOptions.pool_values``); each
LeNet row also slices the same network written as an MLP (``dense_lenet``: each conv as its
unrolled Linear) and gives ``warm_vs_dense_equivalent``. The
MLP 784-256-256-256-10 of ``slice_bench`` runs first, on the full plane and on each square,
every slice twice: cold (compiled kernels and the model's links built in the call) and warm
(the same slice again: kernels loaded and links remembered for the model's state, as for
every plane of a checkpoint after its first). Every CNN line carries the ratio of its warm
microseconds per region to the MLP's warm full plane (``warm_vs_mlp``) and to the MLP's warm
square of the same size (``warm_vs_mlp_square``), and to the MLP's warm slice of about as many
regions (``warm_vs_mlp_matched``, its square found by :func:`matched_mlp`; past the 256-wide MLP's
largest slice, the 784-1024-1024-1024-10 MLP's whole plane where that is closer): the target ratio,
since both engines pay a fixed cost per call that only large slices amortise. Memory:
``kb_per_region`` is the call's peak resident memory above where it started (garbage
collected and freed heap pages trimmed first, see ``_common.reset_peak_rss``) per region,
and ``warm_memory_vs_mlp_matched`` its warm ratio to the matched MLP slice's;
``heap_kb_per_region`` is the peak of live heap memory above its start (glibc's mallinfo2,
sampled every millisecond: freed pages the allocator keeps do not count, so it varies far less
between runs than resident memory; blocks allocated but never written count in full, so it can
exceed the resident peak), ``warm_heap_vs_mlp_matched`` its warm ratio, and
``warm_working_heap_vs_mlp_matched`` the ratio of what is left after the partition's own
patterns (``patterns_b_per_region``) are taken off both: the memory the engine works in,
beside the result it returns;
``patterns_b_per_region`` is what the partition's patterns hold.

Usage: python benchmarks/cnn_bench.py [--scales 0.01 0.03 0.1 0.3] [--trained]
       [--lenet] [--lenet-scales 0.01 0.03 0.1 0.3] [--data DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time

import numpy as np
import torch

import reluscope as rs
from _common import HeapPeak, machine, mlp, peak_rss_mb, reset_peak_rss
from reluscope.data import load_idx_images
from reluscope.nets.zoo import LeNet, SmallCNN


def run(model: torch.nn.Module, plane: rs.Plane, max_regions: int) -> dict:
    """Slice once; the row's measured fields."""
    start_mb = reset_peak_rss()
    with HeapPeak() as heap:
        start = time.perf_counter()
        part = rs.slice_regions(model, plane, max_regions=max_regions)
        seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    heap_kb = None
    if heap.start is not None and heap.peak is not None:
        heap_kb = round(1024 * (heap.peak - heap.start) / part.n_regions, 3)
    return {"regions": part.n_regions, "seconds": round(seconds, 3),
            "us_per_region": round(1e6 * seconds / part.n_regions, 2),
            "peak_rss_mb": round(peak, 1),
            "kb_per_region": round(1024 * (peak - start_mb) / part.n_regions, 3),
            "heap_kb_per_region": heap_kb,
            "patterns_b_per_region": round(part.patterns.nbytes / part.n_regions, 1),
            "stages": part.timings}


def working_heap(row: dict) -> float:
    """A row's warm heap kB per region beyond the patterns its partition holds (a CNN's regions
    differ in more neurons than an MLP's, so the result itself is larger per region)."""
    return row["warm_heap_kb_per_region"] - row["patterns_b_per_region"] / 1024


def cold_and_warm(model: torch.nn.Module, plane: rs.Plane, max_regions: int) -> dict:
    """Slice twice (cold, then warm); the cold row with the warm fields added."""
    row = run(model, plane, max_regions)
    warm = run(model, plane, max_regions)
    row["warm_seconds"], row["warm_us_per_region"] = warm["seconds"], warm["us_per_region"]
    row["warm_peak_rss_mb"], row["warm_kb_per_region"] = warm["peak_rss_mb"], warm["kb_per_region"]
    row["warm_heap_kb_per_region"] = warm["heap_kb_per_region"]
    return row


def square(plane: rs.Plane, scale: float) -> rs.Plane:
    """The plane's square domain shrunk by `scale` about its origin."""
    half = scale * plane.extent[0][1]
    return rs.Plane(plane.origin, plane.basis, ((-half, half), (-half, half)))


def matched_mlp(dense: torch.nn.Module, plane: rs.Plane, regions: int, max_regions: int) -> dict:
    """The MLP (warm) on the square whose region count is closest to `regions`: the scale is
    corrected by the square root of the count ratio up to 4 times (a slice's count grows
    about with its area; beyond the data the MLP's stops growing, so very large counts are
    not reached and the closest one is kept)."""
    scale, best = 0.1, None
    for _ in range(4):
        row = cold_and_warm(dense, square(plane, scale), max_regions)
        row["scale"] = scale
        if best is None or abs(np.log(row["regions"] / regions)) < abs(np.log(best["regions"] / regions)):
            best = row
        if abs(row["regions"] / regions - 1.0) < 0.15:
            break
        scale = float(np.clip(scale * np.sqrt(regions / row["regions"]), 1e-3, 4.0))
    assert best is not None
    return best


def unrolled_conv(conv: torch.nn.Conv2d, shape_in: tuple[int, int, int]
                  ) -> tuple[torch.nn.Linear, tuple[int, ...]]:
    """`conv` as the dense Linear on its flattened input (its exact matrix, float64) and its
    output shape: column k is the conv of the k-th unit input minus the conv of zero."""
    n = int(np.prod(shape_in))
    with torch.no_grad():
        weight, bias = conv.weight.double(), None if conv.bias is None else conv.bias.double()
        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, weight, bias, conv.stride, conv.padding,
                                              conv.dilation, conv.groups)
        zero = run(torch.zeros(1, *shape_in, dtype=torch.float64))
        columns = run(torch.eye(n, dtype=torch.float64).reshape(n, *shape_in)) - zero
    linear = torch.nn.Linear(n, zero.numel()).double()
    linear.weight.data, linear.bias.data = columns.reshape(n, -1).T.contiguous(), zero.reshape(-1)
    return linear, tuple(zero.shape[1:])


def dense_lenet(model: LeNet) -> torch.nn.Module:
    """zoo.LeNet's dense equivalent (float64): each conv as its unrolled Linear, the same
    ReLUs and max-pools on the unflattened outputs."""
    conv1, conv2, head = model[0], model[3], model[7]
    linear1, shape1 = unrolled_conv(conv1, (conv1.in_channels, 28, 28))
    linear2, shape2 = unrolled_conv(conv2, (conv2.in_channels, shape1[1] // 2, shape1[2] // 2))
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), linear1, nn.Unflatten(1, shape1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), linear2, nn.Unflatten(1, shape2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), copy.deepcopy(head).double(), nn.ReLU()).eval()


def trained_cnn(data: str | None) -> torch.nn.Module:
    """SmallCNN after one supervised epoch (batch 256, Adam 1e-3, seed 0)."""
    from reluscope.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainConfig(objective="supervised", backbone="cnn", epochs=1, seed=0), tmp,
                       data_dir=data, quiet=True)
    return result.objective.backbone.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--trained", action="store_true", help="also the CNN after one epoch")
    parser.add_argument("--lenet", action="store_true", help="also zoo.LeNet (max-pooling)")
    parser.add_argument("--lenet-scales", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--max-regions", type=int, default=2_000_000)
    parser.add_argument("--data", default=None, help="data directory (default: $RELUSCOPE_DATA)")
    args = parser.parse_args()
    images, _ = load_idx_images("mnist", "test", args.data)
    x = torch.from_numpy(images).double()[:, None]
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    flat = rs.Plane(plane.origin.reshape(28, 28), plane.basis.reshape(2, 28, 28), plane.extent)
    dense = mlp(256)
    reference = {}
    scales = {1.0, *args.scales, *(args.lenet_scales if args.lenet else [])}
    for scale in sorted(scales, reverse=True):
        reference[scale] = cold_and_warm(dense, square(flat, scale), args.max_regions)
        print(json.dumps({"bench": "cnn_slice", "model": "mlp 784-256x3", "scale": scale,
                          **reference[scale], "machine": machine()}), flush=True)
    full = reference[1.0]["warm_us_per_region"]
    torch.manual_seed(0)
    models = {"SmallCNN untrained": SmallCNN().eval()}
    if args.trained:
        models["SmallCNN 1 epoch"] = trained_cnn(args.data)
    cases = [(name, model, args.scales) for name, model in models.items()]
    equivalents = {}
    wide: dict | None = None
    if args.lenet:
        torch.manual_seed(0)
        lenet = LeNet().eval()
        cases.append(("LeNet untrained (max-pool)", lenet, args.lenet_scales))
        equivalents["LeNet untrained (max-pool)"] = dense_lenet(lenet)
    for name, model, scales in cases:
        for scale in scales:
            try:
                row = cold_and_warm(model, square(plane, scale), args.max_regions)
            except rs.TooManyRegionsError as exc:
                row = {"refused": str(exc).split(";")[0]}
            if name in equivalents and "us_per_region" in row:
                # the same network written as an MLP (unrolled convs): a CNN must not be slower
                same = cold_and_warm(equivalents[name], square(plane, scale), args.max_regions)
                row["dense_equivalent"] = {k: same[k] for k in ("regions", "warm_us_per_region",
                                                                "warm_kb_per_region")}
                row["warm_vs_dense_equivalent"] = round(row["warm_us_per_region"]
                                                        / same["warm_us_per_region"], 2)
            if "us_per_region" in row:
                row["warm_vs_mlp"] = round(row["warm_us_per_region"] / full, 2)
                if scale in reference:
                    same = reference[scale]["warm_us_per_region"]
                    row["warm_vs_mlp_square"] = round(row["warm_us_per_region"] / same, 2)
                matched = matched_mlp(dense, flat, row["regions"], args.max_regions)
                matched["model"] = "mlp 784-256x3"
                if matched["regions"] < row["regions"] / 2:
                    # past the 256-wide MLP's largest slice: the 1024-wide one's whole plane
                    # (1.8*10^6 regions) may be closer; measured once
                    if wide is None:
                        wide = cold_and_warm(mlp(1024), flat, args.max_regions)
                        wide.update(scale=1.0, model="mlp 784-1024x3")
                    if abs(np.log(wide["regions"] / row["regions"])) \
                            < abs(np.log(matched["regions"] / row["regions"])):
                        matched = wide
                row["mlp_matched"] = {k: matched[k] for k in ("model", "scale", "regions",
                                                              "warm_us_per_region", "warm_kb_per_region",
                                                              "warm_heap_kb_per_region",
                                                              "patterns_b_per_region")}
                row["warm_vs_mlp_matched"] = round(row["warm_us_per_region"]
                                                   / matched["warm_us_per_region"], 2)
                row["warm_memory_vs_mlp_matched"] = round(row["warm_kb_per_region"]
                                                          / matched["warm_kb_per_region"], 2)
                if row["warm_heap_kb_per_region"] and matched["warm_heap_kb_per_region"]:
                    row["warm_heap_vs_mlp_matched"] = round(row["warm_heap_kb_per_region"]
                                                            / matched["warm_heap_kb_per_region"], 2)
                    row["warm_working_heap_vs_mlp_matched"] = round(
                        working_heap(row) / working_heap(matched), 2)
            print(json.dumps({"bench": "cnn_slice", "model": name, "scale": scale, **row,
                              "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
