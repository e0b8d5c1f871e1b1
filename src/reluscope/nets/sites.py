"""Instrumented forward passes: ReLU sites, their pre-activations and affine maps.

A *site* is one call of a ReLU (or LeakyReLU) during the forward pass; the same
module called twice gives two sites. Sites are found by intercepting torch
functions (a ``TorchFunctionMode``), so ``nn.ReLU``, ``F.relu``, ``torch.relu`` and
``Tensor.relu`` all work, inside any nesting of modules, with residual additions,
convolutions, average pooling and BatchNorm in eval mode.

Operations that are not piecewise affine with ReLU breakpoints (GELU, tanh,
max-pool, softmax, layer norm, ...) and modules in training mode (BatchNorm using
batch statistics, active Dropout) are refused with the module path that called them.

The engines use two kinds of pass:

* *probe* (``masks=None``): the plain network; pre-activations are recorded.
* *masked*: every site's activation pattern is forced per sample
  (``relu(z) -> z * mask``), which makes the network exactly affine around each
  sample; forward-mode AD then gives the slopes of each pre-activation along the
  plane's two directions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError, UnsupportedModelError
from reluscope.geometry.plane import Plane

_RELU_FUNCS: set[Any] = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
                         torch.Tensor.relu_}
_LEAKY_FUNCS: set[Any] = {F.leaky_relu, F.leaky_relu_}

# Names of torch functions that break piecewise affinity (or hide breakpoints the
# engines do not track). Matched on the function's __name__ so every alias is caught.
_REFUSED = {
    "gelu", "silu", "sigmoid", "tanh", "softplus", "elu", "selu", "celu", "mish",
    "hardswish", "hardsigmoid", "relu6", "hardtanh", "hardshrink", "softshrink",
    "tanhshrink", "logsigmoid", "softsign", "glu", "prelu", "rrelu", "threshold",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "lp_pool1d", "lp_pool2d",
    "fractional_max_pool2d", "fractional_max_pool3d", "softmax", "log_softmax",
    "softmin", "layer_norm", "group_norm", "instance_norm", "local_response_norm",
    "rms_norm", "normalize", "exp", "log", "sqrt", "rsqrt", "abs", "max", "min",
    "maximum", "minimum", "amax", "amin", "clamp", "clip", "clamp_min", "clamp_max",
    "sign", "floor", "ceil", "round", "sort", "topk", "sin", "cos", "erf", "norm",
    "vector_norm", "where",
}
_DROPOUTS = {"dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d",
             "dropout3d"}

#: Largest dense link matrix (entries) the chain fast path builds between two sites.
MAX_LINK_ENTRIES = 1 << 25

_FIX_NONLINEARITY = ("reluscope's exact engines need a network whose only nonlinearities "
                     "are ReLU or LeakyReLU; replace it (e.g. GELU -> nn.ReLU, max-pool -> "
                     "nn.AvgPool2d) or analyse a sub-network that stops before it.")


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
    """

    index: int
    name: str
    shape: tuple[int, ...]
    negative_slope: float

    @property
    def size(self) -> int:
        """Number of neurons (entries of the pre-activation)."""
        return int(np.prod(self.shape)) if self.shape else 1


class _StopForward(Exception):
    """Raised inside the forward once the last requested site has been recorded."""


