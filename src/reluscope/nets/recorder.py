"""Which torch calls are ReLU sites, which are refused, and the mode that records them.

A *site* is one call of a ReLU (or LeakyReLU) during the forward pass; the same
module called twice gives two sites. Other piecewise-linear units are written as ReLUs of
affine functions, followed by an affine combination (the engines then see ReLU sites only,
and the combination belongs to the link to the next site):

* ``abs(z)``: a LeakyReLU of slope -1;
* ``hardtanh(z, a, b)`` (``nn.Hardtanh``, ``nn.ReLU6``, ``clamp(z, a, b)``): a site of twice
  the size with pre-activations ``(z - a, z - b)`` stacked on a new first axis, combined as
  ``a + relu(z - a) - relu(z - b)``; ``clamp_min(z, a) = a + relu(z - a)``,
  ``clamp_max(z, b) = b - relu(b - z)``;
* ``prelu(z, w)``: one shared slope is a LeakyReLU; per-channel slopes give pre-activations
  ``(z, -z)`` combined as ``relu(z) - w relu(-z)`` (two neurons per unit, coincident);
* ``maximum(a, b) = b + relu(a - b)`` and ``minimum(a, b) = a - relu(a - b)`` of two
  tensors (``torch.max``/``torch.min`` of two tensors too);
* max-pooling (``nn.MaxPool1d/2d``, ``F.max_pool1d/2d`` with any kernel, stride and
  dilation, overlapping windows included; ``adaptive_max_pool1d/2d`` when the output size
  divides the input's): a running maximum over each window's ``K`` candidates,
  ``m_0 = x_0``, ``m_s = m_{s-1} + relu(x_s - m_{s-1})``: ``K - 1`` *stage* sites, one unit
  per window. The engines then merge the pieces a stage cuts without changing any window's
  argmax (:mod:`reluscope.regions.pools`), so regions are where every argmax is constant.
  Overlapping windows compare some pairs of candidates twice, at different stages: those
  lines coincide, and the engines treat coincident lines of different sites as one edge.

Sites are found by intercepting torch
functions (a ``TorchFunctionMode``), so ``nn.ReLU``, ``F.relu``, ``torch.relu``,
``Tensor.relu`` and the ATen operators of a ``torch.export`` graph all work, inside any
nesting of modules, with residual additions, convolutions, average pooling and BatchNorm
in eval mode.

Operations that are not piecewise affine with ReLU breakpoints (GELU, tanh, softmax,
layer norm, comparisons and masks, max-pooling with padding, ...) and modules in training
mode (BatchNorm using batch statistics, active Dropout) are refused with the module path that called
them. ATen operators are checked against a list of affine ones instead (the namespace is
too large for a list of refusals).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from reluscope._validation import describe, message
from reluscope.errors import InputValueError, UnsupportedModelError

_RELU_FUNCS: set[Any] = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
                         torch.Tensor.relu_}
_LEAKY_FUNCS: set[Any] = {F.leaky_relu, F.leaky_relu_}

# Names of torch functions that break piecewise affinity (or hide breakpoints the
# engines do not track). Matched on the function's __name__ so every alias is caught.
_REFUSED = {
    "gelu", "silu", "sigmoid", "tanh", "softplus", "elu", "selu", "celu", "mish",
    "hardswish", "hardsigmoid", "hardshrink", "softshrink",
    "tanhshrink", "logsigmoid", "softsign", "glu", "rrelu", "threshold",
    "max_pool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices",
    "adaptive_max_pool3d", "lp_pool1d", "lp_pool2d",
    "fractional_max_pool2d", "fractional_max_pool3d", "softmax", "log_softmax",
    "softmin", "layer_norm", "group_norm", "instance_norm", "local_response_norm",
    "rms_norm", "normalize", "exp", "log", "sqrt", "rsqrt", "max", "min", "amax", "amin",
    "sign", "floor", "ceil", "round", "sort", "topk", "sin", "cos", "erf", "norm",
    "vector_norm", "where",
    # comparisons and masks built from values: g * (g > 0) hides a breakpoint the engines
    # would never see, so any data-dependent comparison is refused (not silently ignored)
    "gt", "lt", "ge", "le", "eq", "ne", "greater", "less", "greater_equal", "less_equal",
    "__gt", "__lt", "__ge", "__le", "__eq", "__ne", "signbit", "heaviside", "argmax", "argmin",
    "masked_fill", "masked_select", "nonzero", "isclose", "bucketize", "searchsorted",
}
#: ATen operators known to be affine in the network's input (or to only move, copy or
#: shape data), as met in ``torch.export`` graphs before and after decomposition. Any
#: other ATen operator is refused: the ATen namespace is too large for a list of refusals.
_AFFINE_ATEN = {
    "linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "conv1d", "conv2d", "conv3d", "convolution",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "add", "sub", "rsub", "mul", "div",
    "neg", "view", "reshape", "_unsafe_view", "flatten", "unflatten", "permute", "transpose", "t",
    "expand", "cat", "stack", "slice", "select", "unsqueeze", "squeeze", "clone", "contiguous",
    "alias", "detach", "_to_copy", "to", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d",
    "mean", "sum", "pad", "constant_pad_nd", "batch_norm", "_native_batch_norm_legit_no_training",
    "dropout", "split", "split_with_sizes", "chunk", "unbind", "narrow", "repeat", "flip", "roll",
    "sym_size", "sym_numel", "sym_stride", "size", "lift_fresh_copy", "copy", "zeros_like",
    "ones_like", "full", "zeros", "ones", "scalar_tensor", "identity", "dim", "_assert_tensor_metadata",
    "_assert_scalar", "getitem",
}
_DROPOUTS = {"dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d",
             "dropout3d"}

_FIX_NONLINEARITY = ("reluscope's exact engines need a network whose only nonlinearities "
                     "are piecewise linear (ReLU, LeakyReLU, PReLU, ReLU6, Hardtanh, clamp, abs, "
                     "maximum/minimum of two tensors, 1D/2D max-pooling); replace it (e.g. GELU -> "
                     "nn.ReLU) or analyse a sub-network that stops before it.")
#: Piecewise-linear units written as ReLU sites (see the module docstring).
_UNIT_NAMES = {"hardtanh", "relu6", "clamp", "clip", "clamp_min", "clamp_max", "abs", "prelu",
               "maximum", "minimum", "max", "min", "_prelu_kernel"}
_POOL_NAMES = {"max_pool1d", "max_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d"}


def _number(value: Any) -> float | None:
    """A bound given as a Python number (or a one-element tensor), else None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 else None
    return float(value)


