"""A model instrumented on one plane: pre-activations and affine maps in plane coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError
from reluscope.geometry.plane import Plane
from reluscope.nets.links import Link
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
                 dense_fraction: float = 0.25) -> None:
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
                   previous: torch.Tensor | None = None) -> torch.Tensor | None:
        """Affine maps of `site` by propagating through the links, or None if a link is missing.

        Parameters
        ----------
        masks : list of torch.Tensor
            ``masks[m]`` (N, size_m) bool for the sites ``m < site``.
        site : int
        previous : torch.Tensor, optional
            (3, N, size_{site-1}) maps of the previous site on the same regions (saves
            recomputing them from site 0).

        Returns
        -------
        torch.Tensor of shape (3, N, size_site), or None
            ``[0]``: value at the plane's origin, ``[1]``: slope along s, ``[2]``: along t
            (each a contiguous (N, size) block).
        """
        first = site if previous is not None else 1
        links = [self.link(m) for m in range(first, site + 1)]
        if site == 0 or any(link is None for link in links):
            return None
        n = masks[0].shape[0]
        if previous is None:
            maps = self.site0_maps().expand(3, n, -1)
        else:
            maps = previous.to(self.device)
        for m, link in enumerate(links, start=first):
            maps = apply_link(maps, masks[m - 1], self.sites[m - 1], link)  # type: ignore[arg-type]
        return maps

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
