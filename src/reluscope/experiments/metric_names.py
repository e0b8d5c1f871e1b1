"""Every metric name of the results table: what it measures, its unit, where it comes from.

The analysis writes these names, the findings pick their candidates from them, and the
report prints their meaning from here: one place defines them. A name is a *pattern*
(``plane{k}.n_regions``, ``lc.site{s}``) optionally prefixed by the network it measures
(no prefix: the backbone; ``full.``: the backbone with its trained head).

``complexity`` says which way is "more complex": +1 when a larger value means more or
denser linear regions (region counts, boundary densities, local complexity), -1 when a
larger value means fewer (mean areas, mean lengths between breakpoints), 0 for geometry
that is a shape rather than an amount (eccentricity, inequality of areas) and for every
non-geometry metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: Which network each prefix of a metric name measures.
NETWORK_PREFIXES = {"backbone": "", "full": "full."}


@dataclass(frozen=True)
class MetricSpec:
    """One metric pattern.

    Attributes
    ----------
    pattern : str
        The name with ``{k}`` (plane index) or ``{s}`` (site index) placeholders.
    meaning : str
    unit : str
    source : str
        The analysis step that writes it: ``slice``, ``path``, ``lc``, ``quality``,
        ``classifier``, ``robust``, ``finetune``, ``train`` or ``time``.
    complexity : int
        +1, -1 or 0 (see the module docstring).
    geometry : bool
        A measure of the network's linear regions (a candidate predictor of quality),
        aggregated over the probes (per-plane copies are not candidates).
    """

    pattern: str
    meaning: str
    unit: str
    source: str
    complexity: int = 0
    geometry: bool = False


def _slice(name: str, meaning: str, unit: str, complexity: int = 0) -> MetricSpec:
    return MetricSpec(f"slice.{name}", f"{meaning} (mean over the planes)", unit, "slice", complexity, True)


def _paths(name: str, meaning: str, unit: str, complexity: int = 0) -> list[MetricSpec]:
    scopes = (("path", "all segments"), ("path_same", "segments within a class"),
              ("path_diff", "segments across classes"))
    return [MetricSpec(f"{scope}.{name}", f"{meaning} ({what}, mean)", unit, "path", complexity, True)
            for scope, what in scopes]


_AREA = "plane units^2"
METRICS: tuple[MetricSpec, ...] = (
    _slice("n_regions", "linear regions in the plane's square", "count", +1),
    _slice("region_density", "linear regions per unit area", "1/area", +1),
    MetricSpec("slice.log_density_mean", "mean over the planes of log(regions per unit area): the log of "
               "the geometric mean density (the pre-registered primary metric)", "log(1/area)", "slice", +1,
               True),
    _slice("area_mean", "mean region area", _AREA, -1),
    _slice("area_median", "median region area", _AREA, -1),
    _slice("area_gini", "Gini coefficient of the region areas (0: equal)", "ratio"),
    _slice("area_entropy", "entropy of the area distribution", "nats", +1),
    _slice("eccentricity_mean", "mean region eccentricity (0 round, near 1 sliver)", "ratio"),
    _slice("eccentricity_median", "median region eccentricity", "ratio"),
    _slice("isoperimetric_mean", "mean isoperimetric quotient 4 pi A / P^2 (1: a disc)", "ratio"),
    _slice("vertices_mean", "mean vertices per region", "count", +1),
    _slice("boundary_density", "region boundary length per unit area", "1/length", +1),
    _slice("boundary_density_site{s}", "boundary length per unit area made by site s", "1/length", +1),
    _slice("regions_through_site{s}", "regions of the partition by sites 0..s", "count", +1),
    _slice("anchor_area_mean", "area of the region holding each image of the plane", _AREA, -1),
    _slice("anchor_eccentricity_mean", "eccentricity of the region holding each image", "ratio"),
    _slice("anchor_boundary_distance_mean", "distance from each image to its region's boundary",
           "plane units", -1),
    _slice("anchor_regions_within_mean", "regions within a radius of each image", "count", +1),
    _slice("sc_vol_m", "SplineCam's mean region volume", _AREA, -1),
    _slice("sc_ecc_m", "SplineCam's eccentricity (largest / smallest vertex distance)", "ratio"),
    _slice("decision_density", "decision boundary length per unit area", "1/length", +1),
    _slice("decision_regions", "regions the decision boundary crosses", "count", +1),
    MetricSpec("slice.failed_planes", "planes over the region budget (left out of the means)", "count",
               "slice"),
    MetricSpec("plane{k}.n_regions", "linear regions in plane k", "count", "slice", +1),
    MetricSpec("plane{k}.region_density", "regions per unit area in plane k", "1/area", "slice", +1),
    MetricSpec("plane{k}.boundary_density", "boundary length per unit area in plane k", "1/length", "slice",
               +1),
    MetricSpec("plane{k}.area_median", "median region area in plane k", _AREA, "slice", -1),
    MetricSpec("plane{k}.eccentricity_mean", "mean region eccentricity in plane k", "ratio", "slice"),
    *_paths("n_regions", "linear regions along the segment between two test images", "count", +1),
    *_paths("boundary_density", "region boundaries per unit length", "1/length", +1),
    *_paths("region_length_mean", "mean length between breakpoints", "input units", -1),
    *_paths("mean_abs_deviation", "mean |f - affine interpolation| along the segment (Gamba et al.)",
            "output units", +1),
    *_paths("total_variation_density", "total variation of the output per unit length", "output/length", +1),
    MetricSpec("lc.total", "neurons whose boundary passes through a cross-polytope around a test image "
               "(local complexity)", "count", "lc", +1, True),
    MetricSpec("lc.site{s}", "local complexity of site s", "count", "lc", +1, True),
    MetricSpec("lc_ball.total", "neurons whose boundary passes within an L2 ball around a test image",
               "count", "lc", +1, True),
    MetricSpec("lc_ball.site{s}", "ball local complexity of site s", "count", "lc", +1, True),
    MetricSpec("lc_ball.gradient_norm", "mean gradient norm of the output in the ball", "output/input",
               "lc", +1, True),
    MetricSpec("lc_smooth.total", "Gaussian-smoothed local complexity around a test image", "count", "lc",
               +1, True),
    MetricSpec("lc_smooth.site{s}", "smoothed local complexity of site s", "count", "lc", +1, True),
    MetricSpec("lc_smooth.gradient_norm", "mean gradient norm under the smoothing", "output/input", "lc", +1,
               True),
    MetricSpec("probe_test_accuracy", "linear probe accuracy on frozen features (test split)", "fraction",
               "quality"),
    MetricSpec("probe_train_accuracy", "linear probe accuracy on its training features", "fraction",
               "quality"),
    MetricSpec("probe_test_loss", "linear probe cross-entropy (test split)", "nats", "quality"),
    MetricSpec("knn_accuracy", "weighted kNN accuracy (cosine, k=20)", "fraction", "quality"),
    *(MetricSpec(f"{space}_{name}", f"{meaning} of the {space}s", unit, "quality")
      for space in ("feature", "embedding")
      for name, meaning, unit in (("std", "normalised std (about 1 healthy, 0 collapsed)", "ratio"),
                                  ("rankme", "effective rank (RankMe)", "rank"),
                                  ("alpha", "power-law decay of the spectrum (alpha-ReQ)", "exponent"),
                                  ("sv_top1", "share of the top singular value", "fraction"))),
    MetricSpec("dino_teacher_entropy", "entropy of DINO's teacher output", "nats", "quality"),
    MetricSpec("dino_teacher_student_kl", "KL from DINO's teacher to its student", "nats", "quality"),
    MetricSpec("classifier.test_accuracy", "the trained classifier's test accuracy", "fraction",
               "classifier"),
    MetricSpec("classifier.train_accuracy", "its accuracy on the (possibly noisy) training labels",
               "fraction", "classifier"),
    MetricSpec("classifier.clean_train_accuracy", "its accuracy on the clean training labels", "fraction",
               "classifier"),
    MetricSpec("robust.{norm}_accuracy", "accuracy under a PGD attack of the given norm", "fraction",
               "robust"),
    MetricSpec("finetune{pct}.accuracy", "test accuracy after fine-tuning backbone + linear head on pct% "
               "of the labels", "fraction", "finetune"),
    MetricSpec("finetune{pct}.train_accuracy", "its accuracy on those labelled images", "fraction",
               "finetune"),
    MetricSpec("train.{log}", "a training log of the objective at the checkpoint's step", "-", "train"),
    MetricSpec("time.{stage}", "seconds spent in an analysis stage", "s", "time"),
)

_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[re.Pattern[str], MetricSpec], ...]:
    out = []
    for spec in METRICS:
        # {k} and {s} are indices; other placeholders (train.{log}, time.{stage}) any name
        regex = _PLACEHOLDER.sub(lambda m: r"\d+" if m.group(1) in ("k", "s") else r"[\w.]+",
                                 re.escape(spec.pattern))
        out.append((re.compile(regex + "$"), spec))
    return tuple(out)


def split_network(name: str) -> tuple[str, str]:
    """(network, name without its network prefix): ``full.lc.total`` -> ("full", "lc.total")."""
    for network, prefix in NETWORK_PREFIXES.items():
        if prefix and name.startswith(prefix):
            return network, name[len(prefix):]
    return "backbone", name


def lookup(name: str) -> MetricSpec | None:
    """The spec of a results-table metric name (any network prefix), or None if unknown."""
    _, bare = split_network(name)
    for regex, spec in _compiled():
        if regex.match(bare):
            return spec
    return None


def network_of(name: str) -> str:
    """``"full"`` for metrics of the backbone + head (``full.`` prefix), else ``"backbone"``."""
    return split_network(name)[0]


def is_geometry(name: str) -> bool:
    """A backbone geometry measure aggregated over the probes (a candidate predictor)."""
    spec = lookup(name)
    return spec is not None and spec.geometry and network_of(name) == "backbone"


def unknown(names: list[str] | set[str]) -> list[str]:
    """The names no spec describes (the analysis writes none: tested)."""
    return sorted(n for n in names if lookup(n) is None)
