"""Instrumented forward passes: ReLU sites, their pre-activations and affine maps.

A *site* is one call of a ReLU (or LeakyReLU) during the forward pass; the same
module called twice gives two sites. Sites are found by intercepting torch
functions (a ``TorchFunctionMode``), so ``nn.ReLU``, ``F.relu``, ``torch.relu`` and
``Tensor.relu`` all work, inside any nesting of modules, with residual additions,
convolutions, average pooling and BatchNorm in eval mode.

Operations that are not piecewise affine with ReLU breakpoints (GELU, tanh,
max-pool, softmax, layer norm, ...) and modules in training mode (BatchNorm using
batch statistics, active Dropout) are refused with the module path that called them.

`InstrumentedModel` runs such passes on a float64 copy of a model. The engines use
two kinds of pass:

* *probe* (``masks=None``): the plain network; pre-activations are recorded.
* *masked*: every site's activation pattern is forced per sample
  (``relu(z) -> z * mask``), which makes the network exactly affine around each
  sample; forward-mode AD then gives the slopes of each pre-activation along
  given input directions (a plane's two directions, a path's direction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError, UnsupportedModelError

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

    def _site(self, z: torch.Tensor, slope: float) -> torch.Tensor:
        index = len(self.records)
        base = self._where()
        count = self._names.get(base, 0) + 1
        self._names[base] = count
        name = base if count == 1 else f"{base}#{count}"
        self.sites.append(Site(index, name, tuple(z.shape[1:]), slope))
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
        self._last_activation = out
        if self.stop_after is not None and index >= self.stop_after:
            raise _StopForward
        return out

    def note_linear_link(self, index: int, z: torch.Tensor) -> None:
        """Remember ``(W, b)`` if `z` is exactly ``F.linear(previous activation, W, b)``."""
        if self._pending is not None and self._pending[0] is z and z.dim() == 2:
            self.linear_links[index] = self._pending[1:]
        self._pending = None


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


def model_device(model: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """Device of the model's first parameter or buffer (`default` for a stateless model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device(default)


@dataclass
class Pass:
    """What one instrumented forward pass recorded.

    Attributes
    ----------
    sites : list of Site
        The ReLU sites met, in call order.
    records : list of torch.Tensor
        Per site, shape ``(1 + D, N, size)``: the pre-activation at the N inputs, then
        its directional derivative along each of the D directions.
    output : torch.Tensor or None
        The model's output flattened, ``(1 + D, N, n_out)``, or None when the pass
        stopped early.
    """

    sites: list[Site]
    records: list[torch.Tensor]
    output: torch.Tensor | None
    linear_links: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)


