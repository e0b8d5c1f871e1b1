"""What is measured at one checkpoint: slices, paths, local complexity, quality, collapse."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reluscope import metrics
from reluscope.data import load_idx_images
from reluscope.errors import TooManyRegionsError
from reluscope.evaluate import representation_quality
from reluscope.experiments.config import Analysis
from reluscope.geometry import Path as InputPath
from reluscope.geometry import Plane, class_pairs
from reluscope.regions import path_regions, slice_regions
from reluscope.train.objectives import Objective

#: Summary metrics of a slice kept in the results table (means over the planes).
SLICE_METRICS = ("n_regions", "region_density", "area_mean", "area_median", "area_gini", "area_entropy",
                 "eccentricity_mean", "eccentricity_median", "isoperimetric_mean", "vertices_mean",
                 "boundary_density", "anchor_area_mean", "anchor_eccentricity_mean",
                 "anchor_boundary_distance_mean", "anchor_regions_within_mean", "sc_vol_m", "sc_ecc_m")


@dataclass
class Probes:
    """The fixed inputs of a dataset's analysis (chosen once per experiment, by seed)."""

    triplets: list[list[int]]
    same_class: list[bool]
    pairs: list[list[int]]
    pair_same: list[bool]
    test_x: torch.Tensor
    test_y: torch.Tensor

    def planes(self, margin: float) -> list[Plane]:
        """Planes through the triplets' test images."""
        x = self.test_x.double()
        return [Plane.through(x[i], x[j], x[k], margin=margin) for i, j, k in self.triplets]


def choose_probes(dataset: str, analysis: Analysis, data_dir: str | Path | None,
                  stored: dict[str, Any] | None) -> tuple[Probes, dict[str, Any]]:
    """The dataset's triplets (half of one class, half mixed) and pairs (half same class).

    `stored` (from an earlier invocation) is reused as is, so every run and rerun of an
    experiment looks at the same images. Returns the probes and their JSON form.
    """
    images, labels = load_idx_images(dataset, "test", data_dir, quiet=True)
    if stored is None:
        rng = np.random.default_rng(analysis.plane_seed)
        triplets, same = [], []
        for k in range(analysis.planes):
            if k % 2 == 0:  # one class
                cls = int(rng.integers(0, 10))
                pool = np.nonzero(labels == cls)[0]
                triplets.append(sorted(int(i) for i in rng.choice(pool, 3, replace=False)))
            else:  # three different classes
                classes = rng.choice(10, 3, replace=False)
                triplets.append([int(rng.choice(np.nonzero(labels == c)[0])) for c in classes])
            same.append(k % 2 == 0)
        n_same = analysis.paths // 2
        pairs = np.concatenate([class_pairs(labels, n_same, True, rng),
                                class_pairs(labels, analysis.paths - n_same, False, rng)]).tolist()
        stored = {"triplets": triplets, "same_class": same, "pairs": pairs,
                  "pair_same": [True] * n_same + [False] * (analysis.paths - n_same)}
    probes = Probes(stored["triplets"], stored["same_class"], stored["pairs"], stored["pair_same"],
                    torch.from_numpy(images)[:, None], torch.from_numpy(labels))
    return probes, stored


def analyse(objective: Objective, dataset: str, analysis: Analysis, probes: Probes,
            data_dir: str | Path | None, keep: Path | None = None) -> dict[str, float]:
    """Every metric of one checkpoint, as ``{metric: value}``.

    Geometry is measured on the backbone (eval mode, float64 engines); `keep` is a
    folder where the partitions of the first ``analysis.keep_partitions`` planes are saved.
    """
    backbone = objective.backbone.eval()
    out: dict[str, float] = {}
    clock = time.perf_counter()
    per_plane: list[dict[str, float]] = []
    failed = 0
    for k, plane in enumerate(probes.planes(analysis.plane_margin)):
        try:
            part = slice_regions(backbone, plane, max_regions=analysis.max_regions)
        except TooManyRegionsError:
            failed += 1
            continue
        anchors = plane.coordinates(probes.test_x[probes.triplets[k]].double()).cpu().numpy()
        summary = metrics.summary(part, anchors=anchors)
        per_plane.append(summary)
        out[f"plane{k}.n_regions"] = summary["n_regions"]
        if keep is not None and k < analysis.keep_partitions:
            part.save(keep / f"plane{k}.npz")
    for name in SLICE_METRICS:
        values = [p[name] for p in per_plane if np.isfinite(p.get(name, np.nan))]
        if values:
            out[f"slice.{name}"] = float(np.mean(values))
    out["slice.failed_planes"] = float(failed)
    out["time.slices"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if probes.pairs:
        x = probes.test_x.double()
        segments = [InputPath.segment(x[i], x[j]) for i, j in probes.pairs]
        line = path_regions(backbone, segments)
        per_path = metrics.path_metrics(line)
        same = np.array(probes.pair_same)
        for key in ("n_regions", "boundary_density", "region_length_mean"):
            out[f"path.{key}"] = float(np.mean(per_path[key]))
            if same.any():
                out[f"path_same.{key}"] = float(np.mean(per_path[key][same]))
            if (~same).any():
                out[f"path_diff.{key}"] = float(np.mean(per_path[key][~same]))
        out["path.mean_abs_deviation"] = float(np.mean(per_path["mean_abs_deviation"]))
    out["time.paths"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if analysis.lc_points:
        points = probes.test_x[: analysis.lc_points].double()
        lc = metrics.cross_polytope_lc(backbone, points, analysis.lc_radius, analysis.lc_directions,
                                       generator=torch.Generator().manual_seed(0))
        out.update({k.replace("lc_cross_polytope_", "lc."): v for k, v in lc.summary().items()})
    out["time.local_complexity"] = time.perf_counter() - clock

    clock = time.perf_counter()
    quality = representation_quality(objective, dataset, data_dir, train_limit=analysis.probe_train,
                                     test_limit=analysis.probe_test)
    out.update(quality)
    out["time.quality"] = time.perf_counter() - clock
    return out