def _pair(value: Any, one_d: bool, fill: int = 1) -> tuple[int, int]:
    """A pooling argument as (height, width); 1D arguments get height `fill` (1, or 0 for
    padding)."""
    if isinstance(value, (list, tuple)):
        values = tuple(value)
    else:
        values = (value,) if one_d else (value, value)
    if one_d:
        values = (fill, *values[-1:])
    return tuple(int(v) if v is not None else None for v in values)  # type: ignore[return-value]


def _channel_view(weight: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A per-channel weight (C,) shaped to broadcast over z (N, C, ...)."""
    return weight.reshape(1, -1, *([1] * (z.dim() - 2))) if z.dim() >= 2 else weight


def _window_views(grid: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...], out_hw: tuple[int, ...]) -> list[torch.Tensor]:
    """Candidate (i, j) of every window of a pool over `grid` (N, C, H, W): one strided view
    (N, C, Ho, Wo) each, in F.unfold's order (row-major over the kernel), no copy."""
    return [grid[:, :, i * dilation[0]:: stride[0], j * dilation[1]:: stride[1]]
            [:, :, : out_hw[0], : out_hw[1]]
            for i in range(kernel[0]) for j in range(kernel[1])]


@functools.lru_cache(maxsize=64)
def _window_units(shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...], out_hw: tuple[int, ...]) -> np.ndarray:
    """(K, C * Ho * Wo) int64, read-only: which unit of a (C, H, W) input is candidate s of
    each window (the same views of the units' indices). Remembered: every forward pass
    through the pool asks for the same table."""
    units = torch.arange(int(np.prod(shape))).reshape(1, *shape)
    table = torch.stack([c.reshape(-1) for c in _window_views(units, kernel, stride, dilation,
                                                              out_hw)]).numpy()
    table.flags.writeable = False
    return table