class InstrumentedModel:
    """A model prepared for exact analysis (float64 parameters, instrumented forward).

    The user's model is never modified: its parameters and buffers are copied to
    float64 and the forward runs through ``torch.func.functional_call``.

    Parameters
    ----------
    model : nn.Module
        Any network whose nonlinearities are ReLU/LeakyReLU.
    examples : torch.Tensor, shape (K, *input_shape)
        Inputs the model is probed on: the sites are listed from the first, and every
        other must give the same sequence of ReLU calls.
    where : str
        Name of the public function, for error messages.
    """

    #: How error messages name the inputs (subclasses say where they come from).
    input_noun = "inputs shaped"

    def __init__(self, model: nn.Module, examples: torch.Tensor, where: str) -> None:
        if not isinstance(model, nn.Module):
            raise InputTypeError(message(f"`model` of {where}", "a torch.nn.Module",
                                         describe(model), "Pass the network itself."))
        self.model = model
        self.where = where
        self.device = model_device(model, examples.device)
        if self.device.type == "meta":
            raise InputValueError(message(
                f"`model` of {where}", "a model with real parameters (CPU or CUDA)",
                "a model on the meta device (shapes only, no values)",
                "Materialise it first, e.g. model.to_empty(device='cpu') and load its weights."))
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
                bad = int((~torch.isfinite(tensor.detach())).sum())
                raise InputValueError(message(
                    f"`model` of {where}", "finite parameters and buffers",
                    f"`{name}` with {bad} non-finite value(s) (NaN or inf)",
                    "Fix or reload the weights (a diverged training run leaves NaNs)."))
        self.state = _float64_state(model, self.device)
        self.examples = examples.to(device=self.device, dtype=torch.float64)
        self.input_shape = tuple(self.examples.shape[1:])
        probe = self.forward(self.examples[:1])
        self.sites: list[Site] = probe.sites
        #: Number of entries of the model's output for one sample (0 if not one tensor).
        self.output_size = 0 if probe.output is None else int(probe.output.shape[-1])
        # links met as a plain nn.Linear: its parameters are the map (no probing needed)
        self._links: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {
            site: (weight, torch.zeros_like(weight[:, 0]) if bias is None else bias)
            for site, (weight, bias) in probe.linear_links.items()}
        for example in self.examples[1:]:  # one at a time: a branch may look at x[0]
            self.check_sites(self.forward(example[None]).sites, None, exact=True)
        if not self.sites:
            raise UnsupportedModelError(message(
                f"`model` of {where}", "a network with at least one ReLU/LeakyReLU",
                "a forward pass that applies none (the model is affine)",
                "An affine model has a single linear region; nothing to partition."))

    def forward(self, x: torch.Tensor, *, masks: Sequence[torch.Tensor] | None = None,
                stop_after: int | None = None, directions: torch.Tensor | None = None,
                inject: dict[int, torch.Tensor] | None = None) -> Pass:
        """One instrumented pass (no autograd graph; forward-mode AD for the directions).

        Parameters
        ----------
        x : torch.Tensor, shape (N, *input_shape), float64
        masks : list of torch.Tensor, optional
            ``masks[m]`` (N, size_m) bool forces the activation pattern of site m (for
            every site the pass reaches); None runs the plain network.
        stop_after : int, optional
            Stop after this site (the output is then None).
        directions : torch.Tensor, shape (D, N, *input_shape), optional
            Input directions to differentiate along (one per sample).
        inject : dict, optional
            ``{site: activation (N, size)}`` replaces the activation of a site.
        """
        stack: list[str] = []
        x = x.to(self.device)
        n_dir = 0 if directions is None else directions.shape[0]
        if masks is not None and n_dir:
            masks = [m.to(self.device).repeat(n_dir, 1) for m in masks]
        recorder = SiteRecorder(stack, masks=masks, stop_after=stop_after, inject=inject)
        output: torch.Tensor | None = None
        with _module_paths(self.model, stack), torch.no_grad():
            try:
                if directions is None:
                    with recorder:
                        try:
                            output = torch.func.functional_call(self.model, self.state, (x,))
                        except _StopForward:
                            pass
                    if isinstance(output, torch.Tensor):
                        recorder.note_linear_link(len(recorder.records), output)
                    records = [z.reshape(1, z.shape[0], -1) for z in recorder.records]
                    if not isinstance(output, torch.Tensor):  # stopped early, or a tuple/dict
                        output = None
                    else:
                        output = output.reshape(1, output.shape[0], -1)
                    return Pass(recorder.sites, records, output, recorder.linear_links)
                # D copies of the batch, each carrying one direction as its tangent
                with fwad.dual_level():
                    dual = fwad.make_dual(x.repeat(n_dir, *([1] * (x.dim() - 1))),
                                          directions.to(self.device).reshape(-1, *x.shape[1:]))
                    with recorder:
                        try:
                            output = torch.func.functional_call(self.model, self.state, (dual,))
                        except _StopForward:
                            pass
                    records = [self._unpack(z, n_dir) for z in recorder.records]
                    if not isinstance(output, torch.Tensor):
                        output = None
                    else:
                        output = self._unpack(output, n_dir)
                return Pass(recorder.sites, records, output)
            except (UnsupportedModelError, _StopForward):
                raise
            except Exception as exc:  # the user's forward failed: say what we fed it
                if "Guard failed" in str(exc):  # a torch.export program fixed to one batch size
                    raise InputValueError(message(
                        f"`model` of {self.where}", "a torch.export program with a dynamic batch axis",
                        f"a program whose guard refused a batch of {x.shape[0]}: {exc}",
                        "Export with dynamic_shapes=({0: torch.export.Dim('batch')},): the engines "
                        "evaluate many points per call.")) from exc
                raise InputValueError(message(
                    f"`model` of {self.where}",
                    f"callable on a batch of {self.input_noun} {self.input_shape}",
                    f"an error from its forward: {type(exc).__name__}: {exc}",
                    "Give inputs the model accepts (shaped like one sample, without the batch "
                    "axis).")) from exc

    @staticmethod
    def _unpack(z: torch.Tensor, n_dir: int) -> torch.Tensor:
        """Dual tensor (D*N, ...) -> (1 + D, N, size): primal of the first copy, then tangents."""
        primal, tangent = fwad.unpack_dual(z)
        n = primal.shape[0] // n_dir
        if tangent is None:  # the output does not depend on the input
            tangent = torch.zeros_like(primal)
        return torch.cat([primal.reshape(n_dir, n, -1)[:1], tangent.reshape(n_dir, n, -1)])

    def preactivations(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Pre-activations of every site (up to `upto`) at inputs ``x`` (N, *input_shape).

        Returns
        -------
        list of torch.Tensor, each (N, size_l), float64, on the model's device.
        """
        result = self.forward(x, stop_after=upto)
        self.check_sites(result.sites, upto)
        return [r[0] for r in result.records]

    def link(self, site: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The affine map from site ``site-1``'s activation to site ``site``'s input, if any.

        ``site == len(self.sites)`` means the model's output. The map exists when that
        input depends on nothing but the previous site's activation (no skip connection
        around it): checked by injecting the same activation for different inputs.

        Returns
        -------
        (A, b) with ``z = A @ a + b`` and A of shape (size_site, size_prev), or None (then
        callers use the generic masked pass).
        """
        if site in self._links:
            return self._links[site]
        result = None
        is_output = site == len(self.sites)
        stop = None if is_output else site
        prev = self.sites[site - 1].size
        cur = self.output_size if is_output else self.sites[site].size
        if site > 0 and prev * cur <= MAX_LINK_ENTRIES:
            gen = torch.Generator().manual_seed(0)
            probe = torch.rand(1, prev, generator=gen, dtype=torch.float64).to(self.device)
            inputs = torch.cat([self.examples[:1], self.examples[:1] + 1.0, self.examples[:1] - 2.0])

            def after(x: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
                ran = self.forward(x, stop_after=stop, inject={site - 1: activation})
                return ran.output[0] if is_output else ran.records[site][0]  # type: ignore[index]

            z_probe = after(inputs, probe.expand(3, prev))
            scale = float(z_probe.abs().max()) + 1.0
            if float((z_probe - z_probe[:1]).abs().max()) <= 1e-12 * scale:
                basis = torch.cat([torch.zeros(1, prev, dtype=torch.float64),
                                   torch.eye(prev, dtype=torch.float64)]).to(self.device)
                z_basis = self._after_each(after, basis)
                bias = z_basis[0]
                matrix = (z_basis[1:] - bias).T.contiguous()
                if float((matrix @ probe[0] + bias - z_probe[0]).abs().max()) <= 1e-10 * scale:
                    result = (matrix, bias)
        self._links[site] = result
        return result

    def _after_each(self, after: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    activations: torch.Tensor) -> torch.Tensor:
        """``after(x0, a)`` for each row of `activations`, at the first example ``x0``.

        One input with a wider injected activation is cheapest, but a forward that reshapes
        by the *input's* batch size (a decomposed ``torch.export`` graph does) cannot widen
        mid-way; it then gets the input repeated, batch for batch.
        """
        try:
            return after(self.examples[:1], activations)
        except InputValueError:
            x0 = self.examples[:1].expand(activations.shape[0], *self.input_shape)
            return after(x0, activations)

    def check_sites(self, sites: list[Site], upto: int | None, exact: bool = False) -> None:
        """Refuse a pass whose ReLU calls differ from the probe's (data-dependent control flow)."""
        last = len(self.sites) - 1 if upto is None else upto
        got = [(s.shape, s.negative_slope) for s in sites[: last + 1]]
        want = [(s.shape, s.negative_slope) for s in self.sites[: last + 1]]
        if got != want or (exact and len(sites) != len(self.sites)):
            raise UnsupportedModelError(message(
                f"`model` of {self.where}", "a forward pass with the same ReLU calls for every input",
                "a different sequence of ReLU calls for different inputs (data-dependent control "
                "flow)", "Remove input-dependent branches from the forward."))
