"""The decision boundary of a classifier inside a 2D slice, exactly.

On each linear region the logits are affine, so the set where class ``c`` wins is a
convex polygon: the region clipped by the half-planes ``f_c >= f_j`` (``j != c``). The
decision boundary is made of the clipping edges. Regions whose vertices all have the
same top class are whole cells (a convex polygon is the hull of its vertices) and are
skipped; only the few mixed regions are clipped, all at once, on padded arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputValueError
from reluscope.nets.plane_network import Network
from reluscope.regions.partition2d import Partition2D

#: Vertices whose outputs are evaluated per forward pass.
_CHUNK = 65536


@dataclass(frozen=True)
class DecisionBoundary:
    """Where the predicted class changes inside a slice.

    Attributes
    ----------
    segments : (M, 2, 2) float64
        Boundary segments in plane coordinates.
    classes : (M, 2) int64
        The two classes tied along each segment.
    region : (M,) int64
        The linear region each segment lies in.
    region_length : (F,) float64
        Length of the decision boundary inside each region.
    """

    segments: np.ndarray
    classes: np.ndarray
    region: np.ndarray
    region_length: np.ndarray

    @property
    def length(self) -> float:
        """Total length of the decision boundary (plane units)."""
        return float(self.region_length.sum())

    @property
    def regions_crossed(self) -> int:
        """Number of linear regions the decision boundary passes through."""
        return int((self.region_length > 0).sum())


def vertex_outputs(part: Partition2D, model: nn.Module) -> np.ndarray:
    """The model's output at every vertex of the partition, (V, n_out) float64.

    A plain float64 forward pass is exact at vertices: the network is continuous.
    """
    net = Network(model, part.plane, where="decision_boundary")
    mine = [(tuple(site.shape), site.negative_slope) for site in net.sites]
    theirs = [(tuple(site.shape), site.negative_slope) for site in part.sites]
    if mine != theirs:
        raise InputValueError(message(
            "`model` of decision_boundary", "the model the partition was computed for",
            f"a model with ReLU sites {[m[0] for m in mine]} where the partition has "
            f"{[t[0] for t in theirs]}",
            "Pass the network given to slice_regions (or a linear head on it)."))
    coords = torch.from_numpy(part.vertices)
    chunks = []
    for lo in range(0, len(coords), _CHUNK):
        out = net.forward(net._inputs(coords[lo: lo + _CHUNK])).output
        if out is None:
            raise InputValueError(message(
                "`model` of decision_boundary", "a model whose output is one tensor of logits",
                "an output that is not a tensor", "Wrap the model so it returns the logits."))
        chunks.append(out[0].cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0))


def _clip(pts: np.ndarray, attrs: np.ndarray, labels: np.ndarray, count: np.ndarray,
          h: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip padded convex polygons to ``h >= 0`` (Sutherland–Hodgman, all at once).

    Parameters
    ----------
    pts : (m, K, 2) vertices; attrs : (m, K, C) affine attributes (interpolated exactly);
    labels : (m, K) label of the edge leaving each vertex; count : (m,) vertices per polygon;
    h : (m, K) the clipping function at the vertices (affine on each polygon);
    label : label of the new edges along ``h = 0``.
    """
    m, k = h.shape
    idx = np.arange(k)[None, :]
    valid = idx < count[:, None]
    nxt = np.where(idx + 1 < count[:, None], idx + 1, 0)
    inside = (h >= 0) & valid
    h_next = np.take_along_axis(h, nxt, 1)
    cross = valid & (inside != np.take_along_axis(inside, nxt, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(cross, h / (h - h_next), 0.0)
    p_next = np.take_along_axis(pts, nxt[..., None], 1)
    a_next = np.take_along_axis(attrs, nxt[..., None], 1)
    p_cross = pts + lam[..., None] * (p_next - pts)
    a_cross = attrs + lam[..., None] * (a_next - attrs)
    # a crossing on the way out starts a new edge along h = 0; on the way in, the old edge
    l_cross = np.where(inside, label, labels)
    out_mask = np.stack([inside, cross], 2).reshape(m, 2 * k)
    order = np.argsort(~out_mask, axis=1, kind="stable")
    new_count = out_mask.sum(1)
    width = max(int(new_count.max(initial=0)), 1)
    order = order[:, :width]

    def take(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        both = np.stack([a, b], 2).reshape(m, 2 * k, *a.shape[2:])
        sel = order.reshape(m, width, *([1] * (a.ndim - 2)))
        return np.take_along_axis(both, sel, 1)

    return take(pts, p_cross), take(attrs, a_cross), take(labels, l_cross), new_count


def decision_boundary(part: Partition2D, model: nn.Module,
                      outputs: np.ndarray | None = None) -> DecisionBoundary:
    """Exact decision boundary (argmax of the outputs) inside the slice.

    Parameters
    ----------
    part : Partition2D
        The slice's linear regions, computed for `model`.
    model : nn.Module
        The classifier (logits as output; at least 2 of them).
    outputs : (V, C) array, optional
        Precomputed outputs at the partition's vertices (see :func:`vertex_outputs`).

    Returns
    -------
    DecisionBoundary
    """
    if not isinstance(part, Partition2D):
        raise InputValueError(message("`part` of decision_boundary", "a Partition2D", describe(part),
                                      "Compute one with reluscope.slice_regions."))
    values = vertex_outputs(part, model) if outputs is None else np.asarray(outputs, dtype=np.float64)
    n_classes = values.shape[1]
    ptr, vid = part.face_offsets, part.face_vertices
    empty = DecisionBoundary(np.zeros((0, 2, 2)), np.zeros((0, 2), np.int64), np.zeros(0, np.int64),
                             np.zeros(part.n_regions))
    if n_classes < 2:
        raise InputValueError(message("`model` of decision_boundary", "a classifier with at least 2 outputs",
                                      f"{n_classes} output(s)", "Pass a model whose output is the logits."))
    top = values.argmax(axis=1)[vid]
    first = top[ptr[:-1]]
    mixed = np.nonzero(np.minimum.reduceat(top == np.repeat(first, np.diff(ptr)), ptr[:-1]) == 0)[0]
    if len(mixed) == 0:
        return empty
    count0 = np.diff(ptr)[mixed]
    k = int(count0.max())
    slot = ptr[mixed][:, None] + np.minimum(np.arange(k)[None, :], count0[:, None] - 1)
    pts0 = part.vertices[vid[slot]]
    attrs0 = values[vid[slot]]
    segs, cls, regs = [], [], []
    for c in range(n_classes):
        pts, attrs, count = pts0, attrs0, count0
        labels = np.full(pts.shape[:2], -1, dtype=np.int64)
        for j in range(n_classes):
            if j != c:
                pts, attrs, labels, count = _clip(pts, attrs, labels, count,
                                                  attrs[..., c] - attrs[..., j], j)
        idx = np.arange(pts.shape[1])[None, :]
        nxt = np.where(idx + 1 < count[:, None], idx + 1, 0)
        on = (labels >= 0) & (idx < count[:, None]) & (count[:, None] >= 3) & (labels > c)
        rows, cols = np.nonzero(on)  # each tie segment once: from the cell of the smaller class
        a = pts[rows, cols]
        b = pts[rows, nxt[rows, cols]]
        keep = np.linalg.norm(b - a, axis=1) > 0
        segs.append(np.stack([a, b], 1)[keep])
        cls.append(np.stack([np.full(len(rows), c), labels[rows, cols]], 1)[keep])
        regs.append(mixed[rows][keep])
    segments = np.concatenate(segs)
    region = np.concatenate(regs)
    lengths = np.bincount(region, weights=np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1),
                          minlength=part.n_regions)
    return DecisionBoundary(segments, np.concatenate(cls).astype(np.int64), region.astype(np.int64),
                            lengths)
