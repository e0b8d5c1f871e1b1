"""Independent certificate of a `Partition2D` (does not reuse the engine's logic).

Checks, each from first principles:

1. areas: every region has positive area and the areas sum to the domain's area;
2. convexity: no reflex corner in any region (linear regions are convex);
3. patterns: a plain forward pass at each region's interior point reproduces the
   recorded activation pattern (entries within rounding of zero are skipped);
4. adjacency: two regions sharing an edge differ in exactly the neuron that created
   the edge -- or, where several neurons have the same zero line, in a set of neurons
   that all vanish at both ends of the edge (checked by a forward pass there); edges
   with one region are on the domain boundary. A max-pool window whose argmax changes
   counts as one neuron, its switching stage (see :mod:`reluscope.regions.pools`);
   patterns from the forward pass are made canonical like the engine's.
5. every region has one state: two faces never share a full pattern (checked on
   max-pool networks, whose engine output is merged).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reluscope._kernels.bits import unpack
from reluscope._kernels.rings import next_slot, ring_ids
from reluscope.nets.plane_network import Network
from reluscope.regions.partition2d import Partition2D, VerificationReport
from reluscope.regions.pools import canonical, has_pools, keep_pool_switches, pool_groups

#: Relative tolerance for the sum of areas and for convexity tests.
AREA_RTOL = 1e-9
#: Pre-activations with |z| below this fraction of the sample's largest |z| are ambiguous.
ZERO_RTOL = 1e-12
#: A neuron counts as switching along an edge when |z| at both of the edge's ends is below
#: this fraction of its site's largest |z| there (the ends are rounded vertices: looser).
ON_EDGE_RTOL = 1e-8
_BATCH = 4096


def _convexity_violations(part: Partition2D) -> int:
    ptr, vid, xy = part.face_offsets, part.face_vertices, part.vertices
    nxt = next_slot(ptr)
    p0 = xy[vid]
    p1 = xy[vid[nxt]]
    p2 = xy[vid[nxt[nxt]]]
    e1 = p1 - p0
    e2 = p2 - p1
    cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    scale = np.hypot(*e1.T) * np.hypot(*e2.T)
    bad = cross < -1e-9 * scale
    return int(np.unique(ring_ids(ptr)[bad]).size)


def _pattern_mismatches(part: Partition2D, net: Network, faces: np.ndarray) -> int:
    points = part.interior_points()[faces]
    bad = np.zeros(len(faces), dtype=bool)
    for start in range(0, len(faces), _BATCH):
        chunk = slice(start, start + _BATCH)
        pre = [t.detach().cpu().numpy() for t in net.plane_preactivations(torch.from_numpy(points[chunk]))]
        clear = []
        for z in pre:
            scale = np.abs(z).max(axis=1, keepdims=True) + 1e-300
            clear.append(np.abs(z) > ZERO_RTOL * scale)
        for group in pool_groups(part.sites):
            # a window is checked when none of its stages is ambiguous; an exact 0 is a
            # tie, which goes to the earlier candidate (the stage is inactive)
            sure = np.logical_and.reduce([clear[i] | (pre[i] == 0.0) for i in group])
            for i in group:
                clear[i] = sure
        observed = canonical(part.sites, [z > 0 for z in pre])
        for site, active in enumerate(observed):
            recorded = unpack(part.patterns.of(site, faces[chunk]), part.sites[site].size)
            bad[chunk] |= ((active != recorded) & clear[site]).any(axis=1)
    return int(bad.sum())


def _nonaffine_regions(part: Partition2D, net: Network, faces: np.ndarray) -> int:
    """Regions where the model's output is not affine: with a, b halfway from the interior
    point to two of the region's vertices (so a, b and their midpoint lie inside), an affine
    output has f((a + b) / 2) = (f(a) + f(b)) / 2. Catches nonlinearities the engines never
    saw (they would make a region's output curved). Tolerance: 1e-7 of the outputs' scale."""
    if not len(faces):
        return 0
    ptr, vid, xy = part.face_offsets, part.face_vertices, part.vertices
    centre = part.interior_points()[faces]
    v0, v1 = xy[vid[ptr[faces]]], xy[vid[ptr[faces] + 1]]
    a, b = centre + 0.5 * (v0 - centre), centre + 0.5 * (v1 - centre)
    coords = torch.from_numpy(np.concatenate([a, b, 0.5 * (a + b)]))
    out = net.forward(net._inputs(coords)).output
    if out is None:
        return 0
    values = out[0].detach().cpu().numpy().reshape(3, len(faces), -1)
    gap = np.abs(values[2] - 0.5 * (values[0] + values[1])).max(axis=1)
    scale = np.abs(values).max(axis=(0, 2)) + 1.0
    return int((gap > 1e-7 * scale).sum())


def _adjacency_mismatches(part: Partition2D, net: Network) -> tuple[int, int, int]:
    """(mismatched, unmatched, coincident) shared edges."""
    inner = part.edge_faces[:, 1] >= 0
    unmatched = int((~inner & (part.edge_site >= 0)).sum())
    left, right = part.edge_faces[inner, 0], part.edge_faces[inner, 1]
    layer, neuron = part.edge_site[inner], part.edge_neuron[inner]
    if has_pools(part.sites):  # one switch per max-pool window (reluscope.regions.pools)
        pair, site, unit = part.patterns.differing([s.size for s in part.sites], left, right)
        real = keep_pool_switches(part.sites, pair, site, unit)
        pair, site, unit = pair[real], site[real], unit[real]
        flips = np.bincount(pair, minlength=len(left))
        recorded = (site == layer[pair]) & (unit == neuron[pair])
        right_bit = np.bincount(pair[recorded], minlength=len(left)) > 0
    else:
        flips = np.zeros(len(left), dtype=np.int64)
        right_bit = np.zeros(len(left), dtype=bool)
        for site_index in range(len(part.sites)):
            flips += part.patterns.flips(site_index, left, right)
            here = np.flatnonzero(layer == site_index)
            right_bit[here] = part.patterns.bits(site_index, left[here], neuron[here]) \
                != part.patterns.bits(site_index, right[here], neuron[here])
    bad = (flips != 1) | ~right_bit | (layer < 0)
    several = np.flatnonzero(bad & (flips > 1) & right_bit & (layer >= 0))
    coincident = np.zeros(len(left), dtype=bool)
    if len(several):
        ends = part.edges[np.flatnonzero(inner)[several]]
        coincident[several] = _all_vanish(part, net, left[several], right[several], ends)
    return int((bad & ~coincident).sum()), unmatched, int(coincident.sum())


def _all_vanish(part: Partition2D, net: Network, left: np.ndarray, right: np.ndarray,
                ends: np.ndarray) -> np.ndarray:
    """For each edge (its two faces, its two end vertices (E, 2)): does every neuron that
    switches between the faces vanish at both ends (it switches along the whole edge)?
    A max-pool window switches at one stage (:func:`keep_pool_switches`)."""
    ok = np.ones(len(left), dtype=bool)
    for start in range(0, len(left), _BATCH):
        chunk = slice(start, start + _BATCH)
        points = part.vertices[ends[chunk].ravel()]  # (2m, 2): both ends of each edge
        pre = net.plane_preactivations(torch.from_numpy(points))
        differs = [unpack(part.patterns.of(s, left[chunk]) ^ part.patterns.of(s, right[chunk]), site.size)
                   for s, site in enumerate(part.sites)]
        # the highest differing stage of a window is its switch: the same operation as
        # making patterns canonical
        differs = list(canonical(part.sites, differs))
        for site, tensor in enumerate(pre):
            z = np.abs(tensor.detach().cpu().numpy()).reshape(-1, 2, tensor.shape[-1])
            scale = z.max(axis=2, keepdims=True) + 1e-300
            on_line = (z <= ON_EDGE_RTOL * scale).all(axis=1)  # (m, size)
            ok[chunk] &= ~(differs[site] & ~on_line).any(axis=1)
    return ok


#: Regions (spread over the checked ones) whose output is tested for affinity.
AFFINE_SAMPLES = 512


def verify(part: Partition2D, model: nn.Module, *, max_regions: int | None = None,
           generator: torch.Generator | None = None) -> VerificationReport:
    """Check a partition against the model it was computed from.

    Parameters
    ----------
    part : Partition2D
    model : nn.Module
        The network the partition was computed from.
    max_regions : int, optional
        Check the patterns of at most this many regions (a random sample drawn with
        `generator`); the geometric and adjacency checks always cover every region.
    generator : torch.Generator, optional

    Returns
    -------
    VerificationReport
    """
    areas = part.areas()
    domain = part.plane.area
    faces = np.arange(part.n_regions)
    if max_regions is not None and max_regions < part.n_regions:
        pick = torch.randperm(part.n_regions, generator=generator)[:max_regions]
        faces = np.sort(pick.numpy())
    net = Network(model, part.plane, where="Partition2D.verify")  # one instrumented copy for every check
    adjacency, unmatched, coincident = _adjacency_mismatches(part, net)
    return VerificationReport(
        area_relative_error=float(abs(areas.sum() - domain) / domain),
        nonpositive_areas=int((areas <= 0).sum()),
        nonconvex_regions=_convexity_violations(part),
        pattern_mismatches=_pattern_mismatches(part, net, faces),
        nonaffine_regions=_nonaffine_regions(part, net, faces[:: max(1, len(faces) // AFFINE_SAMPLES)]),
        checked_regions=len(faces),
        adjacency_mismatches=adjacency,
        unmatched_edges=unmatched,
        coincident_edges=coincident,
        area_rtol=AREA_RTOL,
    )
