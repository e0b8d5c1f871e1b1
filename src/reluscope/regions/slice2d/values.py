"""Chords from a site's values at the vertices (the engine's first way to find chords).

The network is continuous, so a site has one value per vertex whichever face the vertex
is seen from: canonical by construction. Values come from one GEMM row per vertex through
the link from the previous site's values (kept from site to site while the network is a
chain of links; the first site is affine on the whole plane), or from a plain forward
pass at the vertex. A neuron cuts a face iff the face's vertex values take both signs; its
affine map on the face (needed inside it) is a least-squares fit to those values, whose
residual bounds its error over the face (``vertex_values``).
"""

from __future__ import annotations

import numpy as np
import torch

from reluscope._kernels.interpolate import interpolate_rows
from reluscope._kernels.rings import gather_rings, ring_boxes, ring_ids
from reluscope._kernels.sorting import unique_values
from reluscope._kernels.windows import window_values, zero_ties
from reluscope.nets.links import Link
from reluscope.nets.plane_network import Network
from reluscope.nets.recorder import PoolSource
from reluscope.nets.sites import Site
from reluscope.regions.options import EngineOptions
from reluscope.regions.slice2d.faces import Faces
from reluscope.regions.slice2d.pairs import Pairs, VertexLookup, settle_pairs
from reluscope.regions.slice2d.vertex_values import face_signs, fit_maps, mixed_pairs
from reluscope.regions.slice2d.vertices import VertexStore


