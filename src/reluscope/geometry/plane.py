"""A 2D affine slice of input space, with a convex polygonal domain.

The point at plane coordinates ``(s, t)`` is ``origin + s * basis[0] + t * basis[1]``.
The domain is a convex polygon in plane coordinates (by default the rectangle given
by ``extent``), stored counter-clockwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from reluscope._validation import (
    as_float64_tensor,
    check_device,
    check_interval_pair,
    check_magnitude,
    check_positive,
    describe,
    message,
)
from reluscope.errors import InputTypeError, InputValueError

#: Relative tolerance below which three points are treated as collinear.
COLLINEAR_RTOL = 1e-10


def _rectangle(extent: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
    (s0, s1), (t0, t1) = extent
    return np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]], dtype=np.float64)


def _check_convex_polygon(domain: Any) -> np.ndarray:
    """Validate a convex polygon (K, 2) and return it counter-clockwise as float64."""
    poly = np.asarray(domain, dtype=np.float64) if not isinstance(domain, torch.Tensor) \
        else domain.detach().cpu().to(torch.float64).numpy()
    where = "`domain` of Plane"
    if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
        raise InputValueError(message(where, "an array of shape (K, 2) with K >= 3 vertices",
                                      describe(poly), "List the polygon's corners in order."))
    if not np.isfinite(poly).all():
        raise InputValueError(message(where, "finite", "non-finite coordinates",
                                      "Remove NaN/inf corners."))
    x, y = poly[:, 0], poly[:, 1]
    area2 = float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    if area2 < 0:
        poly = poly[::-1].copy()
    scale = float(np.ptp(poly, axis=0).max())
    if abs(area2) <= 1e-12 * scale * scale:
        raise InputValueError(message(where, "a polygon with positive area", "a degenerate polygon",
                                      "Give corners that are not all on one line."))
    edge = np.roll(poly, -1, axis=0) - poly
    turn = edge[:, 0] * np.roll(edge, -1, axis=0)[:, 1] - edge[:, 1] * np.roll(edge, -1, axis=0)[:, 0]
    if (turn < -1e-12 * scale * scale).any():
        raise InputValueError(message(where, "convex", "a non-convex polygon",
                                      "Use the convex hull of your corners, or split the domain."))
    return np.ascontiguousarray(poly)


@dataclass(frozen=True, eq=False)
class Plane:
    """A bounded 2D slice of input space.

    Parameters
    ----------
    origin : torch.Tensor, shape (*input_shape), float64
        The point at plane coordinates (0, 0).
    basis : torch.Tensor, shape (2, *input_shape), float64
        The two directions; ``basis[0]`` is the s-axis, ``basis[1]`` the t-axis.
        They need not be orthonormal, only linearly independent.
    extent : ((s_min, s_max), (t_min, t_max))
        Bounding box of the domain in plane coordinates.
    domain : numpy.ndarray, shape (K, 2), optional
        Convex polygon in plane coordinates (counter-clockwise after validation).
        Defaults to the rectangle ``extent``.

    Examples
    --------
    >>> import torch, reluscope as rs
    >>> x = torch.eye(3)
    >>> plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    >>> plane.to_input(torch.zeros(1, 2)).shape
    torch.Size([1, 3])
    """

    origin: torch.Tensor
    basis: torch.Tensor
    extent: tuple[tuple[float, float], tuple[float, float]]
    domain: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        origin = as_float64_tensor(self.origin, "`origin` of Plane")
        basis = as_float64_tensor(self.basis, "`basis` of Plane", device=origin.device)
        if basis.ndim < 2 or basis.shape[0] != 2 or tuple(basis.shape[1:]) != tuple(origin.shape):
            raise InputValueError(message(
                "`basis` of Plane", f"of shape (2, {', '.join(map(str, origin.shape))}) "
                "(two directions shaped like `origin`)", describe(self.basis),
                "Stack two direction tensors shaped like the origin."))
        flat = basis.reshape(2, -1)
        gram = flat @ flat.T
        det = float(gram[0, 0] * gram[1, 1] - gram[0, 1] ** 2)
        if det <= COLLINEAR_RTOL * float(gram[0, 0] * gram[1, 1]) or float(gram.diagonal().min()) == 0:
            raise InputValueError(message(
                "`basis` of Plane", "two linearly independent directions",
                "parallel or zero directions", "Pick directions that span a plane."))
        extent = check_interval_pair(self.extent, "`extent` of Plane")
        domain = _rectangle(extent) if self.domain is None else _check_convex_polygon(self.domain)
        if self.domain is not None:
            extent = ((float(domain[:, 0].min()), float(domain[:, 0].max())),
                      (float(domain[:, 1].min()), float(domain[:, 1].max())))
        reach = max(abs(v) for pair in extent for v in pair) * float(flat.norm(dim=1).max())
        check_magnitude(float(origin.abs().max()) + reach, "the domain of Plane")
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "extent", extent)
        object.__setattr__(self, "domain", domain)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def through(cls, x0: Any, x1: Any, x2: Any, margin: float = 0.2) -> Plane:
        """The plane through three points, with a square domain around them.

        The basis is orthonormal (Gram–Schmidt on ``x1 - x0`` and ``x2 - x0``), the origin is
        the centroid of the three points, and the domain is the square of half-width
        ``(1 + margin) * max |plane coordinate of the points|`` centred at the origin.

        Parameters
        ----------
        x0, x1, x2 : array-like, shape (*input_shape)
            Three points that are not on one line.
        margin : float
            Relative growth of the square beyond the farthest point (>= 0).
        """
        points = [as_float64_tensor(x, f"`x{i}` of Plane.through") for i, x in enumerate((x0, x1, x2))]
        shapes = {tuple(p.shape) for p in points}
        if len(shapes) != 1:
            raise InputValueError(message(
                "the points of Plane.through", "three tensors of the same shape",
                f"shapes {[tuple(p.shape) for p in points]}", "Pass three inputs of one shape."))
        device = points[0].device
        points = [p.to(device) for p in points]
        try:
            margin = float(margin)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(message("`margin` of Plane.through", "a number >= 0",
                                         describe(margin), "Pass e.g. margin=0.2.")) from exc
        if not (np.isfinite(margin) and margin >= 0):
            raise InputValueError(message("`margin` of Plane.through", "a finite number >= 0",
                                          repr(margin), "Pass e.g. margin=0.2."))
        shape = points[0].shape
        flat = torch.stack([p.reshape(-1) for p in points])
        d1 = flat[1] - flat[0]
        d2 = flat[2] - flat[0]
        n1 = torch.linalg.vector_norm(d1)
        if float(n1) == 0.0:
            raise InputValueError(message(
                "the points of Plane.through", "three distinct points not on one line",
                "x0 == x1", "Pick three different inputs."))
        b0 = d1 / n1
        d2 = d2 - (b0 @ d2) * b0
        n2 = torch.linalg.vector_norm(d2)
        scale = float(torch.linalg.vector_norm(flat[2] - flat[0]))
        if float(n2) <= COLLINEAR_RTOL * max(scale, float(n1)):
            raise InputValueError(message(
                "the points of Plane.through", "three points not on one line",
                "points that are collinear (rank 1)", "Pick three points that are not on one line."))
        b1 = d2 / n2
        origin = flat.mean(dim=0)
        coords = (flat - origin) @ torch.stack([b0, b1]).T
        half = (1.0 + margin) * float(coords.abs().max())
        return cls(origin.reshape(shape), torch.stack([b0, b1]).reshape(2, *shape),
                   ((-half, half), (-half, half)))

    @classmethod
    def around(cls, x: Any, radius: float, generator: torch.Generator | None = None) -> Plane:
        """A random plane through ``x``: two random orthonormal directions, domain ``[-r, r]^2``.

        Parameters
        ----------
        x : array-like, shape (*input_shape)
            The centre (plane origin).
        radius : float
            Half-width of the square domain.
        generator : torch.Generator, optional
            Source of randomness; pass a seeded generator for reproducible planes.
            The global torch seed is never touched.
        """
        centre = as_float64_tensor(x, "`x` of Plane.around")
        radius = check_positive(radius, "`radius` of Plane.around")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputTypeError(message("`generator` of Plane.around", "a torch.Generator or None",
                                         describe(generator), "Pass torch.Generator().manual_seed(0)."))
        dim = centre.numel()
        if dim < 2:
            raise InputValueError(message("`x` of Plane.around", "an input with at least 2 entries",
                                          describe(x), "Planes need a 2D (or larger) input space."))
        gauss = torch.randn(dim, 2, generator=generator, dtype=torch.float64)
        q, _ = torch.linalg.qr(gauss)
        basis = q.T.reshape(2, *centre.shape).to(centre.device)
        return cls(centre, basis, ((-radius, radius), (-radius, radius)))

    # ------------------------------------------------------------------ helpers
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input point."""
        return tuple(self.origin.shape)

    @property
    def polygon(self) -> np.ndarray:
        """The domain polygon (K, 2), counter-clockwise (always set after construction)."""
        return cast(np.ndarray, self.domain)

    @property
    def area(self) -> float:
        """Area of the domain polygon (plane units)."""
        x, y = self.polygon[:, 0], self.polygon[:, 1]
        return float(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))

    @property
    def diameter(self) -> float:
        """Length of the diagonal of the domain's bounding box."""
        (s0, s1), (t0, t1) = self.extent
        return float(np.hypot(s1 - s0, t1 - t0))

    def to(self, device: torch.device | str) -> Plane:
        """The same plane with origin and basis on `device`."""
        device = check_device(device, "`device` of Plane.to")
        return Plane(self.origin.to(device), self.basis.to(device), self.extent, self.domain)

    def to_input(self, coords: Any) -> torch.Tensor:
        """Map plane coordinates (N, 2) to input points (N, *input_shape), float64."""
        st = as_float64_tensor(coords, "`coords` of Plane.to_input", device=self.origin.device)
        if st.ndim != 2 or st.shape[1] != 2:
            raise InputValueError(message("`coords` of Plane.to_input", "of shape (N, 2)",
                                          describe(coords), "Stack (s, t) pairs as rows."))
        flat = self.origin.reshape(1, -1) + st @ self.basis.reshape(2, -1)
        return flat.reshape(st.shape[0], *self.input_shape)

    def coordinates(self, points: Any) -> torch.Tensor:
        """Plane coordinates (N, 2) of input points (N, *input_shape), by least squares.

        Exact for points on the plane; for other points, the coordinates of their
        orthogonal projection (with respect to the basis' span).
        """
        x = as_float64_tensor(points, "`points` of Plane.coordinates", device=self.origin.device)
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputValueError(message("`points` of Plane.coordinates",
                                          f"of shape (N, {', '.join(map(str, self.input_shape))})",
                                          describe(points), "Pass a batch of inputs."))
        flat = (x.reshape(x.shape[0], -1) - self.origin.reshape(1, -1))
        b = self.basis.reshape(2, -1)
        return torch.linalg.solve(b @ b.T, b @ flat.T).T
