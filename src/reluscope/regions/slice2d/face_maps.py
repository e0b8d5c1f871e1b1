"""Chords from exact affine maps per face (the engine's second way to find chords).

For a site whose values at the vertices do not fit in memory, or a wide chained site:

* **walk** (``walk``): when the site's input is an affine link of a previous site of at
  least ``walk_min_width`` neurons, a compiled depth-first walk over the faces carries one
  exact affine map, updated by a rank-1 term across each shared edge (re-anchored to an
  exactly computed map every ``walk_anchor_steps`` steps), and screens every neuron on
  every face by a bounding-box test;
* otherwise exact maps per face, in batches: from a masked forward-mode pass (any
  architecture), by propagation through the links, or by rank-1 updates from a sibling
  face (narrow layers).

Neurons whose range over a face's box reaches zero then get *canonical* values at the
face's vertices (each (vertex, neuron) value computed by one face only), and those that
take both signs are the face's chords.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from reluscope._kernels.bits import pack, unpack
from reluscope._kernels.rings import gather_rings, ring_boxes, ring_ids
from reluscope._kernels.sorting import argsort_int, unique_first_inverse
from reluscope.nets.links import Link, SparseColumns
from reluscope.nets.plane_network import Network, at_points
from reluscope.nets.sites import Site
from reluscope.regions.options import EngineOptions
from reluscope.regions.slice2d.adjacency import ChordTable, build_adjacency
from reluscope.regions.slice2d.faces import Faces
from reluscope.regions.slice2d.pairs import Canonical, Pairs, settle_pairs
from reluscope.regions.slice2d.vertices import VertexStore
from reluscope.regions.slice2d.walk import WalkGraph, walk_candidates


class FaceMaps:
    """Per-face affine maps of each site, with what the next site reuses of them.

    State carried from site to site: ``cache`` (the previous site's maps on every face,
    (3, faces, size), when they fit ``cache_entries``), the chords of the last two sites
    (``prev_chords``, ``prev2_chords``, origin form) and the parents of the faces before
    the last cut (``prev_parent``).
    """

    def __init__(self, net: Network, vertices: VertexStore, options: EngineOptions, snap: float,
                 band: float, label_offset: np.ndarray) -> None:
        self.net, self.vertices, self.options = net, vertices, options
        self.snap, self.band, self.label_offset = snap, band, label_offset
        self.cache: torch.Tensor | None = None
        self.prev_chords: ChordTable | None = None
        self.prev2_chords: ChordTable | None = None
        self.prev_parent: np.ndarray | None = None
        #: values this small are max-pool ties (set per stage site by the engine)
        self.tie = 0.0

    def remember(self, site: Site, chords: Pairs) -> None:
        """Keep `site`'s chords (origin form) for the next two sites."""
        self.prev2_chords = self.prev_chords
        self.prev_chords = ChordTable(chords.face * site.size + chords.neuron, chords.origin_form(),
                                      site.size)

    def walkable(self, faces: Faces, site: Site) -> bool:
        """Wide chained site with a previous one: walk the faces with one running map."""
        # not for a max-pool stage: its ties (0 on whole faces) need exact maps, and the
        # walk's running map would give them rounding-sized values of either sign
        return (site.index > 0 and not site.pool_stage and self.net.link(site.index) is not None
                and faces.parent is not None and self.prev_chords is not None
                and self.net.sites[site.index - 1].size >= self.options.walk_min_width)

    def candidate_pairs(self, faces: Faces, site: Site) -> tuple[Pairs, np.ndarray]:
        """Affine maps per face, in batches; keep neurons whose values come near zero.

        Returns the candidate pairs (sorted by face, then neuron) and the base patterns
        (F, ceil(size / 8)) of the neurons positive on the whole face.
        """
        n = site.size
        # reference point of each face's maps: the centre of its bounding box
        box_lo, box_hi = ring_boxes(faces.ptr, faces.vid, self.vertices.xy)
        ref = 0.5 * (box_lo + box_hi)
        half = 0.5 * (box_hi - box_lo) + self.band
        del box_lo, box_hi  # (not held through the walk)
        if self.walkable(faces, site):
            return self._walk_pairs(faces, site, ref, half)
        base = np.zeros((faces.count, (n + 7) // 8), dtype=np.uint8)
        parts: list[Pairs] = []
        keep = site.index + 1 < len(self.net.sites) and faces.count * 3 * n <= self.options.cache_entries
        cache: torch.Tensor | None = None
        for idx, maps in self._map_batches(faces, site):
            parts.append(self._near_zero(faces, site, idx, maps, ref, half, base))
            if keep and maps is not None:
                if cache is None:
                    cache = torch.empty((3, faces.count, n), dtype=maps.dtype, device=maps.device)
                cache[:, torch.from_numpy(idx).to(maps.device)] = maps
            elif keep:
                keep = False
        self.cache = cache if keep else None
        pairs = Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("face", "neuron", "value", "ds", "dt", "ref")))
        return pairs.take(argsort_int(pairs.face * n + pairs.neuron)), base

    def _walk_pairs(self, faces: Faces, site: Site, ref: np.ndarray, half: np.ndarray
                    ) -> tuple[Pairs, np.ndarray]:
        """Candidate pairs and base patterns from a depth-first walk (see ``walk``)."""
        assert faces.parent is not None and self.prev_chords is not None
        index = site.index
        prev_link = self.net.link(index - 1) if index > 1 else None
        # edges two sites back need the previous link and that site's chords
        cross = prev_link is not None and self.prev2_chords is not None \
            and self.prev_parent is not None
        graph = self._walk_graph(faces, index, cross)
        link = self.net.link(index)
        assert link is not None
        # a sparse link on either side: both in CSC form (a dense link's columns are cached)
        sparse = link.sparse or bool(cross and prev_link and prev_link.sparse)
        at_rows = _walk_form(link, sparse)
        prev_rows = _walk_form(prev_link, sparse) if cross and prev_link else None

        def exact(face: int) -> np.ndarray:
            idx = np.array([face], dtype=np.int64)
            return self._full_maps(faces, site, idx)[:, 0].cpu().numpy()

        def exact_batch(idx: np.ndarray) -> np.ndarray:
            return self._full_maps(faces, site, idx).cpu().numpy()

        gates, columns, position, reference = faces.patterns.gates(index - 1, self.net.sites[index - 1].size)
        out = walk_candidates(graph, at_rows, prev_rows, gates,
                              self.net.sites[index - 1].negative_slope, ref, half, exact, self.options,
                              exact_batch, gate_row=faces.patterns.owners(index - 1),
                              gate_map=(columns, position, reference))
        order = argsort_int(out.face)  # stable: neurons stay ascending within a face
        pairs = Pairs(out.face, out.neuron, out.value, out.ds, out.dt, ref[out.face])
        return pairs.take(order), out.base

    def _walk_graph(self, faces: Faces, index: int, cross: bool) -> WalkGraph:
        """The walk's directed edges, each with the row of its chord's map in the chord table
        of its site (the adjacency's other arrays and the lookups' temporaries end here,
        before the walk allocates its own)."""
        assert faces.parent is not None and self.prev_chords is not None
        adj = build_adjacency(faces.ptr, faces.vid, faces.lab, faces.patterns, self.label_offset,
                              index, far=cross)
        src = np.repeat(np.arange(faces.count, dtype=np.int32), np.diff(adj.ptr))
        chord = np.empty(len(src), dtype=np.int32)
        cheap = np.flatnonzero(adj.cheap)
        chord[cheap] = self.prev_chords.positions(faces.parent[src[cheap]], adj.neuron[cheap])
        del cheap
        far = np.flatnonzero(~adj.cheap)
        far_rows = np.zeros((1, 3))
        if len(far):
            assert self.prev2_chords is not None and self.prev_parent is not None
            grandparent = self.prev_parent[faces.parent[src[far]]]
            chord[far] = self.prev2_chords.positions(grandparent, adj.neuron[far])
            far_rows = self.prev2_chords.rows
        del src, far
        sites = self.net.sites
        gain = np.array([1.0 - sites[index - 1].negative_slope,
                         1.0 - sites[index - 2].negative_slope if index > 1 else 0.0])
        return WalkGraph(adj.ptr, adj.dst, (~adj.cheap).astype(np.int8), adj.neuron, chord,
                         adj.sign, self.prev_chords.rows, far_rows, gain)

    def _masks(self, faces: Faces, idx: np.ndarray, upto: int) -> list[torch.Tensor]:
        return [torch.from_numpy(unpack(faces.patterns.of(s.index, idx), s.size))
                for s in self.net.sites[:upto]]

    def _map_batches(self, faces: Faces, site: Site
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor | None]]:
        """(faces, origin-form maps or None for the generic path) batches covering all faces."""
        link = self.net.link(site.index) if site.index > 0 else None
        # through a max-pool (no link into this site), from the first site on: every
        # site's maps up to here are held for a batch
        pooled = link is None and site.index > 0 and self.net.chained(site.index)
        budget = self._chain_batch(site.index) if pooled \
            else max(1, self.options.chunk_entries // max(site.size, 1))
        for start in range(0, faces.count, budget):
            idx = np.arange(start, min(start + budget, faces.count))
            if pooled:
                yield idx, self._full_maps(faces, site, idx)
            elif link is None:
                yield idx, None
            elif faces.parent is None or self.prev_chords is None:
                yield idx, self._full_maps(faces, site, idx)
            else:
                yield idx, self._sibling_maps(faces, site, idx, link)

    def _sibling_maps(self, faces: Faces, site: Site, idx: np.ndarray, link: Link) -> torch.Tensor:
        """Maps on a contiguous run of faces (sorted by parent), for narrow layers.

        The first face of each parent in the run is computed in full; its siblings differ
        from it only in the parent's chords of the previous site, so their maps are the
        anchor's plus ``(gate_R[k] - gate_anchor[k]) * A[:, k] (x) g_k`` per differing
        chord k. Faces of parents with many chords are computed in full.
        """
        assert faces.parent is not None and self.prev_chords is not None
        table = self.prev_chords
        prev_site = self.net.sites[site.index - 1]
        parent = faces.parent[idx]
        chord_face = table.key // table.size
        lo = np.searchsorted(chord_face, parent, side="left")
        n_chords = np.searchsorted(chord_face, parent, side="right") - lo
        first = np.ones(len(idx), dtype=bool)
        first[1:] = parent[1:] != parent[:-1]
        anchor = np.flatnonzero(first)[np.cumsum(first) - 1]
        full = np.flatnonzero(first | (n_chords * self.options.sibling_cost > prev_site.size))
        device = link.bias.device
        maps = torch.empty((3, len(idx), site.size), dtype=torch.float64, device=device)
        maps[:, torch.from_numpy(full).to(device)] = self._full_maps(faces, site, idx[full])
        rest = np.setdiff1d(np.arange(len(idx)), full, assume_unique=True)
        if len(rest) == 0:
            return maps
        maps[:, torch.from_numpy(rest).to(device)] = \
            maps[:, torch.from_numpy(anchor[rest]).to(device)]
        count = n_chords[rest]
        rows = np.repeat(rest, count)
        chord = np.repeat(lo[rest] - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        k = table.key[chord] % table.size
        prev = site.index - 1
        step = (faces.patterns.bits(prev, idx[rows], k).astype(np.float64)
                - faces.patterns.bits(prev, idx[anchor[rows]], k)) * (1.0 - prev_site.negative_slope)
        hit = np.flatnonzero(step != 0)
        rows, chord, k, step = rows[hit], chord[hit], k[hit], step[hit]
        batch = self.options.sibling_batch
        for start in range(0, len(rows), batch):
            sl = slice(start, start + batch)
            g = torch.from_numpy((table.rows[chord[sl]] * step[sl, None]).T).to(device)
            cols = link.dense_columns(k[sl])  # (P, size)
            maps.index_add_(1, torch.from_numpy(rows[sl]).to(device),
                            g[:, :, None] * cols[None])
        return maps

    def _full_maps(self, faces: Faces, site: Site, idx: np.ndarray) -> torch.Tensor:
        """Origin-form maps on faces `idx` by full propagation through the links.

        From the first site on through a max-pool, every site's maps up to here are held
        for a batch, so the faces go ``chunk_entries // widest site`` at a time (the
        anchors of a narrow site after a pool are thousands of faces; and a small batch's
        faces share more of the pool's argmaxes, see ``pool_link_difference``).
        """
        previous = None
        if self.cache is not None and faces.parent is not None and self.net.link(site.index) is not None:
            previous = self.cache[:, torch.from_numpy(faces.parent[idx]).to(self.cache.device)]
        elif self._through_pool(site.index):
            step = self._chain_batch(site.index)
            if len(idx) > step:
                return torch.cat([self._full_maps(faces, site, idx[lo : lo + step])
                                  for lo in range(0, len(idx), step)], dim=1)
        masks = self._masks(faces, idx, site.index)
        maps = self.net.chain_maps(masks, site.index, previous, self.options.pool_link_difference)
        if maps is None:  # an earlier link is missing: one forward-mode pass per face
            at_origin = torch.zeros(len(idx), 2, dtype=torch.float64)
            maps = torch.stack(self.net.affine_maps(at_origin, masks, site.index), dim=0)
        return maps

    def _chain_batch(self, index: int) -> int:
        """Faces per pass of maps chained from the first site to site `index`: each site's
        maps up to it are held for the batch, so ``chunk_entries`` over the widest."""
        widest = max(s.size for s in self.net.sites[: index + 1])
        return max(1, self.options.chunk_entries // max(widest, 1))

    def _through_pool(self, index: int) -> bool:
        """Do the chained maps of site `index` go through a max-pool (see ``chain_maps``)?"""
        return any(self.net.pool_into(m) is not None for m in range(1, index + 1))

    def _near_zero(self, faces: Faces, site: Site, idx: np.ndarray, maps: torch.Tensor | None,
                   ref: np.ndarray, half: np.ndarray, base: np.ndarray) -> Pairs:
        """Pairs (face, neuron) whose range over the face's box reaches zero; base patterns.

        `maps` None means no link: the maps come from a masked forward-mode pass here.
        """
        coords = torch.from_numpy(ref[idx])
        if maps is not None:
            triple = at_points(maps, coords.to(maps.device))
        else:
            triple = self.net.affine_maps(coords, self._masks(faces, idx, site.index), site.index)
        value_t, ds_t, dt_t = triple
        # Each neuron's range over the face's bounding box (grown by the band) is
        # value +- (|ds| * half_s + |dt| * half_t): a superset of its range over the face.
        # Only pairs whose range reaches zero get the exact per-vertex check.
        box = torch.from_numpy(half[idx]).to(value_t.device)
        margin = ds_t.abs().mul_(box[:, :1])
        margin.addcmul_(dt_t.abs(), box[:, 1:])
        if site.pool_stage:  # equal candidates on the face: a tie (EngineOptions.tie_rtol)
            # the map's size over the whole domain (not the face's box: a thin face near a
            # real zero line has a small range there, and it is no tie)
            diameter = self.snap / self.options.snap_rtol
            reach = value_t.abs() + (ds_t.abs() + dt_t.abs()) * diameter
            tie = reach <= self.tie
            for t in (value_t, ds_t, dt_t, margin):
                t.masked_fill_(tie, 0.0)
        base[idx] = pack((value_t > margin).cpu().numpy())
        f, k = np.nonzero((value_t.abs() < margin).cpu().numpy())
        value, ds, dt = (t.detach().cpu().numpy() for t in triple)
        return Pairs(idx[f], k, value[f, k], ds[f, k], dt[f, k], ref[idx][f])

    def chords(self, faces: Faces, site: Site, cand: Pairs, base: np.ndarray,
               position: np.ndarray | None = None) -> tuple[Canonical, Pairs, np.ndarray]:
        """Canonical vertex values of candidates; neurons with both signs on a face cut it.

        `base` (F, width) is settled in place: the bit of each candidate that does not cut
        its face is set to its sign there, at ``position[neuron]`` (a column subset's rows;
        None: at the neuron's own bit)."""
        xy = self.vertices.xy
        n = site.size
        pair_ptr, slots = gather_rings(faces.ptr, cand.face)
        pair = ring_ids(pair_ptr)
        v = faces.vid[slots]
        z = cand.evaluate(pair, xy[v])
        z[np.abs(z) <= cand.tolerance(pair, self.snap)] = 0.0
        if site.pool_stage:
            z[np.abs(z) <= self.tie] = 0.0
        key = v * n + cand.neuron[pair]
        # slots run in face order (candidates are sorted by face), so the first slot of
        # each (vertex, neuron) is on its lowest face; every slot takes that slot's value
        _, first, inverse = unique_first_inverse(key)
        value = z[first][inverse]
        bit = cand.neuron if position is None else position[cand.neuron]
        cuts = settle_pairs(np.sign(value), pair_ptr, base, cand.face, bit)
        # later lookups only concern the chords' own vertices: each of their (vertex,
        # neuron) keys once (a key is on every face around its vertex; the table is sized
        # by the keys it is given)
        wanted = np.zeros(len(first), dtype=bool)
        wanted[inverse[np.flatnonzero(cuts[pair])]] = True
        distinct = first[wanted]
        canonical = Canonical(key[distinct], value[distinct], n)
        return canonical, cand.take(np.flatnonzero(cuts)), base


def _walk_form(link: Link, sparse: bool) -> np.ndarray | SparseColumns:
    """What the walk takes of a link: its CSC columns (`sparse`), or ``A`` transposed."""
    if sparse:
        return link.columns
    assert link.dense is not None
    return link.dense.T.contiguous().cpu().numpy()
