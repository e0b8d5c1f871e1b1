"""What is measured at one checkpoint: slices, paths, local complexity, quality, collapse."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reluscope import metrics
from reluscope._validation import message
from reluscope.data import load_idx_images
from reluscope.errors import InputValueError, TooManyRegionsError
from reluscope.evaluate import representation_quality
from reluscope.evaluate.finetune import FinetuneOptions, finetune_accuracy, fraction_key
from reluscope.evaluate.quality import load_split
from reluscope.evaluate.robustness import robust_accuracy
from reluscope.experiments.config import Analysis
from reluscope.experiments.metric_names import NETWORK_PREFIXES
from reluscope.geometry import Path as InputPath
from reluscope.geometry import Plane, class_pairs
from reluscope.nets.sites import count_sites
from reluscope.regions import Partition1D, path_regions, slice_regions
from reluscope.train.loop import TrainConfig, noisy_labels
from reluscope.train.objectives import Objective

#: Summary metrics of a slice kept in the results table (means over the planes).
SLICE_METRICS = ("n_regions", "region_density", "area_mean", "area_median", "area_gini", "area_entropy",
                 "eccentricity_mean", "eccentricity_median", "isoperimetric_mean", "vertices_mean",
                 "boundary_density", "anchor_area_mean", "anchor_eccentricity_mean",
                 "anchor_boundary_distance_mean", "anchor_regions_within_mean", "sc_vol_m", "sc_ecc_m",
                 "decision_density", "decision_regions")
#: Per-layer summary metrics kept too (``boundary_density_site{s}``, ``regions_through_site{s}``).
LAYER_METRICS = ("boundary_density_site", "regions_through_site")


@dataclass
class Probes:
    """The fixed inputs of a dataset's analysis (chosen once per experiment, by seed)."""

    triplets: list[list[int]]
    same_class: list[bool]
    pairs: list[list[int]]
    pair_same: list[bool]
    test_x: torch.Tensor
    test_y: torch.Tensor
    #: Random frames of cross-polytope local complexity, by (points, directions): the same
    #: at every checkpoint (seed 0), so drawn once per run.
    frames: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def lc_frames(self, n_points: int, n_directions: int) -> torch.Tensor:
        """Orthonormal frames at the first `n_points` test images, (N, P, *image_shape)
        float64: those ``cross_polytope_lc`` draws from a generator seeded 0."""
        key = (n_points, n_directions)
        if key not in self.frames:
            shape = tuple(self.test_x.shape[1:])
            self.frames[key] = metrics.random_frames(min(n_points, len(self.test_x)), shape, n_directions,
                                                     torch.Generator().manual_seed(0))
        return self.frames[key]

    def planes(self, margin: float, scale: float = 1.0) -> list[Plane]:
        """Planes through the triplets' test images, their squares shrunk by `scale` about
        the centroid (1: ``Plane.through``'s whole square)."""
        x = self.test_x.double()
        planes = [Plane.through(x[i], x[j], x[k], margin=margin) for i, j, k in self.triplets]
        if scale == 1.0:
            return planes
        return [Plane(p.origin, p.basis, tuple((scale * lo, scale * hi) for lo, hi in p.extent))  # type: ignore[arg-type]
                for p in planes]


def choose_probes(dataset: str, analysis: Analysis, data_dir: str | Path | None,
                  stored: dict[str, Any] | None) -> tuple[Probes, dict[str, Any]]:
    """The dataset's triplets (half of one class, half mixed) and pairs (half same class).

    `stored` (from an earlier invocation) is reused as is, so every run and rerun of an
    experiment looks at the same images. Returns the probes and their JSON form.
    """
    images, labels = load_idx_images(dataset, "test", data_dir, quiet=True)
    if stored is None:
        rng = np.random.default_rng(analysis.plane_seed)
        # classes with three test images (MNIST's ten: the same draws as when this was range(10))
        present = np.flatnonzero(np.bincount(labels) >= 3)
        if len(present) < 3:
            raise InputValueError(message(f"the test split of {dataset!r}",
                                          "three classes of 3+ images each", f"{len(present)} such classes",
                                          "Use a test split with more classes."))
        triplets, same = [], []
        for k in range(analysis.planes):
            if k % 2 == 0:  # one class
                cls = int(present[int(rng.integers(0, len(present)))])
                pool = np.nonzero(labels == cls)[0]
                triplets.append(sorted(int(i) for i in rng.choice(pool, 3, replace=False)))
            else:  # three different classes
                classes = present[rng.choice(len(present), 3, replace=False)]
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


#: Per-plane metrics kept in the results table as ``plane{k}.<name>`` (for per-plane log
#: ratios and plane-level resampling).
PLANE_METRICS = ("n_regions", "region_density", "boundary_density", "area_median", "eccentricity_mean")



