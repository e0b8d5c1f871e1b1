"""The exact 2D engine: linear regions of a network on a plane.

Algorithm (one pass per ReLU site, in forward order; ``engine``)
----------------------------------------------------------------
The partition by sites ``0..l-1`` is refined by site ``l``. On each current face
``R`` the pre-activations of site ``l`` are affine, so each neuron that takes both
signs on R cuts it along a straight chord.

1. *Chords*, found one of three ways, chosen per site:

   * **vertex values** (``values``, kernels in ``vertex_values``), when the (vertices x
     neurons) matrix fits ``values_max_entries``: the network is continuous, so site ``l``
     has one value per vertex, whichever face it is seen from -- canonical by
     construction. A neuron cuts R iff R's vertex values take both signs; its affine map
     on R is a least-squares fit to those values, whose residual bounds its error over R.
   * **walk** (``face_maps``, kernel in ``walk``), for a site whose input is an affine
     *link* of a previous site of at least ``walk_min_width`` neurons: a compiled
     depth-first walk over the faces carries one exact affine map, updated by a rank-1
     term across each shared edge (``adjacency`` lists them), re-anchored to an exactly
     computed map every ``walk_anchor_steps`` steps.
   * **face maps** (``face_maps``), for the rest: exact affine maps per face from a masked
     forward-mode pass (any architecture), or through the link by rank-1 updates from a
     sibling face.

   After a walk or face maps, neurons near zero on a face get *canonical* values at its
   vertices (each (vertex, neuron) value computed by one face only; ``pairs``).

2. *Edge crossings* (``crossings``): where a chord crosses an edge of the current
   partition the new vertex is computed once per (edge, neuron) from the canonical end
   values and inserted into the rings of both faces sharing the edge, in the same order.
3. *Cutting* (``cutting``): faces with at least ``arrange_min_chords`` chords (the first
   site's single face has one per neuron) are cut by all of them at once, as an
   arrangement of segments built from ring order alone (``arrangement``). The others --
   and any face whose arrangement is inconsistent -- are cut in rounds (``split``):
   round ``j`` cuts every piece of a face by its ``j``-th chord; signs at vertices on
   the face's boundary are decided combinatorially (by their order along the edge,
   ``vertices.VertexKind``), so neighbouring faces stay consistent, and only vertices
   created inside the face use its affine map.

Tolerances
----------
Every tolerance and threshold is a field of :class:`~reluscope.EngineOptions`. A vertex
within ``snap_rtol * diameter`` (plane units, ``diameter`` = diagonal of the domain's
bounding box) of a neuron's zero line is treated as lying on it, and chord crossings
closer than that along a chord are one vertex. Regions thinner than that are therefore
not created (the two cutting methods may differ by such slivers). Pieces with a sign
pattern that cannot be a single straight cut (possible only at that scale) are left whole
and counted in ``Partition2D.n_degenerate``.
"""

from __future__ import annotations

import time

from torch import nn

from reluscope._memory import reuse_freed_memory
from reluscope._validation import check_int, describe, message
from reluscope.errors import InputTypeError
from reluscope.geometry.plane import Plane
from reluscope.nets.plane_network import Network
from reluscope.regions.merge import merge_pool_faces
from reluscope.regions.options import EngineOptions
from reluscope.regions.partition2d import Partition2D, build_partition
from reluscope.regions.slice2d.engine import Engine

#: Default memory guard of slice_regions (the 784-1024-1024-1024 benchmark MLP has ~1.8M).
MAX_REGIONS = 5_000_000

__all__ = ["MAX_REGIONS", "slice_regions"]


def slice_regions(model: nn.Module, plane: Plane, *, max_regions: int = MAX_REGIONS,
                  options: EngineOptions | None = None) -> Partition2D:
    """Exact partition of a plane's domain into the linear regions of `model`.

    A linear region is a maximal connected set of points with one activation pattern
    over all ReLU/LeakyReLU units; on it the network is affine. Regions are convex
    polygons and tile the domain.

    Parameters
    ----------
    model : nn.Module
        Any piecewise-linear network (ReLU and the units of :mod:`reluscope.nets.recorder`,
        max-pooling included): MLPs, CNNs (conv, pooling, flatten), BatchNorm in eval
        mode, residual additions. It is not
        modified (a float64 copy of its parameters is used). If its parameters are on a
        GPU, the forward passes run there.
    plane : Plane
        The slice and its convex domain.
    max_regions : int, optional
        Stop with :class:`~reluscope.TooManyRegionsError` once the partition has more
        regions than this (a memory guard: wide convolutional layers on a large domain
        can have tens of millions of regions).
    options : EngineOptions, optional
        The engine's tolerances and thresholds (see :class:`EngineOptions`); the default
        suits networks from 2 to thousands of neurons per layer.

    Returns
    -------
    Partition2D
        Vertices, counter-clockwise face rings, edges with the faces on either side and
        the (site, neuron) that created them, and bit-packed activation patterns.

    Raises
    ------
    UnsupportedModelError
        The model uses an operation that is not piecewise affine with ReLU breakpoints,
        or a module in training mode.
    InputTypeError, InputValueError
        `model`, `plane` or `max_regions` is not usable.
    TooManyRegionsError
        The partition exceeds `max_regions`.

    Examples
    --------
    >>> import torch, reluscope as rs
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> plane = rs.Plane(torch.zeros(2), torch.eye(2), ((-1, 1), (-1, 1)))
    >>> part = rs.slice_regions(net, plane)
    >>> part.n_regions >= 1
    True
    """
    clock = time.perf_counter()
    check_int(max_regions, "`max_regions` of slice_regions", example="max_regions=10_000_000")
    if options is None:
        options = EngineOptions()
    elif not isinstance(options, EngineOptions):
        raise InputTypeError(message("`options` of slice_regions", "an EngineOptions", describe(options),
                                     "Pass rs.EngineOptions(...) or leave it out."))
    net = Network(model, plane, where="slice_regions", dense_fraction=options.link_dense_fraction)
    engine = Engine(net, plane, options, int(max_regions))
    engine.tick("setup", clock)
    with reuse_freed_memory():
        faces = engine.run()
        clock = time.perf_counter()
        timings, label_offset = engine.timings, engine.label_offset
        degenerate, xy = engine.cutter.n_degenerate, engine.vertices.xy
        # the walk's state (chord tables, vertex buffers) goes before the assembly allocates:
        # assembling a large partition is the slicer's peak memory
        del engine
        part = build_partition(plane, net.sites, xy, faces.ptr, faces.vid, faces.lab,
                               faces.patterns, label_offset, degenerate, options.snap_rtol)
        del faces, xy
        part = merge_pool_faces(part)  # a max-pool's stages over-cut (reluscope.regions.pools)
    timings["assembly"] = time.perf_counter() - clock
    part.timings.update({k: round(v, 4) for k, v in timings.items()})
    return part