@dataclass(frozen=True)
class PoolSource:
    """A max-pool of one site's activation itself (no layer between them).

    Attributes
    ----------
    site : int
        The site whose activation is pooled.
    candidates : np.ndarray, shape (window, windows), int64
        Candidate ``s`` of window ``w`` is unit ``candidates[s, w]`` of that site (flat).
    """

    site: int
    candidates: np.ndarray


@dataclass(frozen=True)
class Site:
    """One ReLU call in the forward pass.

    Attributes
    ----------
    index : int
        Position in call order (0 = first ReLU applied).
    name : str
        Module path of the caller and call number, e.g. ``"encoder.2"`` or ``"block1.act#2"``.
    shape : tuple of int
        Shape of the pre-activation of one sample.
    negative_slope : float
        Slope for negative inputs: 0 for ReLU, the slope of a LeakyReLU.
    pool_stage : int
        ``s >= 1`` for stage ``s`` of a max-pool (neuron k active: candidate ``s`` of
        window ``k`` beats candidates ``0 .. s-1``; see :mod:`reluscope.regions.pools`);
        0 for every other site.
    pool_window : int
        Candidates per window of that max-pool (0 for other sites).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    negative_slope: float
    pool_stage: int = 0
    pool_window: int = 0

    @property
    def size(self) -> int:
        """Number of neurons (entries of the pre-activation)."""
        return int(np.prod(self.shape)) if self.shape else 1


class StopForward(Exception):
    """Raised inside the forward once the last requested site has been recorded."""


def _is_aten(func: Any) -> bool:
    """Whether `func` is an ATen operator (what a ``torch.export`` program's graph calls)."""
    return isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


def _function_name(func: Any) -> str:
    if _is_aten(func):  # aten.relu.default -> "relu", aten.relu_.default -> "relu"
        func = getattr(func, "overloadpacket", func)
    return str(getattr(func, "__name__", func)).rstrip("_")


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


class SiteRecorder(TorchFunctionMode):
    """Torch function mode that records (and optionally masks) every ReLU site.

    Parameters
    ----------
    module_stack : list of str
        Shared stack of module paths, kept current by module hooks (for messages).
    masks : list of torch.Tensor or None
        Per-site boolean masks ``(batch, size)``; ``None`` runs the plain network.
        In a masked pass with tangents, the batch is doubled (two tangent directions)
        and masks are repeated to match.
    stop_after : int, optional
        Stop the forward pass after this site is recorded (saves the rest of it).
    inject : dict, optional
        ``{site: activation (N, size)}`` replaces a site's activation.
    inject_pool : dict, optional
        ``{site: maximum (N, size)}`` replaces the output of the max-pool whose last stage
        is that site (the pool's own sites are still recorded).
    """

    def __init__(self, module_stack: list[str], masks: Sequence[torch.Tensor] | None = None,
                 stop_after: int | None = None, inject: dict[int, torch.Tensor] | None = None,
                 inject_pool: dict[int, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.masks = masks
        self.stop_after = stop_after
        self.inject = inject or {}
        self.inject_pool = inject_pool or {}
        #: ``{first stage site: PoolSource}`` for each max-pool of a site's activation itself
        self.pool_sources: dict[int, PoolSource] = {}
        self.records: list[torch.Tensor] = []
        self.sites: list[Site] = []
        self._names: dict[str, int] = {}
        #: ``{site: (W, b)}`` where the site's input is ``F.linear`` of the previous site's
        #: activation (site ``len(sites)``: the model's output); filled by a plain pass.
        self.linear_links: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._last_activation: torch.Tensor | None = None
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def _where(self) -> str:
        return self.module_stack[-1] if self.module_stack else "<top-level forward>"

    def _refuse(self, what: str, fix: str) -> None:
        raise UnsupportedModelError(message(
            f"module `{self._where()}`", "piecewise affine with ReLU/LeakyReLU breakpoints",
            what, fix))

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        aten = _is_aten(func)
        name = _function_name(func)
        relu = func in _RELU_FUNCS or (aten and name == "relu")
        leaky = func in _LEAKY_FUNCS or (aten and name == "leaky_relu")
        if relu or leaky:
            slope = 0.0
            if leaky:
                slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
                if not np.isfinite(slope):
                    raise InputValueError(message(
                        f"the LeakyReLU in module `{self._where()}`", "a finite negative slope",
                        repr(slope), "Set negative_slope to a number (0.01 is PyTorch's default)."))
                if slope == 1.0:  # the identity: no breakpoint, no site
                    return func(*args, **kwargs)
            return self._site(args[0], slope)
        if name in ("max_pool1d_with_indices", "max_pool2d_with_indices") and not aten:
            self._refuse(f"`{name}` (max-pooling with return_indices=True: the indices are not a "
                         "piecewise-linear output)", "Pool without return_indices.")
        if name in _POOL_NAMES and not aten:
            return self._max_pool(name, args, kwargs)
        if name in _UNIT_NAMES:
            unit = self._unit(name, args, kwargs)
            if unit is not None:
                return unit
        if name == "linear":
            result = func(*args, **kwargs)
            source = _arg(args, kwargs, 0, "input", None)
            if source is not None and source is self._last_activation:
                self._pending = (result, _arg(args, kwargs, 1, "weight", None),
                                 _arg(args, kwargs, 2, "bias", None))
            return result
        if name in _REFUSED:
            self._refuse(f"a call to `{name}`", _FIX_NONLINEARITY)
        if name in _DROPOUTS and bool(_arg(args, kwargs, 2, "training", True)):
            self._refuse("dropout in training mode (random masks)",
                         "Call model.eval() before analysing it.")
        if name == "batch_norm" and bool(_arg(args, kwargs, 5, "training", False)):
            self._refuse("batch normalisation using batch statistics (training mode, or "
                         "track_running_stats=False)",
                         "Call model.eval() (and keep running statistics) before analysing it.")
        if aten and name not in _AFFINE_ATEN:
            self._refuse(f"the ATen operator `{func}`, which reluscope does not know to be affine",
                         "Export the network with only ReLU/LeakyReLU nonlinearities and affine layers "
                         "(linear, conv, average pooling, eval-mode batch norm), in eval mode.")
        return func(*args, **kwargs)

    def _unit(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
        """A piecewise-linear unit as a ReLU site and its combination; None: not one here
        (a reduction such as ``torch.max(x)``, refused by the caller)."""
        z = _arg(args, kwargs, 0, "input", None)
        if not isinstance(z, torch.Tensor):
            return None
        if name == "abs":
            return self._site(z, -1.0)
        if name in ("maximum", "minimum", "max", "min"):
            other = _arg(args, kwargs, 1, "other", None)
            if not isinstance(other, torch.Tensor) or isinstance(args[1] if len(args) > 1 else None, int):
                return None  # a reduction (torch.max(x), torch.max(x, dim)): refused
            other = other.to(z.dtype).expand_as(z) if other.shape != z.shape else other
            if name in ("maximum", "max"):
                return self._site(z - other, 0.0, lambda act: other + act)
            return self._site(z - other, 0.0, lambda act: z - act)
        if name in ("prelu", "_prelu_kernel"):
            weight = _arg(args, kwargs, 1, "weight", None)
            if not isinstance(weight, torch.Tensor):
                return None
            if weight.numel() == 1:
                slope = float(weight)
                return self._site(z, slope) if slope != 1.0 else z
            w = _channel_view(weight.to(z.dtype), z)
            return self._site(torch.stack([z, -z], dim=1), 0.0, lambda act: act[:, 0] - w * act[:, 1])
        low, high = self._bounds(name, args, kwargs)
        if low is None and high is None:
            return z
        if high is None:
            floor = float(low)  # type: ignore[arg-type]
            return self._site(z - floor, 0.0, lambda act: floor + act)
        if low is None:
            return self._site(high - z, 0.0, lambda act: high - act)
        if not low < high:
            self._refuse(f"`{name}` with bounds ({low}, {high})", "Use bounds with min < max.")
        return self._site(torch.stack([z - low, z - high], dim=1), 0.0,
                          lambda act: low + act[:, 0] - act[:, 1])

    def _max_pool(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor:
        """Max-pooling as a running maximum over each window's candidates (module docstring)."""
        z = _arg(args, kwargs, 0, "input", None)
        if not isinstance(z, torch.Tensor) or z.dim() not in (3, 4):
            self._refuse(f"`{name}` of {describe(z)}", "Pool batched inputs (N, C, L) or "
                         "(N, C, H, W).")
        one_d = name.endswith("1d")
        if one_d != (z.dim() == 3):
            self._refuse(f"`{name}` of a {z.dim()}-D input", "Use max_pool1d on (N, C, L) and "
                         "max_pool2d on (N, C, H, W).")
        grid = z.unsqueeze(2) if one_d else z  # (N, C, H, W), H = 1 for 1D
        spatial = tuple(grid.shape[2:])
        if name.startswith("adaptive"):
            kernel, stride = self._adaptive_windows(name, args, kwargs, spatial, one_d)
            padding, dilation, ceil_mode = (0, 0), (1, 1), False
        else:
            kernel = _pair(_arg(args, kwargs, 1, "kernel_size", None), one_d)
            raw_stride = _arg(args, kwargs, 2, "stride", None)
            stride = kernel if raw_stride in (None, [], ()) else _pair(raw_stride, one_d)
            padding = _pair(_arg(args, kwargs, 3, "padding", 0), one_d, fill=0)
            dilation = _pair(_arg(args, kwargs, 4, "dilation", 1), one_d)
            ceil_mode = bool(_arg(args, kwargs, 5, "ceil_mode", False))
        if bool(_arg(args, kwargs, 6 if not name.startswith("adaptive") else 2, "return_indices", False)):
            self._refuse(f"`{name}` with return_indices=True (indices are not piecewise linear "
                         "outputs)", "Pool without return_indices.")
        if any(p != 0 for p in padding):
            self._refuse(f"`{name}` with padding={padding}", "Pad explicitly before pooling "
                         "(e.g. F.pad with a constant the data never exceeds), or pool without "
                         "padding: padded positions are -inf candidates.")
        out_hw = [(size - d * (k - 1) - 1) // s + 1
                  for size, k, s, d in zip(spatial, kernel, stride, dilation, strict=True)]
        if ceil_mode and any((size - d * (k - 1) - 1) % s for size, k, s, d
                             in zip(spatial, kernel, stride, dilation, strict=True)):
            self._refuse(f"`{name}` with ceil_mode=True on a size it does not divide",
                         "Use ceil_mode=False, or an input size the windows tile.")
        # strided views of the input, no copy of the windows (gathering them into one
        # (..., kh * kw) tensor was most of a LeNet pass)
        window = kernel[0] * kernel[1]
        geometry = (tuple(kernel), tuple(stride), tuple(dilation), tuple(out_hw))
        candidates = _window_views(grid, *geometry)
        if window > 1 and z is self._last_activation:  # the previous site's activation itself
            self.pool_sources[len(self.records)] = PoolSource(
                len(self.records) - 1, _window_units(tuple(grid.shape[1:]), *geometry))
        best = candidates[0]
        for stage in range(1, window):
            best = best + self._site(candidates[stage] - best, 0.0, pool=(stage, window))
        if window > 1 and len(self.records) - 1 in self.inject_pool:  # replace the maximum
            best = self.inject_pool[len(self.records) - 1].reshape(-1, *best.shape[1:]).to(best.dtype)
        self._last_activation = None  # the next layer sees the maximum, not a site
        return best.squeeze(2) if one_d else best

    def _adaptive_windows(self, name: str, args: Sequence[Any], kwargs: dict[str, Any],
                          spatial: tuple[int, ...], one_d: bool
                          ) -> tuple[tuple[int, int], tuple[int, int]]:
        """Kernel and stride of an adaptive max-pool whose output size divides the input's."""
        size = _arg(args, kwargs, 1, "output_size", None)
        wanted = [spatial[i] if w is None else int(w) for i, w in enumerate(_pair(size, one_d))]
        if any(w <= 0 or s % w for s, w in zip(spatial, wanted, strict=True)):
            self._refuse(f"`{name}` from size {spatial[1:] if one_d else spatial} to {size} (windows "
                         "that overlap unevenly)", "Use an output size that divides the input "
                         "size, or an explicit max_pool2d.")
        kernel = tuple(s // w for s, w in zip(spatial, wanted, strict=True))
        return kernel, kernel  # type: ignore[return-value]

    def _bounds(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]
                ) -> tuple[float | None, float | None]:
        """(min, max) of a hardtanh / relu6 / clamp call; tensor-valued bounds are refused."""
        if name == "relu6":
            return 0.0, 6.0
        if name == "hardtanh":
            return (float(_arg(args, kwargs, 1, "min_val", -1.0)),
                    float(_arg(args, kwargs, 2, "max_val", 1.0)))
        if name == "clamp_min":
            raw = (_arg(args, kwargs, 1, "min", None), None)
        elif name == "clamp_max":
            raw = (None, _arg(args, kwargs, 1, "max", None))
        else:
            raw = (_arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None))
        bounds = (_number(raw[0]), _number(raw[1]))
        if any(r is not None and b is None for r, b in zip(raw, bounds, strict=True)):
            self._refuse(f"`{name}` with tensor-valued bounds", "Clamp to numbers, or write the bounds "
                         "with torch.maximum/torch.minimum of two tensors.")
        return bounds

    def _site(self, z: torch.Tensor, slope: float,
              combine: Callable[[torch.Tensor], torch.Tensor] | None = None,
              pool: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Record the site whose pre-activation is `z`; return its activation, or
        ``combine(activation)`` for a unit written as ReLUs (see the module docstring).
        `pool` is ``(stage, window)`` for a max-pool stage."""
        index = len(self.records)
        base = self._where()
        count = self._names.get(base, 0) + 1
        self._names[base] = count
        name = base if count == 1 else f"{base}#{count}"
        self.sites.append(Site(index, name, tuple(z.shape[1:]), slope, *pool))
        self.records.append(z)
        self.note_linear_link(index, z)
        if index in self.inject:
            out = self.inject[index].reshape(-1, *z.shape[1:]).to(z.dtype)  # may widen the batch
        elif self.masks is None:
            out = F.relu(z) if slope == 0.0 else F.leaky_relu(z, slope)
        else:
            mask = self.masks[index].reshape(z.shape).to(device=z.device, dtype=torch.bool)
            # relu(z) with a forced pattern: z on active entries, slope * z elsewhere
            # (torch.where keeps forward-mode tangents and avoids a float copy of the mask)
            out = torch.where(mask, z, z * slope if slope != 0.0 else torch.zeros((), dtype=z.dtype,
                                                                                 device=z.device))
        if combine is not None:
            out = combine(out)
            self._last_activation = None  # the next layer sees a combination, not the site
        else:
            self._last_activation = out
        if self.stop_after is not None and index >= self.stop_after:
            raise StopForward
        return out

    def note_linear_link(self, index: int, z: torch.Tensor) -> None:
        """Remember ``(W, b)`` if `z` is exactly ``F.linear(previous activation, W, b)``."""
        if self._pending is not None and self._pending[0] is z and z.dim() == 2:
            self.linear_links[index] = self._pending[1:]
        self._pending = None


@contextmanager
def module_paths(model: nn.Module, stack: list[str]) -> Iterator[None]:
    """Keep `stack` equal to the path of the module currently running (hooks removed after)."""
    handles = []
    try:
        for name, module in model.named_modules():
            label = name or type(module).__name__
            label = f"{label} ({type(module).__name__})" if name else label

            def push(_m: nn.Module, _inp: Any, label: str = label) -> None:
                stack.append(label)

            def pop(_m: nn.Module, _inp: Any, _out: Any) -> None:
                if stack:
                    stack.pop()

            handles.append(module.register_forward_pre_hook(push))
            handles.append(module.register_forward_hook(pop))
        yield
    finally:
        for handle in handles:
            handle.remove()
        stack.clear()