def slice_metrics(network: torch.nn.Module, probes: Probes, analysis: Analysis, *, prefix: str = "",
                  keep: Path | None = None, reuse: list[Any] | None = None,
                  classifier: torch.nn.Module | None = None, n_planes: int | None = None
                  ) -> tuple[dict[str, float], list[Any]]:
    """Exact slices of `network` on the first `n_planes` planes (default all), as
    ``{prefix}slice.*`` and ``{prefix}plane{k}.*``.

    ``slice.<m>`` is the mean over the planes that fitted the region budget of each
    summary metric; ``slice.log_density_mean`` the mean of log(regions per unit area), i.e.
    the log of the geometric mean density, which no single dense plane dominates.
    `reuse` gives partitions already computed for this network's regions (a head without
    breakpoints does not change them); `classifier` adds the decision boundary. Returns the
    metrics and the partitions (None where the budget was exceeded).
    """
    out: dict[str, float] = {}
    per_plane: list[dict[str, float]] = []
    parts: list[Any] = []
    failed = 0
    for k, plane in enumerate(probes.planes(analysis.plane_margin, analysis.plane_scale)[:n_planes]):
        part = reuse[k] if reuse is not None else None
        if reuse is None:
            try:
                part = slice_regions(network, plane, max_regions=analysis.max_regions)
            except TooManyRegionsError:
                part = None
        parts.append(part)
        if part is None:
            failed += 1
            continue
        anchors = plane.coordinates(probes.test_x[probes.triplets[k]].double()).cpu().numpy()
        summary = metrics.summary(part, anchors=anchors, model=classifier)
        per_plane.append(summary)
        for name in PLANE_METRICS:
            out[f"{prefix}plane{k}.{name}"] = summary[name]
        if keep is not None and k < analysis.keep_partitions and reuse is None:
            part.save(keep / f"{prefix}plane{k}.npz")
    names = sorted({n for p in per_plane for n in p if n in SLICE_METRICS or n.startswith(LAYER_METRICS)})
    for name in names:
        values = [p[name] for p in per_plane if np.isfinite(p.get(name, np.nan))]
        if values:
            out[f"{prefix}slice.{name}"] = float(np.mean(values))
    if per_plane:
        out[f"{prefix}slice.log_density_mean"] = float(np.mean([np.log(p["region_density"])
                                                                for p in per_plane]))
    out[f"{prefix}slice.failed_planes"] = float(failed)
    return out, parts


def path_partition(network: torch.nn.Module, probes: Probes) -> Partition1D | None:
    """Exact regions of `network` along the segments between the probe pairs (None: no pairs)."""
    if not probes.pairs:
        return None
    x = probes.test_x.double()
    return path_regions(network, [InputPath.segment(x[i], x[j]) for i, j in probes.pairs])


def through_affine_head(part: Partition1D, head: torch.nn.Module) -> Partition1D:
    """The backbone's path partition as that of backbone + `head`, for a head without
    breakpoints: the pieces are the same, and the outputs at their ends are the head
    (affine) applied to the backbone's, in float64."""
    head64 = copy.deepcopy(head).double().eval()  # the objective's head is left as it is
    with torch.no_grad():
        # flattened per piece, as path_regions records a network's output
        start = head64(torch.from_numpy(part.output_start)).reshape(part.n_pieces, -1).numpy()
        end = head64(torch.from_numpy(part.output_end)).reshape(part.n_pieces, -1).numpy()
    return dataclasses.replace(part, output_start=start, output_end=end, timings={})


def head_is_affine(head: torch.nn.Module, features: torch.Tensor) -> bool:
    """Whether `head` applies no piecewise-linear unit to `features` (B, d) (a forward pass is
    recorded, so functional ReLUs count too): it then adds no region boundary."""
    return count_sites(head, features) == 0


def path_metrics(network: torch.nn.Module, probes: Probes, *, prefix: str = "",
                 part: Partition1D | None = None) -> dict[str, float]:
    """Exact regions along the segments between the probe pairs, as ``{prefix}path*.``
    (`part`: their partition if already computed)."""
    out: dict[str, float] = {}
    found = part if part is not None else path_partition(network, probes)
    if found is None:  # no pairs
        return out
    per_path = metrics.path_metrics(found)
    same = np.array(probes.pair_same)
    # exact total variation of the outputs per unit length (Patel & Montufar's quantity on paths)
    per_path["total_variation_density"] = per_path["total_variation"] / per_path["length"].reshape(
        (-1,) + (1,) * (per_path["total_variation"].ndim - 1))
    for key in ("n_regions", "boundary_density", "region_length_mean", "mean_abs_deviation",
                "total_variation_density"):
        out[f"{prefix}path.{key}"] = float(np.mean(per_path[key]))
        if same.any():
            out[f"{prefix}path_same.{key}"] = float(np.mean(per_path[key][same]))
        if (~same).any():
            out[f"{prefix}path_diff.{key}"] = float(np.mean(per_path[key][~same]))
    return out


