"""Rasterise a `Partition2D` with numpy: one region id per pixel, edges from id changes.

Vector drawing (a PolyCollection of every region) costs matplotlib tens of seconds per
10^6 polygons; rasterising the fan triangles of the convex regions directly costs a few
array passes over the pixels, whatever the number of regions.
"""

from __future__ import annotations

import numpy as np

from reluscope._kernels.rings import ring_ids
from reluscope.regions.partition2d import Partition2D

#: Pixel tests per vectorised block (bounds the temporaries).
_BLOCK = 1 << 23


def region_raster(part: Partition2D, width: int, height: int) -> np.ndarray:
    """Region id of each pixel centre, (height, width) int64, row 0 at the top; -1 outside.

    Each convex region is split into the fan triangles of its ring; every triangle marks
    the pixel centres inside it (edge functions, with a tolerance of 1e-9 pixel so shared
    edges leave no gaps).
    """
    (s0, s1), (t0, t1) = part.plane.extent
    sx, sy = width / (s1 - s0), height / (t1 - t0)
    px = (part.vertices[:, 0] - s0) * sx - 0.5  # pixel-centre coordinates
    py = (t1 - part.vertices[:, 1]) * sy - 0.5
    ptr, vid = part.face_offsets, part.face_vertices
    ring = ring_ids(ptr)
    apex = vid[ptr[:-1]][ring]
    slot = np.arange(len(vid))
    is_fan = (slot - ptr[:-1][ring] >= 1) & (slot + 1 < ptr[1:][ring])
    a, b, c = apex[is_fan], vid[slot[is_fan]], vid[slot[is_fan] + 1]
    face = ring[is_fan]
    tx = np.stack([px[a], px[b], px[c]], 1)
    ty = np.stack([py[a], py[b], py[c]], 1)
    x0 = np.clip(np.ceil(tx.min(1) - 1e-9), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tx.max(1) + 1e-9), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ty.min(1) - 1e-9), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(ty.max(1) + 1e-9), -1, height - 1).astype(np.int64)
    nx, ny = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    count = nx * ny
    ids = np.full((height, width), -1, dtype=np.int64)
    ends = np.cumsum(count)
    start = 0
    while start < len(count):  # blocks of triangles with about _BLOCK pixel tests each
        stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _BLOCK)), start + 1)
        tri = np.arange(start, min(stop, len(count)))
        start = tri[-1] + 1
        n = count[tri]
        if n.sum() == 0:
            continue
        owner = np.repeat(tri, n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        qx = x0[owner] + k % nx[owner]
        qy = y0[owner] + k // nx[owner]
        inside = np.ones(len(owner), dtype=bool)
        area = ((tx[owner, 1] - tx[owner, 0]) * (ty[owner, 2] - ty[owner, 0])
                - (tx[owner, 2] - tx[owner, 0]) * (ty[owner, 1] - ty[owner, 0]))
        sign = np.where(area >= 0, 1.0, -1.0)
        for i, j in ((0, 1), (1, 2), (2, 0)):  # the three edge functions
            e = ((tx[owner, j] - tx[owner, i]) * (qy - ty[owner, i])
                 - (ty[owner, j] - ty[owner, i]) * (qx - tx[owner, i]))
            inside &= sign * e >= -1e-9 * np.abs(area)
        ids[qy[inside], qx[inside]] = face[owner[inside]]
    return ids


def edge_sites(part: Partition2D, ids: np.ndarray) -> np.ndarray:
    """Layer of the boundary at each pixel whose right or lower neighbour is another region.

    Returns (height, width) int64: the site that made the edge between the two regions,
    -1 for the domain boundary or regions that only touch at a corner, -2 for no edge.
    """
    inner = (part.edge_faces >= 0).all(axis=1)
    lo = np.minimum(part.edge_faces[inner, 0], part.edge_faces[inner, 1])
    hi = np.maximum(part.edge_faces[inner, 0], part.edge_faces[inner, 1])
    n = max(part.n_regions, 1)
    keys = lo * n + hi
    order = np.argsort(keys)
    keys, layers = keys[order], part.edge_site[inner][order]
    out = np.full(ids.shape, -2, dtype=np.int64)
    for axis in (0, 1):
        a = ids[:-1, :] if axis == 0 else ids[:, :-1]
        b = ids[1:, :] if axis == 0 else ids[:, 1:]
        differ = a != b
        pa, pb = a[differ], b[differ]
        key = np.minimum(pa, pb) * n + np.maximum(pa, pb)
        pos = np.clip(np.searchsorted(keys, key), 0, max(len(keys) - 1, 0))
        found = (len(keys) > 0) & (keys[pos] == key) & (pa >= 0) & (pb >= 0)
        layer = np.where(found, layers[pos] if len(keys) else -1, -1)
        view = out[:-1, :] if axis == 0 else out[:, :-1]
        view[differ] = np.maximum(view[differ], layer)
    return out
