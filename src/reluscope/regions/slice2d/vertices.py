"""The vertex store of the 2D engine: every vertex made so far, and how it was made.

The signs of a chord's function at the vertices of a face are decided by a vertex's
*kind* (see ``cutting``): a vertex made before the current site has canonical values; one
made by the current site on an existing edge gets its sign from its order along that edge;
only one made inside a face uses the face's affine map.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from reluscope._kernels.growable import Growable


class VertexKind(IntEnum):
    """How a vertex was made, relative to the site being cut."""

    #: made before the current site (the domain's corners included)
    OLD = 0
    #: made by the current site where a chord crosses an existing edge (a, b): ``t`` along it
    ON_EDGE = 1
    #: made by the current site inside a face, on the segment (a, b) at ``t``
    INSIDE = 2


class VertexStore:
    """Append-only vertices: coordinates (V, 2), kind, and the segment (a, b, t) each was
    made on (``xy = xy[a] + t (xy[b] - xy[a])``; -1 for the domain's corners). A vertex only
    refers to vertices made before it (values are filled in increasing id).
    """

    def __init__(self) -> None:
        self._xy = Growable(2, np.float64)
        self._kind = Growable(None, np.int8)
        self._a = Growable(None, np.int64)
        self._b = Growable(None, np.int64)
        self._t = Growable(None, np.float64)

    @property
    def size(self) -> int:
        return self._xy.size

    @property
    def xy(self) -> np.ndarray:
        """(V, 2) coordinates (a view: valid until the next ``add``)."""
        return self._xy.view()

    @property
    def kind(self) -> np.ndarray:
        """(V,) int8 :class:`VertexKind` of each vertex."""
        return self._kind.view()

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, t), each (V,): the segment each vertex was made on."""
        return self._a.view(), self._b.view(), self._t.view()

    def add(self, xy: np.ndarray, kind: VertexKind, a: np.ndarray | None = None,
            b: np.ndarray | None = None, t: np.ndarray | None = None) -> np.ndarray:
        """Append vertices (N, 2) of one kind; returns their ids (N,)."""
        n = len(xy)
        ids = self._xy.extend(xy)
        self._kind.extend(np.full(n, int(kind), dtype=np.int8))
        self._a.extend(a if a is not None else np.full(n, -1, np.int64))
        self._b.extend(b if b is not None else np.full(n, -1, np.int64))
        self._t.extend(t if t is not None else np.zeros(n))
        return ids

    def start_site(self) -> None:
        """Every vertex made so far becomes OLD for the next site."""
        self._kind.view()[:] = VertexKind.OLD

    def truncate(self, size: int) -> None:
        """Forget every vertex from id `size` on (a failed arrangement's)."""
        for store in (self._xy, self._kind, self._a, self._b, self._t):
            store.size = size