def cross_polytope(network: torch.nn.Module, probes: Probes, analysis: Analysis) -> metrics.LocalComplexity:
    """Cross-polytope local complexity of `network` at the first ``analysis.lc_points`` test images."""
    points = probes.test_x[: analysis.lc_points].double()
    return metrics.cross_polytope_lc(network, points, analysis.lc_radius,
                                     frames=probes.lc_frames(analysis.lc_points, analysis.lc_directions))


def backbone_sites(objective: Objective, probes: Probes) -> int:
    """Number of piecewise-linear sites of the backbone (the first sites of the full network)."""
    return count_sites(objective.backbone, probes.test_x[:1])


def shared_cross_polytope(objective: Objective, probes: Probes, analysis: Analysis
                          ) -> dict[str, metrics.LocalComplexity]:
    """Cross-polytope local complexity of the backbone and the full network from one pass.

    The full network (backbone, then head) has the backbone's sites first, with the same
    pre-activations at the same vertices, so the backbone's counts are its first columns.
    Returns ``{"backbone": ..., "full": ...}``, or ``{}`` unless ``analysis.networks`` has
    both and ``analysis.lc_points`` is set.
    """
    if not ({"backbone", "full"} <= set(analysis.networks) and analysis.lc_points):
        return {}
    full = cross_polytope(objective.trained_network(), probes, analysis)
    return {"full": full, "backbone": full.first_sites(backbone_sites(objective, probes))}


def local_complexity(network: torch.nn.Module, probes: Probes, analysis: Analysis, *,
                     prefix: str = "", cross: metrics.LocalComplexity | None = None) -> dict[str, float]:
    """Local complexity at the first ``analysis.lc_points`` test images: cross-polytope
    (``lc.*``; `cross` if already computed), and the ball and smooth estimators of
    ``analysis.lc_estimators`` (``lc_ball.*``, ``lc_smooth.*``, radius / sigma
    ``analysis.lc_epsilon``)."""
    if not analysis.lc_points:
        return {}
    points = probes.test_x[: analysis.lc_points].double()
    lc = cross_polytope(network, probes, analysis) if cross is None else cross
    out = {prefix + k.replace("lc_cross_polytope_", "lc."): v for k, v in lc.summary().items()}
    for name in analysis.lc_estimators:
        if name == "cross_polytope":
            continue
        estimate = metrics.ball_lc if name == "ball" else metrics.smooth_lc
        found = estimate(network, points, analysis.lc_epsilon, probes=analysis.lc_probes,
                         generator=torch.Generator().manual_seed(0))
        out.update({prefix + k: v for k, v in found.summary(prefix=f"lc_{name}.").items()})
    return out


def finetune_metrics(objective: Objective, dataset: str, analysis: Analysis,
                     data_dir: str | Path | None) -> dict[str, float]:
    """``finetune{percent}.accuracy`` (and ``.train_accuracy``) for each label fraction."""
    train_x, train_y = load_split(dataset, "train", data_dir, None)
    test_x, test_y = load_split(dataset, "test", data_dir, analysis.probe_test)
    options = FinetuneOptions(steps=analysis.finetune_steps)
    out: dict[str, float] = {}
    for fraction in analysis.finetune_fractions:
        found = finetune_accuracy(objective.backbone, train_x, train_y, test_x, test_y, fraction, options)
        key = f"finetune{fraction_key(fraction)}"
        out[f"{key}.accuracy"] = found["accuracy"]
        out[f"{key}.train_accuracy"] = found["train_accuracy"]
    return out


