"""Local complexity: how many neuron boundaries pass near each data point.

Three estimators, per ReLU site (hidden layer) and in total:

* **Cross-polytope** (Humayun, Balestriero & Baraniuk, ICML 2024): around each point
  ``x`` take the ``2P`` vertices ``x +- r v_p`` of a cross-polytope with orthonormal
  directions ``v_p``; a neuron counts when its pre-activation does not have the same
  sign on all vertices. The frame is drawn afresh for every point from a dedicated
  generator (never the global seed), so counts are not tied to the model's init.
* **Ball**: ``#{neurons z : |z(x)| <= eps ||grad_x z(x)||}``, the neurons whose (locally
  affine) zero set passes within ``eps`` of ``x``.
* **Smooth** (Patel & Montúfar, 2024): ``sum_z ||grad_x z(x)|| phi_sigma(z(x))`` with
  ``phi_sigma`` the N(0, sigma^2) density: a smoothed density of boundaries per unit
  volume near ``x``; with it ``||grad_x f(x)||`` (Frobenius norm of the output's
  Jacobian), the total-variation proxy.

Gradient norms are exact (forward-mode AD along every input axis) when ``probes`` is
None, or estimated from ``k`` Gaussian probes ``g``: ``E[(grad z . g)^2] = ||grad z||^2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reluscope._validation import as_float64_tensor, check_int, check_positive, describe, message
from reluscope.errors import InputValueError
from reluscope.nets.sites import InstrumentedModel, model_device
from reluscope.regions.pools import canonical, visible_stages

#: Entries (samples x neurons) per forward pass, to bound memory.
_CHUNK_ENTRIES = 1 << 24


@dataclass(frozen=True)
class LocalComplexity:
    """Local complexity of a model at N points.

    Attributes
    ----------
    per_site : (N, L) float64
        The measure for each point and ReLU site (hidden layer), in forward order.
    method : str
        ``"cross_polytope"``, ``"ball"`` or ``"smooth"``.
    params : dict
        The estimator's parameters (radius and directions, epsilon, sigma, probes).
    site_names : tuple of str
    gradient_norm : (N,) float64 or None
        ``||grad_x f(x)||`` (smooth method only).
    """

    per_site: np.ndarray
    method: str
    params: dict[str, Any]
    site_names: tuple[str, ...]
    gradient_norm: np.ndarray | None = None

    def first_sites(self, n: int) -> LocalComplexity:
        """The measure restricted to the first `n` sites (a network's prefix, e.g. the
        backbone of backbone + head: its counts at the same points are these columns). The
        output-gradient norm belongs to the whole network and is dropped."""
        if not 0 <= n <= self.per_site.shape[1]:
            raise InputValueError(message("`n` of LocalComplexity.first_sites",
                                          f"in [0, {self.per_site.shape[1]}]", repr(n),
                                          "Pass a number of leading sites."))
        return LocalComplexity(self.per_site[:, :n], self.method, dict(self.params), self.site_names[:n])

    @property
    def total(self) -> np.ndarray:
        """(N,) summed over sites."""
        return self.per_site.sum(axis=1)

    def summary(self, prefix: str | None = None) -> dict[str, float]:
        """Means over the points: ``{prefix}total`` and ``{prefix}site{l}``."""
        prefix = f"lc_{self.method}_" if prefix is None else prefix
        out = {f"{prefix}total": float(self.total.mean())}
        for i in range(self.per_site.shape[1]):
            out[f"{prefix}site{i}"] = float(self.per_site[:, i].mean())
        if self.gradient_norm is not None:
            out[f"{prefix}gradient_norm"] = float(self.gradient_norm.mean())
        return out


def _prepare(model: nn.Module, points: Any, where: str) -> tuple[InstrumentedModel, torch.Tensor]:
    device = model_device(model) if isinstance(model, nn.Module) else "cpu"
    x = as_float64_tensor(points, f"`points` of {where}", device=device)
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputValueError(message(f"`points` of {where}", "a batch of inputs (N, *input_shape), N >= 1",
                                      describe(points), "Stack the points on a first axis."))
    return InstrumentedModel(model, x[:1], where), x


def random_frames(n: int, input_shape: tuple[int, ...], n_directions: int,
                  generator: torch.Generator) -> torch.Tensor:
    """A random orthonormal frame for each of n points: (n, P, *input_shape) float64.

    QR of a Gaussian (d, P) matrix per point (Haar-distributed columns after fixing signs).
    """
    d = int(np.prod(input_shape))
    gauss = torch.randn(n, d, n_directions, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
    return q.transpose(1, 2).reshape(n, n_directions, *input_shape)


def cross_polytope_lc(model: nn.Module, points: Any, radius: float, n_directions: int = 25, *,
                      generator: torch.Generator | None = None, frames: Any = None,
                      dtype: torch.dtype = torch.float64) -> LocalComplexity:
    """Cross-polytope local complexity (Humayun et al., ICML 2024).

    Parameters
    ----------
    model : nn.Module
    points : (N, *input_shape) array-like
    radius : float
        Distance from each point to the vertices ``x +- r v_p``.
    n_directions : int
        P, the number of orthonormal directions (2P vertices); at most the input dimension.
    generator : torch.Generator, optional
        Source of the frames (default: a new generator seeded 0). The global seed is
        never used or changed.
    frames : (N, P, *input_shape) array-like, optional
        Explicit orthonormal directions per point (overrides the random frames).
    dtype : torch.dtype
        Precision of the vertex forward pass; float32 is ~2x faster on CPU and may
        misjudge neurons within ~1e-6 of zero at a vertex.

    Returns
    -------
    LocalComplexity
        ``per_site[i, l]``: neurons of site l whose sign changes over point i's vertices.
    """
    net, x = _prepare(model, points, "cross_polytope_lc")
    r = check_positive(radius, "`radius` of cross_polytope_lc")
    n, shape = x.shape[0], tuple(x.shape[1:])
    d = int(np.prod(shape))
    if frames is None:
        check_int(n_directions, "`n_directions` of cross_polytope_lc (at most the input dimension)",
                  high=d, example="n_directions=25")
        gen = torch.Generator().manual_seed(0) if generator is None else generator
        dirs = random_frames(n, shape, n_directions, gen).to(x.device)
    else:
        dirs = as_float64_tensor(frames, "`frames` of cross_polytope_lc", device=x.device)
        if dirs.ndim != x.ndim + 1 or dirs.shape[0] != n or tuple(dirs.shape[2:]) != shape:
            raise InputValueError(message("`frames` of cross_polytope_lc", f"of shape ({n}, P, *{shape})",
                                          describe(frames), "Give P directions per point."))
    p = dirs.shape[1]
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in net.state.items()}
    counts = np.zeros((n, len(net.sites)))
    step = max(1, _CHUNK_ENTRIES // (2 * p * sum(s.size for s in net.sites)))
    for lo in range(0, n, step):
        xs, vs = x[lo: lo + step], dirs[lo: lo + step]
        offset = r * vs
        vertices = torch.empty((len(xs), 2 * p, *shape), dtype=x.dtype, device=x.device)  # (m, 2P, ...)
        torch.add(xs[:, None], offset, out=vertices[:, :p])  # written in place: no concatenated copy
        torch.sub(xs[:, None], offset, out=vertices[:, p:])
        ran = _forward_in(net, state, vertices.reshape(-1, *shape).to(dtype))
        # a max-pool window counts once, when its argmax changes (reluscope.regions.pools)
        positive = canonical(net.sites, [(z > 0).reshape(len(xs), 2 * p, -1) for z in ran])
        changes = canonical(net.sites, [b.any(dim=1) & ~b.all(dim=1) for b in positive])
        for i, change in enumerate(changes):
            counts[lo: lo + len(xs), i] = change.sum(dim=1).cpu().numpy()
    return LocalComplexity(counts, "cross_polytope", {"radius": r, "n_directions": p},
                           tuple(s.name for s in net.sites))


def _forward_in(net: InstrumentedModel, state: dict[str, torch.Tensor], x: torch.Tensor
                ) -> list[torch.Tensor]:
    """Pre-activations of every site with the given parameter dtype (a plain pass)."""
    saved = net.state
    net.state = state
    try:
        ran = net.forward(x)
    finally:
        net.state = saved
    net.check_sites(ran.sites, None)
    return [r[0] for r in ran.records]


def _values_and_gradient_norms(net: InstrumentedModel, x: torch.Tensor, probes: int | None,
                               generator: torch.Generator | None, where: str
                               ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
    """Pre-activations (N, size), their input-gradient norms (N, size) per site, and the
    output Jacobian's Frobenius norm (N,) (None if the output is not one tensor)."""
    n, shape = x.shape[0], tuple(x.shape[1:])
    d = int(np.prod(shape))
    if probes is not None:
        check_int(probes, f"`probes` of {where}", example="probes=64, or None for exact norms")
    k = d if probes is None else probes
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    width = sum(s.size for s in net.sites) + 1
    step = max(1, _CHUNK_ENTRIES // (width * (k + 1)))
    values: list[list[np.ndarray]] = [[] for _ in net.sites]
    norms: list[list[np.ndarray]] = [[] for _ in net.sites]
    out_norm: list[np.ndarray] = []
    for lo in range(0, n, step):
        xs = x[lo: lo + step]
        m = xs.shape[0]
        if probes is None:  # every input axis: exact squared norms
            axes = torch.eye(d, dtype=torch.float64, device=x.device)
            dirs = axes.reshape(d, 1, *shape).expand(d, m, *shape)
            scale = 1.0
        else:
            dirs = torch.randn(k, m, *shape, generator=gen, dtype=torch.float64).to(x.device)
            scale = 1.0 / k
        ran = net.forward(xs, directions=dirs)
        net.check_sites(ran.sites, None)
        for i, rec in enumerate(ran.records):
            values[i].append(rec[0].cpu().numpy())
            norms[i].append(torch.sqrt(scale * (rec[1:] ** 2).sum(0)).cpu().numpy())
        if ran.output is not None:
            out_norm.append(torch.sqrt(scale * (ran.output[1:] ** 2).sum(dim=(0, 2))).cpu().numpy())
    return ([np.concatenate(v) for v in values], [np.concatenate(g) for g in norms],
            np.concatenate(out_norm) if out_norm else None)


def _visible(net: InstrumentedModel, values: list[np.ndarray]) -> list[np.ndarray | None]:
    """Per site, where a neuron's zero set can bound a region at the points: a max-pool
    stage only where no later candidate of its window beats the running maximum (None:
    everywhere). First order in the radius, like the estimators that use it."""
    return visible_stages(net.sites, [z > 0 for z in values])


def ball_lc(model: nn.Module, points: Any, epsilon: float, *, probes: int | None = None,
            generator: torch.Generator | None = None) -> LocalComplexity:
    """Neurons whose zero set passes within `epsilon` of each point (locally affine).

    ``per_site[i, l] = #{z in site l : |z(x_i)| <= epsilon ||grad_x z(x_i)||}``; dead
    directions (zero gradient) never count.

    Parameters
    ----------
    model : nn.Module
    points : (N, *input_shape) array-like
    epsilon : float
    probes : int, optional
        Gaussian probes for the gradient norms (None: exact, one pass per input axis).
    generator : torch.Generator, optional
        Source of the probes (default: a new generator seeded 0).
    """
    net, x = _prepare(model, points, "ball_lc")
    eps = check_positive(epsilon, "`epsilon` of ball_lc")
    values, norms, _ = _values_and_gradient_norms(net, x, probes, generator, "ball_lc")
    near = [(np.abs(z) <= eps * g) & (g > 0) for z, g in zip(values, norms, strict=True)]
    near = [n if v is None else n & v for n, v in zip(near, _visible(net, values), strict=True)]
    counts = np.stack([n.sum(axis=1) for n in near], 1)
    return LocalComplexity(counts.astype(np.float64), "ball", {"epsilon": eps, "probes": probes},
                           tuple(s.name for s in net.sites))


def smooth_lc(model: nn.Module, points: Any, sigma: float, *, probes: int | None = None,
              generator: torch.Generator | None = None) -> LocalComplexity:
    """Smooth local complexity (Patel & Montúfar, 2024) and the output gradient norm.

    ``per_site[i, l] = sum_{z in site l} ||grad_x z(x_i)|| phi_sigma(z(x_i))``, with
    ``phi_sigma(u) = exp(-u^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``. As sigma -> 0 its mean
    over a region tends to the boundary (d-1)-volume per unit volume there.

    Parameters
    ----------
    model : nn.Module
    points : (N, *input_shape) array-like
    sigma : float
    probes : int, optional
        Gaussian probes for the gradient norms (None: exact).
    generator : torch.Generator, optional
    """
    net, x = _prepare(model, points, "smooth_lc")
    s = check_positive(sigma, "`sigma` of smooth_lc")
    values, norms, out_norm = _values_and_gradient_norms(net, x, probes, generator, "smooth_lc")
    density = [np.exp(-0.5 * (z / s) ** 2) / (s * np.sqrt(2 * np.pi)) for z in values]
    density = [d if v is None else d * v for d, v in zip(density, _visible(net, values), strict=True)]
    per_site = np.stack([(g * phi).sum(axis=1) for g, phi in zip(norms, density, strict=True)], 1)
    return LocalComplexity(per_site, "smooth", {"sigma": s, "probes": probes},
                           tuple(si.name for si in net.sites), out_norm)
