"""(face, neuron) pairs with their affine maps, and canonical (vertex, neuron) values.

A *chord* is a pair whose neuron takes both signs on its face. Every sign the engine
decides at a vertex comes from one canonical value per (vertex, neuron), whichever face
it is seen from, so neighbouring faces always agree on where a neuron's line crosses
their shared edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluscope._kernels.bits import clear_bit, set_bit
from reluscope._kernels.hashing import KeyTable


@dataclass
class Pairs:
    """(face, neuron) pairs with the neuron's affine map on that face (P pairs).

    The map is ``value + ds * (s - ref_s) + dt * (t - ref_t)``.
    """

    face: np.ndarray
    neuron: np.ndarray
    value: np.ndarray
    ds: np.ndarray
    dt: np.ndarray
    ref: np.ndarray  # (P, 2) reference point of the map
    slack: np.ndarray | None = None  # (P,) bound on the map's error over its face, if fitted

    def take(self, index: np.ndarray) -> Pairs:
        return Pairs(self.face[index], self.neuron[index], self.value[index], self.ds[index],
                     self.dt[index], self.ref[index],
                     None if self.slack is None else self.slack[index])

    def evaluate(self, pair: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Value of pair ``pair[i]``'s map at point ``xy[i]``."""
        d = xy - self.ref[pair]
        return self.value[pair] + self.ds[pair] * d[:, 0] + self.dt[pair] * d[:, 1]

    def tolerance(self, pair: np.ndarray, distance: float) -> np.ndarray:
        """Value tolerance equivalent to `distance` in the plane for each pair."""
        return distance * np.hypot(self.ds[pair], self.dt[pair])

    def origin_form(self) -> np.ndarray:
        """(P, 3) maps as (value at the plane's origin, ds, dt)."""
        origin = self.value - self.ds * self.ref[:, 0] - self.dt * self.ref[:, 1]
        return np.stack([origin, self.ds, self.dt], axis=1)


class Canonical:
    """Canonical values of (vertex, neuron) pairs: one evaluation shared by all faces.

    ``keys`` are ``vertex * n + neuron`` (repeats carry the same value).
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray, n: int) -> None:
        self.table = KeyTable(keys, values)
        self.n = n

    def __call__(self, vertex: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        return self.table(vertex * self.n + neuron)


class VertexLookup:
    """Canonical values when the site's values at every vertex are known: a table lookup.

    Parameters
    ----------
    values : (V, m) float64
        The values at every vertex, of every neuron (m = the site's width), or of the
        neurons `position` maps.
    position : (width,) int32, optional
        Column of `values` of each neuron (see :meth:`columns`).
    """

    def __init__(self, values: np.ndarray, position: np.ndarray | None = None) -> None:
        self.values, self.position = values, position

    def __call__(self, vertex: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        if self.position is None:
            return self.values[vertex, neuron]
        return self.values[vertex, self.position[neuron]]

    def columns(self, neurons: np.ndarray) -> VertexLookup:
        """The same lookup for `neurons` only (any order, repeats allowed), as a copy of
        their columns, when they are at most half the site: a wide site's cut reads the
        values of its chords' neurons alone, so the full table need not outlive the chords.
        Other neurons read a NaN column (whose signs compare as neither side)."""
        if self.position is not None:  # (already a subset)
            return self
        width = self.values.shape[1]
        keep = np.flatnonzero(np.bincount(neurons, minlength=width))
        if 2 * len(keep) > width:
            return self
        position = np.full(width, len(keep), dtype=np.int32)
        position[keep] = np.arange(len(keep), dtype=np.int32)
        values = np.empty((len(self.values), len(keep) + 1))
        values[:, :-1] = self.values[:, keep]
        values[:, -1] = np.nan
        return VertexLookup(values, position)


#: Either kind of canonical (vertex, neuron) -> value lookup.
CanonicalValues = Canonical | VertexLookup


def settle_pairs(sign: np.ndarray, pair_ptr: np.ndarray, base: np.ndarray, face: np.ndarray,
                 neuron: np.ndarray) -> np.ndarray:
    """Which (face, neuron) pairs cut their face; set the bits of the others.

    ``sign`` holds each pair's signs on its face's vertices (CSR by ``pair_ptr``). A pair
    with both signs cuts the face (its bit is decided per piece later, so it is cleared
    here); any other is active on the face iff it is positive somewhere on it.
    """
    if len(sign):
        pos = np.maximum.reduceat(sign, pair_ptr[:-1]) > 0
        neg = np.minimum.reduceat(sign, pair_ptr[:-1]) < 0
    else:
        pos = neg = np.zeros(0, bool)
    cuts = pos & neg
    clear_bit(base, face, neuron)
    quiet_pos = ~cuts & pos
    set_bit(base, face[quiet_pos], neuron[quiet_pos])
    return cuts