class PoolChain:
    """The values of a site whose activation a max-pool reads, kept at every vertex while
    the pool's stages are cut (see ``VertexValues._from_pool``).

    Attributes
    ----------
    site : Site
        The pooled site.
    source : PoolSource
        Which of its units are each window's candidates.
    rows : (count, size) float64 or None
        Its values at the first `count` vertices (None for the first site: recomputed from
        its plane map); a view of `buffer`.
    """

    def __init__(self, site: Site, source: PoolSource, buffer: np.ndarray | None, count: int) -> None:
        self.site, self.source, self.count = site, source, count
        #: flat float64 buffer whose start holds `rows` (room for the stages' new vertices)
        self.buffer = buffer

    @property
    def rows(self) -> np.ndarray | None:
        """(count, size) view of the buffer, or None (the first site)."""
        if self.buffer is None:
            return None
        return self.buffer[: self.count * self.site.size].reshape(self.count, self.site.size)

    def grow(self, count: int) -> np.ndarray:
        """(count, size) rows, the first ``self.count`` kept (the buffer grows by half again
        when too small: each stage adds vertices)."""
        assert self.buffer is not None
        size = self.site.size
        if len(self.buffer) < count * size:
            grown = np.empty((count + count // 2) * size)
            grown[: self.count * size] = self.buffer[: self.count * size]
            self.buffer = grown
        self.count = count
        return self.buffer[: count * size].reshape(count, size)

    def window_values(self, rows: np.ndarray, stage: int, out: np.ndarray | None = None
                      ) -> np.ndarray:
        """(B, windows): stage `stage`'s pre-activation ``x_stage - m_{stage-1}`` from the
        pooled site's values `rows` (B, size), or the pool's output ``m_{K-1}`` for
        ``stage == K``, the window size (see ``_kernels.windows``); into `out` if given."""
        if out is None:
            out = np.empty((len(rows), self.source.candidates.shape[1]))
        window_values(np.ascontiguousarray(rows), self.source.candidates, stage,
                      self.site.negative_slope, out)
        return out


class VertexValues:
    """A site's pre-activations at every vertex, in one flat store reused from site to site.

    ``rows`` keeps the last site's values at every vertex when the next site is chained
    to it (a view of the start of the store); ``store`` is the flat buffer (first touches
    of fresh pages cost more than the arithmetic here).
    """

    def __init__(self, net: Network, vertices: VertexStore, options: EngineOptions, snap: float) -> None:
        self.net, self.vertices, self.options, self.snap = net, vertices, options, snap
        #: values this small are max-pool ties (set per stage site by the engine)
        self.tie = 0.0
        self.rows: np.ndarray | None = None
        self.store: np.ndarray | None = None
        #: later sites' values at the first vertices, as row blocks in vertex order: the
        #: forward passes of a site without a link computed them too (see _by_forward)
        self.ahead: dict[int, list[np.ndarray]] = {}
        #: the pooled site's values while a max-pool's stages are cut (see _from_pool)
        self.chain: PoolChain | None = None

    def forget(self) -> None:
        """Drop the kept values and the store (the site uses another method)."""
        self.rows = self.store = self.chain = None
        self.ahead = {}

    def chained_next(self, site: Site) -> bool:
        """Will the next site's values come from this site's values by one link (GEMM)?"""
        nxt = site.index + 1
        if nxt >= len(self.net.sites) or self.net.link(nxt) is None:
            return False
        if site.size >= self.options.walk_min_width and not self.net.sites[nxt].pool_stage:
            return False  # the next site walks the faces instead (a max-pool stage never does)
        width = max(site.size, self.net.sites[nxt].size)
        return self.vertices.size * width <= self.options.values_max_entries

    def _rows(self, count: int, width: int, spare: int = 0, keep: int = 0) -> np.ndarray:
        """(count, width) view of the store, grown to fit ``spare`` more rows; the first
        `keep` rows survive a regrowth."""
        need = (count + spare) * width
        if self.store is None or len(self.store) < need:
            grown = np.empty(need)
            if keep and self.store is not None:
                grown[: keep * width] = self.store[: keep * width]
            self.store = grown
        return self.store[: count * width].reshape(count, width)

    def at_vertices(self, site: Site) -> np.ndarray | None:
        """(V, size) pre-activations of `site` at every vertex, or None if too large.

        The result lies at the start of the store, with room for the vertices this site
        will create when the next site will need them (see :meth:`finish_site`).
        """
        n_vertices, n = self.vertices.size, site.size
        if n_vertices * n > self.options.values_max_entries:
            self.forget()
            return None
        spare = 0
        if self.chained_next(site) or self._pooled_next(site) is not None:  # the vertices this site and
            # the next ones add (a guess; it regrows)
            spare = min(3 * n_vertices, self.options.values_max_entries // n - n_vertices)
        if self._chain_reaches(site):
            return self._from_pool(site, spare)
        self.chain = None
        link = self.net.link(site.index) if site.index > 0 else None
        if link is not None and self.rows is not None and len(self.rows) == n_vertices:
            return self._through_link(site, link, spare)
        self.rows = self.store = None  # (the later sites' values kept by _by_forward stay)
        return self._by_forward(site, spare)

    def _chain_reaches(self, site: Site) -> bool:
        """Do `site`'s values follow from the kept pooled site's: a stage of its max-pool, or
        the site right after that pool's last stage, through the pool's link?"""
        chain = self.chain
        return chain is not None and chain.count == self.vertices.size \
            and self.net.pool_into(site.index) is chain.source

    def _from_pool(self, site: Site, spare: int) -> np.ndarray:
        """Values of a max-pool's stage, or of the site after the pool, from the pooled site's
        values at the vertices: each window's candidates are gathered and run through the
        recorder's running maximum (``m + relu(x - m)``, the same float64 operations), and
        the pool's output goes through its link. No forward pass: each vertex costs a gather
        per stage (and one product by the link after the pool)."""
        chain = self.chain
        assert chain is not None
        n_vertices, n = self.vertices.size, site.size
        self.ahead.pop(site.index, None)
        out = self._rows(n_vertices, n, spare)
        window = chain.source.candidates.shape[0]
        stage = site.pool_stage if site.pool_stage else window
        link = None if site.pool_stage else self.net.pool_link(site.index)
        step = max(1, self.options.chunk_entries // max(chain.site.size, n))
        for lo in range(0, n_vertices, step):
            hi = min(lo + step, n_vertices)
            if link is None:  # straight into the store
                chain.window_values(self._pooled_rows(lo, hi), stage, out[lo:hi])
                continue
            pooled = chain.window_values(self._pooled_rows(lo, hi), stage)
            out[lo:hi] = link.apply(torch.from_numpy(pooled).to(link.bias.device)).cpu().numpy()
        return out

    def _pooled_rows(self, lo: int, hi: int) -> np.ndarray:
        """The pooled site's values at vertices ``lo .. hi-1`` (the first site's from its
        plane map: it is affine on the whole plane, so nothing is kept for it)."""
        chain = self.chain
        assert chain is not None
        if chain.rows is None:
            coords = torch.from_numpy(self.vertices.xy[lo:hi].copy())
            return self.net.site0_values(coords).cpu().numpy()
        return chain.rows[lo:hi]

    def _through_link(self, site: Site, link: Link, spare: int) -> np.ndarray:
        """One GEMM row (or operator pass) per vertex from the previous site's kept values."""
        assert self.rows is not None
        n_vertices, n = self.vertices.size, site.size
        slope = self.net.sites[site.index - 1].negative_slope
        rows = self.rows
        in_place = rows.shape[1] == n  # each block only needs its own rows
        if in_place:
            out = rows
        else:
            self.store = None
            out = self._rows(n_vertices, n, spare)
        step = max(1, (1 << 20) // max(n, rows.shape[1]))
        for lo in range(0, n_vertices, step):
            z = torch.from_numpy(rows[lo : lo + step]).to(link.bias.device)
            act = torch.where(z > 0, z, z * slope) if slope else z.clamp_min_(0.0)
            out[lo : lo + step] = link.apply(act).cpu().numpy()
        self.rows = None
        if in_place:  # make room for this site's new vertices
            out = self._rows(n_vertices, n, spare, keep=n_vertices)
        return out

    def _by_forward(self, site: Site, spare: int) -> np.ndarray:
        """Values by forward passes at the vertices (through the links when all exist).

        A plain pass reaches later sites for little more. When they have no link either (a
        max-pool's stages, the ReLU after it), their values at today's vertices are kept,
        and their own passes then only cover the vertices made since (a vertex's values do
        not depend on the face it is seen from: the network is continuous).
        """
        n_vertices, n = self.vertices.size, site.size
        out = self._rows(n_vertices, n, spare)
        xy = self.vertices.xy
        links = [self.net.link(m) for m in range(1, site.index + 1)]
        chained = all(link is not None for link in links)
        done = 0
        cached = self.ahead.pop(site.index, None)
        if cached is not None:
            done = 0
            for block in cached:  # block by block: no second copy of them all
                out[done : done + len(block)] = block
                done += len(block)
            cached.clear()
        else:
            self.ahead = {} if chained else {t: [] for t in self._unlinked_after(site)}
        upto = max([site.index, *self.ahead])
        sizes = [s.size for s in self.net.sites[: upto + 1]]
        step = max(1, self.options.chunk_entries // max(sizes) if chained
                   else self.options.forward_entries // sum(sizes))
        for lo in range(done, n_vertices, step):
            coords = torch.from_numpy(xy[lo : lo + step].copy())
            if chained:  # the first site's plane map, then the links: no input-sized layer
                z = self.net.site0_values(coords)
                for m, link in enumerate(links, start=1):
                    slope = self.net.sites[m - 1].negative_slope
                    z = link.apply(torch.where(z > 0, z, z * slope))  # type: ignore[union-attr]
            else:
                if self.net.cut_at_first_site:  # the first site's plane map, then one pass
                    pre = self.net.preactivations_after_first_site(self.net.site0_values(coords), upto)
                else:
                    pre = self.net.plane_preactivations(coords, upto)
                z = pre[site.index]
                for later, blocks in self.ahead.items():
                    blocks.append(pre[later].cpu().numpy())
            out[lo : lo + step] = z.cpu().numpy()
        return out

    def _unlinked_after(self, site: Site) -> list[int]:
        """The later sites with no link, while their values at today's vertices fit
        ``ahead_max_entries``."""
        later, entries = [], 0
        for t in range(site.index + 1, len(self.net.sites)):
            if self.net.link(t) is not None:  # its values come through its link
                continue
            entries += self.vertices.size * self.net.sites[t].size
            if entries > self.options.ahead_max_entries:
                break
            later.append(t)
        return later

    def chords(self, faces: Faces, site: Site, values: np.ndarray
               ) -> tuple[VertexLookup, Pairs, np.ndarray, tuple[np.ndarray, ...]]:
        """Chords and base patterns from the values at the vertices.

        A vertex within the snap distance of a neuron's zero line, on a face that neuron
        cuts, counts as on the line: its value is set to 0 in `values` (the original
        values are returned in ``snapped``, restored by :meth:`finish_site`).
        """
        xy = self.vertices.xy
        n = site.size
        ties: tuple[np.ndarray, ...] = ()
        if site.pool_stage:  # equal candidates: 0 up to rounding (EngineOptions.tie_rtol)
            ties = zero_ties(values, self.tie)
        signs = face_signs(faces.ptr, faces.vid, values)
        face, neuron = mixed_pairs(signs, n)
        box_lo, box_hi = ring_boxes(faces.ptr, faces.vid, xy)
        ref = 0.5 * (box_lo + box_hi)
        fit = fit_maps(faces.ptr, faces.vid, xy, values, face, neuron, ref)
        pair_ptr, slots = gather_rings(faces.ptr, face)
        pair = ring_ids(pair_ptr)
        v, k = faces.vid[slots], neuron[pair]
        z = values[v, k]
        near = np.flatnonzero((np.abs(z) <= self.snap * np.hypot(fit.ds, fit.dt)[pair]) & (z != 0))
        key = unique_values(v[near] * n + k[near])
        sv, sk = key // n, key % n
        snapped: tuple[np.ndarray, ...] = (sv, sk, values[sv, sk])
        values[sv, sk] = 0.0
        if ties:
            snapped = tuple(np.concatenate([a, b]) for a, b in zip(snapped, ties, strict=True))
        base = signs.pos & ~signs.neg  # neurons of one sign on a face
        cuts = settle_pairs(np.sign(values[v, k]), pair_ptr, base, face, neuron)
        keep = np.flatnonzero(cuts)
        chords = Pairs(face[keep], neuron[keep], fit.value[keep], fit.ds[keep], fit.dt[keep],
                       ref[face[keep]], fit.residual[keep])
        return VertexLookup(values), chords, base, snapped

    def keeps(self, site: Site) -> bool:
        """Will `site`'s values at the vertices be kept after its cut (for the next site, or
        as a max-pool's chain)? If not, they can go once its chords are found."""
        return self.chained_next(site) or self._pooled_next(site) is not None

    def release(self) -> None:
        """Let the store go: the site's values are not kept (see :meth:`keeps`)."""
        self.store = None

    def finish_site(self, site: Site, values: np.ndarray | None, snapped: tuple[np.ndarray, ...],
                    first_new: int) -> None:
        """After cutting: keep the site's values at every vertex for a chained next site.

        `values` None: the site's values are not kept (a walked site, or one whose values
        were released after its chords); a max-pool's chain through it still grows.
        """
        self.rows = None
        if values is not None:
            values[snapped[0], snapped[1]] = snapped[2]  # exact values again for the next site
        if self.chain is not None and site.pool_stage:
            self._extend_chain(first_new)
        if values is None:
            self.store = None
            return
        source = self._pooled_next(site)
        if source is not None:
            buffer = None
            if site.index > 0:  # its rows at the start of the store, with its spare room
                self._site_rows(site, values, first_new)
                buffer, self.store = self.store, None  # (the chain holds the store now)
            self.chain = PoolChain(site, source, buffer, self.vertices.size)
        elif self.chained_next(site):
            self.rows = self._site_rows(site, values, first_new)
        else:
            self.store = None

    def _pooled_next(self, site: Site) -> PoolSource | None:
        """The max-pool of this site's activation whose first stage is the next site, if
        this site's values at the vertices fit ``values_max_entries`` (else None)."""
        if not self.options.pool_values \
                or self.vertices.size * site.size > self.options.values_max_entries:
            return None
        return self.net.pool_read_by_next(site.index)

    def _extend_chain(self, first_new: int) -> None:
        """After a stage's cut: the pooled site's values at the vertices it made, which lie
        on edges of faces where that site is affine (interpolated like ``_site_rows``); the
        chain ends if they no longer fit ``values_max_entries``."""
        chain = self.chain
        assert chain is not None
        count = self.vertices.size
        if chain.buffer is None:  # the first site: nothing kept
            chain.count = count
            return
        if count * chain.site.size > self.options.values_max_entries:
            self.chain = None
            return
        first = chain.count
        rows = chain.grow(count)
        va, vb, vt = self.vertices.segments()
        interpolate_rows(rows, va, vb, vt, first, count)

    def _site_rows(self, site: Site, values: np.ndarray, first_new: int) -> np.ndarray:
        """Values of `site` at every vertex, the ones this site made included.

        The first site is affine on the whole plane: evaluate it. A vertex created by a
        later site lies on an edge of one face where that site is affine, so its values
        interpolate the edge's end values. `values` lies at the start of the store, so
        the old vertices' rows are already in place.
        """
        n = values.shape[1]
        if site.index == 0:
            rows = self._rows(self.vertices.size, n)
            step = max(1, self.options.chunk_entries // n)  # no (V, n) temporary
            for lo in range(0, len(rows), step):
                coords = torch.from_numpy(self.vertices.xy[lo : lo + step].copy())
                rows[lo : lo + step] = self.net.site0_values(coords).cpu().numpy()
            return rows
        rows = self._rows(self.vertices.size, n, keep=first_new)
        va, vb, vt = self.vertices.segments()
        # a vertex only refers to vertices made before it: filled in increasing order
        interpolate_rows(rows, va, vb, vt, first_new, self.vertices.size)
        return rows
