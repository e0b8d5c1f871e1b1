"""Max-pooling in the exact engines: canonical patterns and the switches of a window.

The recorder writes a max-pool window with candidates ``x_0 .. x_{K-1}`` (in
``F.unfold`` order) as a running maximum, ``m_0 = x_0``, ``m_s = m_{s-1} +
relu(x_s - m_{s-1})``: ``K - 1`` ReLU *stage* sites with one unit per window (see
:mod:`reluscope.nets.recorder`). Stage ``s``'s neuron is active where candidate ``s``
beats every earlier one, so the window's argmax is the highest active stage (candidate
0 if none; ties go to the earlier candidate).

The engines cut along every stage's zero line, but that line is a boundary of the
network's linear regions only where its running maximum is the window's maximum:
elsewhere a later candidate wins on both sides, the network has the same affine map
there, and the two pieces are one region. So, once cut:

* patterns are made **canonical**: a unit's stage bits below its highest set stage are
  cleared, leaving "stage ``s`` active: candidate ``s`` is the argmax" (one-hot; no bit:
  candidate 0). This is the unit's integer state (:func:`pool_states`), exact because the
  raw bits are;
* faces (2D) or pieces (1D) with equal canonical patterns on both sides of a stage's
  edge are merged (:mod:`reluscope.regions.merge`);
* where window ``k``'s argmax changes from ``a`` to ``b`` one neuron switches: stage
  ``max(a, b)``, whose zero line ``x_max(a,b) = x_min(a,b)`` the edge lies on (an
  argmax change flips two canonical bits; :func:`keep_pool_switches` keeps that one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reluscope.nets.recorder import Site


def pool_groups(sites: Sequence[Site]) -> list[list[int]]:
    """Site indices of each max-pool's stages, in stage order (one list per max-pool)."""
    groups: list[list[int]] = []
    for site in sites:
        if site.pool_stage == 1:
            groups.append([site.index])
        elif site.pool_stage > 1:
            groups[-1].append(site.index)
    return groups


def has_pools(sites: Sequence[Site]) -> bool:
    """Whether any site is a max-pool stage."""
    return any(site.pool_stage > 0 for site in sites)


def canonical(sites: Sequence[Site], patterns: Sequence[Any]) -> tuple[Any, ...]:
    """Patterns with every max-pool unit's stage bits cleared below its highest set stage.

    Parameters
    ----------
    sites : sequence of Site
    patterns : sequence of arrays
        One array per site, ``(n, bytes)`` uint8 bit-packed or ``(n, size)`` bool, numpy or
        torch (the same operation: bitwise on packed bytes, elementwise on booleans).

    Returns
    -------
    tuple
        The same arrays for ReLU sites, new ones for max-pool stages.
    """
    out = list(patterns)
    visible = visible_stages(sites, patterns)
    for group in pool_groups(sites):
        for index in group:
            out[index] = patterns[index] & visible[index]
    return tuple(out)


def visible_stages(sites: Sequence[Site], active: Sequence[Any]) -> list[Any]:
    """Where each stage's zero line can be a region boundary: no later stage of its window
    is active (a later candidate beats the running maximum on both sides of it).

    Parameters
    ----------
    sites : sequence of Site
    active : sequence of arrays
        Raw patterns, one per site: numpy uint8 (packed), numpy bool or torch bool, all of
        one kind.

    Returns
    -------
    list
        Per site, an array like ``active[site]``: all ones for ReLU sites (None there for
        speed: callers treat None as "everywhere").
    """
    visible: list[Any] = [None] * len(active)
    for group in pool_groups(sites):
        seen = active[group[-1]] ^ active[group[-1]]  # zeros of the right kind
        for index in reversed(group):
            visible[index] = ~seen
            seen = seen | active[index]
    return visible


def pool_states(sites: Sequence[Site], active: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Argmax of every window of each max-pool, from canonical bool patterns.

    Parameters
    ----------
    sites : sequence of Site
    active : sequence of np.ndarray
        ``(n, size)`` bool canonical patterns, one per site.

    Returns
    -------
    list of np.ndarray
        One ``(n, windows)`` uint8 array per max-pool: the candidate (0 .. K-1) that is
        the window's maximum.
    """
    states = []
    for group in pool_groups(sites):
        state = np.zeros(active[group[0]].shape, dtype=np.uint8)
        for stage, index in enumerate(group, start=1):
            state[active[index]] = stage
        states.append(state)
    return states


def keep_pool_switches(sites: Sequence[Site], pair: np.ndarray, site: np.ndarray,
                       neuron: np.ndarray) -> np.ndarray:
    """Mask of the real switches among differing canonical bits.

    Parameters
    ----------
    sites : sequence of Site
    pair, site, neuron : np.ndarray, shape (m,)
        Differing bits: which pair of faces (or pieces), the site and the neuron.

    Returns
    -------
    np.ndarray, shape (m,), bool
        True for ReLU sites and, for each max-pool window whose argmax differs, for its
        highest differing stage only (one switch per window).
    """
    keep = np.ones(len(site), dtype=bool)
    groups = pool_groups(sites)
    if not groups or not len(site):
        return keep
    group_of = np.full(len(sites), -1, dtype=np.int64)
    for g, group in enumerate(groups):
        group_of[group] = g
    in_pool = np.flatnonzero(group_of[site] >= 0)
    if not len(in_pool):
        return keep
    key = (pair[in_pool].astype(np.int64), group_of[site[in_pool]], neuron[in_pool].astype(np.int64))
    order = np.lexsort((site[in_pool], *reversed(key)))  # by pair, group, neuron, then stage
    sorted_keys = np.stack([k[order] for k in key])
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (sorted_keys[:, 1:] != sorted_keys[:, :-1]).any(axis=0)
    keep[in_pool[order[~last]]] = False
    return keep