@torch.no_grad()
def classifier_metrics(objective: Objective, train_config: TrainConfig, data_dir: str | Path | None,
                       test_limit: int | None = None, analysis: Analysis | None = None) -> dict[str, float]:
    """Accuracy of a supervised objective's own classifier (backbone + its linear head).

    ``classifier.test_accuracy`` on the test images; ``classifier.train_accuracy`` on the
    labels it was trained on (the training subset, with its label noise: 1.0 means it
    interpolates them), and ``classifier.clean_train_accuracy`` on the true labels there;
    with ``analysis.robust_points``, PGD accuracy on that many test images
    (``robust.linf_accuracy``, ``robust.l2_accuracy``; :mod:`reluscope.evaluate.robustness`).
    Empty for objectives without a classifier.
    """
    if objective.family != "supervised":
        return {}
    network = objective.trained_network().eval()
    train_x, train_y = load_split(train_config.dataset, "train", data_dir, train_config.subset)
    test_x, test_y = load_split(train_config.dataset, "test", data_dir, test_limit)
    noisy = noisy_labels(train_y, train_config.label_noise, train_config.seed) \
        if train_config.label_noise > 0 else train_y

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([network(x[i: i + 4096]).argmax(1) for i in range(0, len(x), 4096)])

    train_pred = predict(train_x)
    out = {"classifier.test_accuracy": float((predict(test_x) == test_y).double().mean()),
           "classifier.train_accuracy": float((train_pred == noisy).double().mean()),
           "classifier.clean_train_accuracy": float((train_pred == train_y).double().mean())}
    if analysis is not None and analysis.robust_points:
        x, y = test_x[: analysis.robust_points], test_y[: analysis.robust_points]
        with torch.enable_grad():
            for norm, eps in (("linf", analysis.robust_eps_linf), ("l2", analysis.robust_eps_l2)):
                out[f"robust.{norm}_accuracy"] = robust_accuracy(
                    network, x, y, eps, norm=norm, steps=analysis.robust_steps,
                    generator=torch.Generator().manual_seed(0))
    return out


def analyse(objective: Objective, dataset: str, analysis: Analysis, probes: Probes,
            data_dir: str | Path | None, keep: Path | None = None, finetune: bool = False
            ) -> dict[str, float]:
    """Every metric of one checkpoint, as ``{metric: value}``.

    Geometry (float64 engines, eval mode) is measured on each network of
    ``analysis.networks``: the backbone (metrics without prefix) and the backbone with its
    trained head (``full.``: paths and local complexity, and slices on the first
    ``analysis.full_planes`` planes; a head without breakpoints, such as a linear classifier,
    keeps the backbone's regions and path pieces, which are reused, and adds the decision
    boundary). The cross-polytope local complexity of both networks comes from one pass.
    `keep` is a folder where the partitions of the first ``analysis.keep_partitions`` planes
    are saved.
    With `finetune`, the backbone is also fine-tuned at each of
    ``analysis.finetune_fractions`` (``finetune{percent}.accuracy``). ``time.*`` gives the
    seconds of each stage.
    """
    objective.eval()
    out: dict[str, float] = {}
    backbone_parts: list[Any] | None = None
    backbone_paths: Partition1D | None = None
    clock = time.perf_counter()
    shared = shared_cross_polytope(objective, probes, analysis)
    if shared:
        out["time.shared_local_complexity"] = time.perf_counter() - clock
    for name in analysis.networks:
        prefix = NETWORK_PREFIXES[name]
        network = objective.backbone if name == "backbone" else objective.trained_network()
        head = None if name == "backbone" else objective.trained_head()
        with torch.no_grad():
            refines = head is not None and not head_is_affine(head, objective.backbone(probes.test_x[:2]))
        reuse = backbone_parts if head is not None and not refines else None
        # a head with breakpoints refines the backbone's regions ~10x (a 512-wide projector),
        # so the full network is sliced on the first `full_planes` planes only (a linear
        # head keeps the backbone's regions: they are reused, and its decision boundary added)
        n_planes = analysis.full_planes if head is not None else None
        clock = time.perf_counter()
        if n_planes != 0:
            classifier = network if objective.family == "supervised" and head is not None else None
            values, parts = slice_metrics(network, probes, analysis, prefix=prefix, keep=keep, reuse=reuse,
                                          classifier=classifier, n_planes=n_planes)
            out.update(values)
            if name == "backbone":
                backbone_parts = parts
        out[f"time.{prefix}slices"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if head is None or refines or backbone_paths is None:
            part = path_partition(network, probes)
        else:  # an affine head: the backbone's pieces, its outputs mapped through the head
            part = through_affine_head(backbone_paths, head)
        if head is None:
            backbone_paths = part
        out.update(path_metrics(network, probes, prefix=prefix, part=part))
        out[f"time.{prefix}paths"] = time.perf_counter() - clock
        clock = time.perf_counter()
        out.update(local_complexity(network, probes, analysis, prefix=prefix, cross=shared.get(name)))
        out[f"time.{prefix}local_complexity"] = time.perf_counter() - clock

    clock = time.perf_counter()
    quality = representation_quality(objective, dataset, data_dir, train_limit=analysis.probe_train,
                                     test_limit=analysis.probe_test, knn_test_limit=analysis.knn_test)
    out.update(quality)
    out["time.quality"] = time.perf_counter() - clock
    if finetune and analysis.finetune_fractions:
        clock = time.perf_counter()
        out.update(finetune_metrics(objective, dataset, analysis, data_dir))
        out["time.finetune"] = time.perf_counter() - clock
    return out
