"""A model instrumented on one plane: pre-activations and affine maps in plane coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError
from reluscope.geometry.plane import Plane
from reluscope.nets.links import Link
from reluscope.nets.recorder import PoolSource
from reluscope.nets.sites import InstrumentedModel, Site, model_device


class Network(InstrumentedModel):
    """A model prepared for exact analysis on one plane (float64, instrumented).

    Parameters
    ----------
    model : nn.Module
        Any network whose nonlinearities are ReLU/LeakyReLU.
    plane : Plane
        The slice; the model is probed at its origin and the corners of its domain.
    where : str
        Name of the public function, for error messages.
    dense_fraction : float
        See :class:`~reluscope.nets.sites.InstrumentedModel`.
    """

    input_noun = "inputs shaped like the plane's origin"

    def __init__(self, model: nn.Module, plane: Plane, where: str = "slice_regions",
                 dense_fraction: float = 0.1) -> None:
        if not isinstance(plane, Plane):
            raise InputTypeError(message(f"`plane` of {where}", "a reluscope.Plane",
                                         describe(plane),
                                         "Build one with Plane.through(x0, x1, x2) or Plane(...)."))
        self.plane = plane
        device = model_device(model, plane.origin.device) if isinstance(model, nn.Module) else "cpu"
        self.origin = plane.origin.to(device)
        self.basis = plane.basis.to(device)
        self._site0: torch.Tensor | None = None
        # the same ReLU calls must happen everywhere: probe the domain's corners too
        corners = torch.cat([torch.zeros(1, 2, dtype=torch.float64), torch.from_numpy(plane.polygon)])
        super().__init__(model, self._inputs(corners), where, dense_fraction)

    def _inputs(self, coords: torch.Tensor) -> torch.Tensor:
        coords = coords.to(self.origin.device)
        flat = self.origin.reshape(1, -1) + coords @ self.basis.reshape(2, -1)
        return flat.reshape(coords.shape[0], *self.origin.shape)

    def _directions(self, n: int) -> torch.Tensor:
        """The plane's two directions for each of n samples: (2, n, *input_shape)."""
        return self.basis[:, None].expand(2, n, *self.origin.shape)

    def plane_preactivations(self, coords: torch.Tensor, upto: int | None = None
                             ) -> list[torch.Tensor]:
        """Pre-activations of every site at plane points ``coords`` (N, 2) float64.

        Returns
        -------
        list of torch.Tensor, each (N, size_l), float64, on the model's device.
        """
        return self.preactivations(self._inputs(coords), upto)

    def chain_maps(self, masks: Sequence[torch.Tensor], site: int,
                   previous: torch.Tensor | None = None,
                   pool_difference: float | None = None) -> torch.Tensor | None:
        """Affine maps of `site` by propagating through the links, or None if a link is missing.

        A max-pool of a site's activation is no gap in the chain: under forced patterns its
        stage ``s`` is candidate ``s`` minus the candidate of the highest active earlier stage
        (the running maximum), and its output goes on through the pool's link (see
        :meth:`~reluscope.nets.sites.InstrumentedModel.pool_link`).

        Parameters
        ----------
        masks : list of torch.Tensor
            ``masks[m]`` (N, size_m) bool for the sites ``m < site``.
        site : int
        previous : torch.Tensor, optional
            (3, N, size_{site-1}) maps of the previous site on the same regions (saves
            recomputing them from site 0 when `site` has a link).
        pool_difference : float, optional
            A pool's output goes through its link as the first region's product plus the
            differences (:meth:`~reluscope.nets.links.Link.linear_from_first`) when at most
            this fraction of its units differ between the regions (regions next to each other
            share most of their argmaxes); None: always the plain product.

        Returns
        -------
        torch.Tensor of shape (3, N, size_site), or None
            ``[0]``: value at the plane's origin, ``[1]``: slope along s, ``[2]``: along t
            (each a contiguous (N, size) block).
        """
        if site == 0 or not self.chained(site):
            return None
        link = self.link(site)
        if previous is not None and link is not None:
            return apply_link(previous.to(self.device), masks[site - 1], self.sites[site - 1], link)
        n = masks[0].shape[0]
        maps = self.site0_maps().expand(3, n, -1)
        kept: dict[int, torch.Tensor] = {}  # pooled sites' maps, while their pool is ahead
        for m in range(1, site + 1):
            if self.pool_read_by_next(m - 1) is not None:  # (its pool is at m <= site)
                kept[m - 1] = maps
            source = self._from_kept(m, kept)
            if source is None:
                maps = apply_link(maps, masks[m - 1], self.sites[m - 1], self.link(m))  # type: ignore[arg-type]
                continue
            stage = self.sites[m].pool_stage
            if stage and m < site and self._from_kept(m + 1, kept) is not None:
                continue  # a stage's maps feed nothing: the next one gathers candidates again
            upto = stage or source.candidates.shape[0]  # the pool's output: stage K
            first = m - upto + 1  # the pool's first stage
            stages = [masks[t] for t in range(first, m)]
            maps = window_maps(kept[source.site], masks[source.site], self.sites[source.site],
                               source.candidates, stages, upto)
            if not stage:  # the pool's output, through its link
                pool_link = self.pool_link(m)
                assert pool_link is not None
                out = None if pool_difference is None \
                    else pool_link.linear_from_first(maps, pool_difference)
                if out is None:
                    out = pool_link.linear(maps.reshape(3 * n, -1)).reshape(3, n, -1)
                out[0] += pool_link.bias
                maps = out
        return maps

    def chained(self, site: int) -> bool:
        """Can :meth:`chain_maps` reach `site`: every site up to it has a link, or is a stage
        of a max-pool of a site's activation, or follows such a pool with a pool link?"""
        return all(self.link(m) is not None or self.pool_into(m) is not None
                   for m in range(1, site + 1))

    def _from_kept(self, m: int, kept: dict[int, torch.Tensor]) -> PoolSource | None:
        """The pool whose kept source maps give site `m`'s (a stage of it, or the site after
        it through the pool's link), or None: site `m` comes through its own link."""
        source = self.pool_into(m)
        return source if source is not None and source.site in kept else None

    def site0_maps(self) -> torch.Tensor:
        """(3, 1, size_0) origin-form map of the first site: affine on the whole plane.

        Plain forward passes at the plane's origin and one unit along each direction
        give the value and the two slopes (by differences, exact up to rounding of the
        order of the values; no forward-mode pass, whose first use costs seconds).
        """
        if self._site0 is None:
            coords = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
            z = self.plane_preactivations(coords, 0)[0]
            self._site0 = torch.stack([z[0], z[1] - z[0], z[2] - z[0]])[:, None]
        return self._site0

    def site0_values(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, size_0) pre-activations of the first site at plane points ``coords`` (N, 2).

        The same values as a forward pass (to rounding) at 2 multiply-adds per neuron.
        """
        return at_points(self.site0_maps(), coords.to(self.device))[0]

    def affine_maps(self, coords: torch.Tensor, masks: Sequence[torch.Tensor], site: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact affine map of site `site` on the regions given by forced patterns.

        With the patterns of sites ``0..site-1`` fixed to `masks`, the pre-activation of
        `site` is an affine function of the plane coordinates; this returns its value at
        `coords` and its two slopes.

        Parameters
        ----------
        coords : torch.Tensor, shape (N, 2), float64
            Reference points (any point; usually inside the region).
        masks : list of torch.Tensor
            ``masks[m]`` has shape (N, size_m), bool, for every site ``m < site``.
        site : int

        Returns
        -------
        value, ds, dt : torch.Tensor, each (N, size_site), float64
            ``z(p) = value + ds * (p_s - s_ref) + dt * (p_t - t_ref)``.
        """
        chained = self.chain_maps(masks, site) if site > 0 else None
        if chained is not None:
            return at_points(chained, coords.to(self.device))
        return self._generic_maps(coords, masks, site)

    def _generic_maps(self, coords: torch.Tensor, masks: Sequence[torch.Tensor], site: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Affine maps by one masked forward-mode pass from the input (any architecture)."""
        n = coords.shape[0]
        full = [*masks, torch.ones(n, self.sites[site].size, dtype=torch.bool, device=self.device)]
        ran = self.forward(self._inputs(coords), masks=full, stop_after=site,
                           directions=self._directions(n))
        self.check_sites(ran.sites, site)
        value, ds, dt = ran.records[site]
        return value, ds, dt


def apply_link(maps: torch.Tensor, mask: torch.Tensor, site: Site, link: Link) -> torch.Tensor:
    """Push affine maps through a site's activation and the link after it.

    Parameters
    ----------
    maps : torch.Tensor, shape (1 + D, N, size_prev)
        Value (at a reference point) then D slopes of the pre-activation of `site`.
    mask : torch.Tensor, shape (N, size_prev), bool
        Activation pattern of `site` on each of the N pieces.
    site : Site
        The site (for its negative slope).
    link : Link
        The link to the next site (or the output).

    Returns
    -------
    torch.Tensor, shape (1 + D, N, size_next)
    """
    k, n = maps.shape[0], maps.shape[1]
    gate = mask.to(device=maps.device, dtype=torch.float64)
    if site.negative_slope != 0.0:
        gate = gate + site.negative_slope * (1.0 - gate)
    gated = (maps * gate[None]).reshape(k * n, -1)
    # one pass for the value and every slope; the slopes carry no bias
    out = link.linear(gated).reshape(k, n, -1)
    out[0] += link.bias
    return out


def window_maps(source: torch.Tensor, mask: torch.Tensor, site: Site, candidates: np.ndarray,
                stages: Sequence[torch.Tensor], stage: int) -> torch.Tensor:
    """Maps of a max-pool's stage, or of its output, from the pooled site's maps.

    Parameters
    ----------
    source : torch.Tensor, shape (3, N, size)
        Maps of the pooled site's pre-activation on N pieces.
    mask : torch.Tensor, shape (N, size), bool
        Its activation pattern there.
    site : Site
        The pooled site (for its negative slope).
    candidates : np.ndarray, shape (K, windows), int64
        Unit of that site that is candidate ``s`` of each window.
    stages : list of torch.Tensor
        Patterns (N, windows) bool of stages ``1 .. stage-1``.
    stage : int
        ``1 .. K-1``: that stage's pre-activation, candidate ``stage`` minus the candidate of
        the highest active earlier stage (0 if none: the running maximum under forced
        patterns); ``K``: the pool's output, that candidate itself.

    Returns
    -------
    torch.Tensor, shape (3, N, windows)
    """
    device = source.device
    cand = torch.tensor(candidates, device=device)  # (a copy: the table is read-only)
    n, windows = source.shape[1], cand.shape[1]
    winner = torch.zeros(n, windows, dtype=torch.long, device=device)  # candidate index
    for t, active in enumerate(stages, start=1):
        winner = torch.where(active.to(device).reshape(n, windows), t, winner)
    mask = mask.to(device).reshape(n, -1)
    off = torch.tensor(site.negative_slope, dtype=torch.float64, device=device)
    one = torch.ones((), dtype=torch.float64, device=device)

    def activation(units: torch.Tensor) -> torch.Tensor:  # (N, windows) unit ids -> (3, N, windows)
        gate = torch.where(mask.gather(1, units), one, off)  # only the gathered units' gates
        return source.gather(2, units[None].expand(3, n, windows)) * gate[None]

    best = activation(cand.gather(0, winner))
    if stage >= len(cand):
        return best
    return activation(cand[stage].expand(n, windows)) - best


def at_points(maps: torch.Tensor, coords: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Origin-form maps (3, N, n) -> (value at `coords` (N, 2), slope s, slope t)."""
    value = torch.addcmul(maps[0], maps[1], coords[:, :1])
    value.addcmul_(maps[2], coords[:, 1:])
    return value, maps[1], maps[2]


def discover_sites(model: nn.Module, plane: Plane) -> list[Site]:
    """List the ReLU sites of `model` in call order (a probe pass at the plane's origin).

    Raises
    ------
    UnsupportedModelError
        If the forward uses an operation the exact engines cannot analyse.
    """
    return Network(model, plane, where="discover_sites").sites
