"""Paths through input space: segments, polylines and closed loops (float64)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reluscope._validation import as_float64_tensor, check_device, check_magnitude, describe, message
from reluscope.errors import InputTypeError, InputValueError


@dataclass(frozen=True, eq=False)
class Path:
    """A piecewise-straight path through input space.

    Parameters
    ----------
    points : torch.Tensor, shape (K, *input_shape), float64
        The corners in order (K >= 2). Segment k runs from ``points[k]`` to
        ``points[k + 1]``; along it, ``x(t) = points[k] + t * (points[k+1] - points[k])``
        for ``t`` in [0, 1].
    closed : bool
        Whether a last segment runs from ``points[-1]`` back to ``points[0]``.

    Examples
    --------
    >>> import torch, reluscope as rs
    >>> path = rs.Path.segment(torch.zeros(3), torch.ones(3))
    >>> path.n_segments, round(path.length, 6)
    (1, 1.732051)
    """

    points: torch.Tensor
    closed: bool = False

    def __post_init__(self) -> None:
        points = as_float64_tensor(self.points, "`points` of Path")
        if points.ndim < 2 or points.shape[0] < 2:
            raise InputValueError(message(
                "`points` of Path", "at least 2 points stacked on a first axis, (K, *input_shape)",
                describe(self.points), "Stack the corners with torch.stack([p0, p1, ...])."))
        if not isinstance(self.closed, bool):
            raise InputTypeError(message("`closed` of Path", "a bool", describe(self.closed),
                                         "Pass closed=True for a loop."))
        check_magnitude(float(points.abs().max()), "`points` of Path")
        object.__setattr__(self, "points", points)
        lengths = self.segment_lengths
        if bool((lengths == 0).any()):
            bad = int(torch.nonzero(lengths == 0)[0])
            raise InputValueError(message(
                "`points` of Path", "consecutive corners that differ",
                f"segment {bad} of zero length (two equal consecutive points)",
                "Drop repeated points."))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def segment(cls, a: Any, b: Any) -> Path:
        """The straight segment from `a` to `b` (two inputs of the same shape)."""
        a = as_float64_tensor(a, "`a` of Path.segment")
        b = as_float64_tensor(b, "`b` of Path.segment", device=a.device)
        if a.shape != b.shape:
            raise InputValueError(message("`b` of Path.segment", f"shaped like `a` {tuple(a.shape)}",
                                          describe(b), "Pass two inputs of the same shape."))
        return cls(torch.stack([a, b]), closed=False)

    @classmethod
    def polyline(cls, points: Sequence[Any] | Any, closed: bool = False) -> Path:
        """The polyline through `points` (a sequence of inputs or a stacked tensor)."""
        if isinstance(points, (list, tuple)):
            tensors = [as_float64_tensor(p, f"`points[{i}]` of Path.polyline")
                       for i, p in enumerate(points)]
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) > 1:
                raise InputValueError(message("`points` of Path.polyline", "inputs of one shape",
                                              f"shapes {sorted(shapes)}", "Reshape them alike."))
            points = torch.stack([t.to(tensors[0].device) for t in tensors]) if tensors else points
        return cls(points, closed=closed)  # type: ignore[arg-type]  # validated in __post_init__

    # ------------------------------------------------------------------ geometry
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input (without the corner axis)."""
        return tuple(self.points.shape[1:])

    @property
    def n_segments(self) -> int:
        """Number of straight segments (one more than the open polyline's when closed)."""
        return self.points.shape[0] - 1 + int(self.closed)

    @property
    def starts(self) -> torch.Tensor:
        """(n_segments, *input_shape) start point of each segment."""
        return self.points[: self.n_segments]

    @property
    def directions(self) -> torch.Tensor:
        """(n_segments, *input_shape) end minus start of each segment."""
        ends = torch.roll(self.points, -1, dims=0) if self.closed else self.points[1:]
        return ends[: self.n_segments] - self.starts

    @property
    def segment_lengths(self) -> torch.Tensor:
        """(n_segments,) Euclidean length of each segment in input space."""
        return self.directions.reshape(self.n_segments, -1).norm(dim=1)

    @property
    def length(self) -> float:
        """Total Euclidean length."""
        return float(self.segment_lengths.sum())

    def at(self, arc: Any) -> torch.Tensor:
        """Inputs at arc-length positions ``arc`` (M,) along the path: (M, *input_shape)."""
        arc = as_float64_tensor(arc, "`arc` of Path.at").reshape(-1).to(self.points.device)
        lengths = self.segment_lengths
        ends = torch.cumsum(lengths, 0)
        seg = torch.searchsorted(ends, arc, right=False).clamp(max=self.n_segments - 1)
        t = (arc - (ends[seg] - lengths[seg])) / lengths[seg]
        shape = (-1,) + (1,) * len(self.input_shape)
        return self.starts[seg] + t.reshape(shape) * self.directions[seg]

    def to(self, device: torch.device | str) -> Path:
        """The same path with its points on `device`."""
        device = check_device(device, "`device` of Path.to")
        return Path(self.points.to(device), self.closed)