def _function_name(func: Any) -> str:
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
    """

    def __init__(self, module_stack: list[str], masks: Sequence[torch.Tensor] | None = None,
                 stop_after: int | None = None, inject: dict[int, torch.Tensor] | None = None
                 ) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.masks = masks
        self.stop_after = stop_after
        self.inject = inject or {}
        self.records: list[torch.Tensor] = []
        self.sites: list[Site] = []
        self._names: dict[str, int] = {}

    def _where(self) -> str:
        return self.module_stack[-1] if self.module_stack else "<top-level forward>"

    def _refuse(self, what: str, fix: str) -> None:
        raise UnsupportedModelError(message(
            f"module `{self._where()}`", "piecewise affine with ReLU/LeakyReLU breakpoints",
            what, fix))

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU_FUNCS or func in _LEAKY_FUNCS:
            slope = 0.0
            if func in _LEAKY_FUNCS:
                slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
            return self._site(args[0], slope)
        name = _function_name(func)
        if name in _REFUSED:
            self._refuse(f"a call to `{name}`", _FIX_NONLINEARITY)
        if name in _DROPOUTS and bool(_arg(args, kwargs, 2, "training", True)):
            self._refuse("dropout in training mode (random masks)",
                         "Call model.eval() before analysing it.")
        if name == "batch_norm" and bool(_arg(args, kwargs, 5, "training", False)):
            self._refuse("batch normalisation using batch statistics (training mode, or "
                         "track_running_stats=False)",
                         "Call model.eval() (and keep running statistics) before analysing it.")
        return func(*args, **kwargs)

    def _site(self, z: torch.Tensor, slope: float) -> torch.Tensor:
        index = len(self.records)
        base = self._where()
        count = self._names.get(base, 0) + 1
        self._names[base] = count
        name = base if count == 1 else f"{base}#{count}"
        self.sites.append(Site(index, name, tuple(z.shape[1:]), slope))
        self.records.append(z)
        if index in self.inject:
            out = self.inject[index].reshape(z.shape).to(z.dtype)
        elif self.masks is None:
            out = F.relu(z) if slope == 0.0 else F.leaky_relu(z, slope)
        else:
            mask = self.masks[index].reshape(z.shape).to(z.dtype)
            # relu(z) with a forced pattern: z on active entries, slope * z elsewhere.
            out = z * mask if slope == 0.0 else z * (mask + slope * (1 - mask))
        if self.stop_after is not None and index >= self.stop_after:
            raise _StopForward
        return out


@contextmanager
def _module_paths(model: nn.Module, stack: list[str]) -> Iterator[None]:
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


def _float64_state(model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    state = {}
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point():
            tensor = tensor.detach().to(device=device, dtype=torch.float64)
        state[name] = tensor
    return state


class Network:
    """A model prepared for exact analysis on one plane (float64, instrumented).

    The user's model is never modified: its parameters and buffers are copied to
    float64 and the forward runs through ``torch.func.functional_call``.

    Parameters
    ----------
    model : nn.Module
        Any network whose nonlinearities are ReLU/LeakyReLU.
    plane : Plane
        The slice; its origin is used for a probe pass that lists the sites.
    """

    def __init__(self, model: nn.Module, plane: Plane, where: str = "slice_regions") -> None:
        if not isinstance(model, nn.Module):
            raise InputTypeError(message(f"`model` of {where}", "a torch.nn.Module",
                                         describe(model), "Pass the network itself."))
        if not isinstance(plane, Plane):
            raise InputTypeError(message(f"`plane` of {where}", "a reluscope.Plane",
                                         describe(plane),
                                         "Build one with Plane.through(x0, x1, x2) or Plane(...)."))
        self.model = model
        self.plane = plane
        self.where = where
        params = list(model.parameters()) + list(model.buffers())
        self.device = params[0].device if params else plane.origin.device
        self.state = _float64_state(model, self.device)
        self.origin = plane.origin.to(self.device)
        self.basis = plane.basis.to(self.device)
        self._links: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}
        self._site0: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        probe = self._run(torch.zeros(1, 2, dtype=torch.float64), masks=None, stop_after=None,
                          tangents=False)
        self.sites: list[Site] = probe[0]
        # the same ReLU calls must happen everywhere: check the domain's corners too
        for corner in plane.polygon:
            self._check_sites(self._run(torch.from_numpy(corner[None]), masks=None,
                                        stop_after=None, tangents=False)[0], None, exact=True)
        if not self.sites:
            raise UnsupportedModelError(message(
                f"`model` of {where}", "a network with at least one ReLU/LeakyReLU",
                "a forward pass that applies none (the model is affine)",
                "An affine model has a single linear region; nothing to partition."))

    # ------------------------------------------------------------------ passes
    def _inputs(self, coords: torch.Tensor) -> torch.Tensor:
        coords = coords.to(self.device)
        flat = self.origin.reshape(1, -1) + coords @ self.basis.reshape(2, -1)
        return flat.reshape(coords.shape[0], *self.origin.shape)

    def _run(self, coords: torch.Tensor, masks: Sequence[torch.Tensor] | None,
             stop_after: int | None, tangents: bool, inject: dict[int, torch.Tensor] | None = None,
             ) -> tuple[list[Site], list[torch.Tensor]]:
        stack: list[str] = []
        x = self._inputs(coords)
        recorder = SiteRecorder(stack, masks=masks, stop_after=stop_after, inject=inject)
        with _module_paths(self.model, stack), torch.no_grad():
            try:
                if tangents:
                    n = x.shape[0]
                    direction = torch.cat([self.basis[0].expand_as(x), self.basis[1].expand_as(x)])
                    with fwad.dual_level():
                        dual = fwad.make_dual(torch.cat([x, x]), direction)
                        with recorder:
                            try:
                                torch.func.functional_call(self.model, self.state, (dual,))
                            except _StopForward:
                                pass
                        records = []
                        for z in recorder.records:
                            primal, tangent = fwad.unpack_dual(z)
                            flat_p = primal.reshape(2 * n, -1)[:n]
                            flat_t = tangent.reshape(2 * n, -1)
                            records.extend([flat_p, flat_t[:n], flat_t[n:]])
                    return recorder.sites, records
                with recorder:
                    try:
                        torch.func.functional_call(self.model, self.state, (x,))
                    except _StopForward:
                        pass
            except (UnsupportedModelError, _StopForward):
                raise
            except Exception as exc:  # the user's forward failed: say what we fed it
                raise InputValueError(message(
                    f"`model` of {self.where}",
                    f"callable on a batch of inputs shaped like the plane's origin "
                    f"{tuple(self.origin.shape)}",
                    f"an error from its forward: {type(exc).__name__}: {exc}",
                    "Build the plane from inputs the model accepts (without the batch axis).")
                ) from exc
        return recorder.sites, [z.reshape(z.shape[0], -1) for z in recorder.records]

    def preactivations(self, coords: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Pre-activations of every site at plane points.

        Parameters
        ----------
        coords : torch.Tensor, shape (N, 2), float64
            Plane coordinates.
        upto : int, optional
            Last site needed (later sites are not computed).

        Returns
        -------
        list of torch.Tensor, each (N, size_l), float64, on the model's device.
        """
        sites, records = self._run(coords, None, upto, tangents=False)
        self._check_sites(sites, upto)
        return records

    def link(self, site: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The affine map from site ``site-1``'s output to site ``site``'s input, if it exists.

        Exists when the pre-activation of `site` depends on nothing but the activation of
        the previous site (no skip connection around it): checked by injecting the same
        activation for different inputs. Returns ``(A, b)`` with ``z = A @ a + b``,
        ``A`` of shape (size_site, size_prev), or None (then the generic path is used).
        """
        if site in self._links:
            return self._links[site]
        result = None
        prev, cur = self.sites[site - 1].size, self.sites[site].size
        if site > 0 and prev * cur <= MAX_LINK_ENTRIES:
            gen = torch.Generator().manual_seed(0)
            probe = torch.rand(1, prev, generator=gen, dtype=torch.float64).to(self.device)
            points = torch.from_numpy(np.vstack([self.plane.polygon[:2], [[0.0, 0.0]]]))
            _, rec = self._run(points, None, site, False, inject={site - 1: probe.expand(3, prev)})
            z_probe = rec[site]
            scale = float(z_probe.abs().max()) + 1.0
            if float((z_probe - z_probe[:1]).abs().max()) <= 1e-12 * scale:
                basis = torch.cat([torch.zeros(1, prev, dtype=torch.float64),
                                   torch.eye(prev, dtype=torch.float64)]).to(self.device)
                _, rec = self._run(torch.zeros(prev + 1, 2, dtype=torch.float64), None, site, False,
                                   inject={site - 1: basis})
                bias = rec[site][0]
                matrix = (rec[site][1:] - bias).T.contiguous()
                if float((matrix @ probe[0] + bias - z_probe[0]).abs().max()) <= 1e-10 * scale:
                    result = (matrix, bias)
        self._links[site] = result
        return result

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
            if self._site0 is None:
                self._site0 = self._generic_maps(torch.zeros(1, 2, dtype=torch.float64), [], 0)
            maps = torch.stack(self._site0, dim=0).expand(3, n, -1)
        else:
            maps = previous.to(self.device)
        for m, link in enumerate(links, start=first):
            matrix, bias = link  # type: ignore[misc]
            gate = masks[m - 1].to(device=self.device, dtype=torch.float64)
            slope = self.sites[m - 1].negative_slope
            if slope != 0.0:
                gate = gate + slope * (1.0 - gate)
            gated = (maps * gate[None]).reshape(3 * n, -1)
            maps = (gated @ matrix.T).reshape(3, n, -1)  # one GEMM for all regions
            maps[0] += bias
        return maps

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
        full = [*masks, torch.ones(coords.shape[0], self.sites[site].size, dtype=torch.bool,
                                   device=self.device)]
        doubled = [torch.cat([m.to(self.device), m.to(self.device)]) for m in full]
        sites, records = self._run(coords, doubled, site, tangents=True)
        self._check_sites(sites, site)
        return records[3 * site], records[3 * site + 1], records[3 * site + 2]

    def _check_sites(self, sites: list[Site], upto: int | None, exact: bool = False) -> None:
        last = len(self.sites) - 1 if upto is None else upto
        got = [(s.shape, s.negative_slope) for s in sites[: last + 1]]
        want = [(s.shape, s.negative_slope) for s in self.sites[: last + 1]]
        if got != want or (exact and len(sites) != len(self.sites)):
            raise UnsupportedModelError(message(
                f"`model` of {self.where}", "a forward pass with the same ReLU calls for every input",
                "a different sequence of ReLU calls for different inputs (data-dependent control "
                "flow)", "Remove input-dependent branches from the forward."))


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
