"""Instrumented forward passes: ReLU sites, their pre-activations and affine maps.

Which torch calls are sites and which are refused is decided in ``recorder``.
`InstrumentedModel` runs such passes on a float64 copy of a model. The engines use
two kinds of pass:

* *probe* (``masks=None``): the plain network; pre-activations are recorded.
* *masked*: every site's activation pattern is forced per sample
  (``relu(z) -> z * mask``), which makes the network exactly affine around each
  sample; forward-mode AD then gives the slopes of each pre-activation along
  given input directions (a plane's two directions, a path's direction).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.autograd.forward_ad as fwad
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError, UnsupportedModelError
from reluscope.nets.links import LINKS, Link, local_link, state_key
from reluscope.nets.recorder import PoolSource, Site, SiteRecorder, StopForward, module_paths
from reluscope.nets.states import STATES

__all__ = ["MAX_LINK_ENTRIES", "InstrumentedModel", "Pass", "Site", "SiteRecorder", "model_device"]

#: Largest dense link matrix (entries) the chain fast path builds between two sites.
MAX_LINK_ENTRIES = 1 << 25

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
    pool_sources: dict[int, PoolSource] = field(default_factory=dict)


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
    dense_fraction : float
        A sparse link with more than this fraction of its entries non-zero is held dense
        when it fits (``MAX_LINK_ENTRIES``).
    """

    #: How error messages name the inputs (subclasses say where they come from).
    input_noun = "inputs shaped"

    def __init__(self, model: nn.Module, examples: torch.Tensor, where: str,
                 dense_fraction: float = 0.1) -> None:
        self.dense_fraction = dense_fraction
        self._state_key: str | None = None
        self._cut_at_first: bool | None = None
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
        # the float64 copy (remembered for the model's current tensors: the planes of one
        # checkpoint share it); a model with NaN or inf values is refused there
        self._digest, self.state = STATES.state_of(model, self.device, where)
        self.examples = examples.to(device=self.device, dtype=torch.float64)
        self.input_shape = tuple(self.examples.shape[1:])
        probe = self.forward(self.examples[:1])
        self.sites: list[Site] = probe.sites
        #: Number of entries of the model's output for one sample (0 if not one tensor).
        self.output_size = 0 if probe.output is None else int(probe.output.shape[-1])
        # links met as a plain nn.Linear: its parameters are the map (no probing needed)
        self._pool_links: dict[int, Link | None] = {}
        self._pool_sources = probe.pool_sources
        self._links: dict[int, Link | None] = {
            site: Link(torch.zeros_like(weight[:, 0]) if bias is None else bias, dense=weight)
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
                inject: dict[int, torch.Tensor] | None = None,
                inject_pool: dict[int, torch.Tensor] | None = None) -> Pass:
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
        inject_pool : dict, optional
            ``{site: maximum (N, size)}`` replaces the output of the max-pool whose last
            stage is that site.
        """
        stack: list[str] = []
        x = x.to(self.device)
        n_dir = 0 if directions is None else directions.shape[0]
        if masks is not None and n_dir:
            masks = [m.to(self.device).repeat(n_dir, 1) for m in masks]
        recorder = SiteRecorder(stack, masks=masks, stop_after=stop_after, inject=inject,
                                inject_pool=inject_pool)
        output: torch.Tensor | None = None
        with module_paths(self.model, stack), torch.no_grad():
            try:
                if directions is None:
                    with recorder:
                        try:
                            output = torch.func.functional_call(self.model, self.state, (x,))
                        except StopForward:
                            pass
                    if isinstance(output, torch.Tensor):
                        recorder.note_linear_link(len(recorder.records), output)
                    records = [z.reshape(1, z.shape[0], -1) for z in recorder.records]
                    if not isinstance(output, torch.Tensor):  # stopped early, or a tuple/dict
                        output = None
                    else:
                        output = output.reshape(1, output.shape[0], -1)
                    return Pass(recorder.sites, records, output, recorder.linear_links,
                                recorder.pool_sources)
                # D copies of the batch, each carrying one direction as its tangent
                with fwad.dual_level():
                    dual = fwad.make_dual(x.repeat(n_dir, *([1] * (x.dim() - 1))),
                                          directions.to(self.device).reshape(-1, *x.shape[1:]))
                    with recorder:
                        try:
                            output = torch.func.functional_call(self.model, self.state, (dual,))
                        except StopForward:
                            pass
                    records = [self._unpack(z, n_dir) for z in recorder.records]
                    if not isinstance(output, torch.Tensor):
                        output = None
                    else:
                        output = self._unpack(output, n_dir)
                return Pass(recorder.sites, records, output)
            except (UnsupportedModelError, StopForward):
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

    @property
    def cut_at_first_site(self) -> bool:
        """Does everything after site 0 (every later site and the output) see the input only
        through site 0's activation? Checked like a link (see :meth:`link`): one random
        activation injected at site 0 must give the same later values, to rounding, at the
        first example and at two random inputs (a skip connection from the input, or a
        max-pool whose candidates are not site 0's, fails it)."""
        if self._cut_at_first is None:
            gen = torch.Generator().manual_seed(2)
            probe = torch.rand(1, self.sites[0].size, generator=gen, dtype=torch.float64)
            noise = torch.randn(2, *self.input_shape, generator=gen, dtype=torch.float64)
            inputs = torch.cat([self.examples[:1], self.examples[:1] + noise.to(self.device)])
            ran = self.forward(inputs, inject={0: probe.to(self.device).expand(3, -1)})
            later = [r[0] for r in ran.records[1:]]
            if ran.output is not None:
                later.append(ran.output[0])
            same = [(s.shape, s.negative_slope) for s in ran.sites] == \
                [(s.shape, s.negative_slope) for s in self.sites]
            for z in later:
                scale = float(z.abs().max()) + 1.0
                same = same and float((z - z[:1]).abs().max()) <= 1e-12 * scale
            if same:  # and the pass from site 0 itself, widening one input to several
                same = self._passes_from_first_site_agree()
            self._cut_at_first = same
        return self._cut_at_first

    def _passes_from_first_site_agree(self) -> bool:
        """Do passes from site 0's activation give the plain passes' values at the examples
        (a forward that reshapes by its input's batch size may fail or mix rows there)?"""
        try:
            direct = self.preactivations(self.examples)
            after = self.preactivations_after_first_site(direct[0])
        except (InputValueError, UnsupportedModelError, RuntimeError):
            return False
        for a, b in zip(after, direct, strict=True):
            scale = float(b.abs().max()) + 1.0
            if a.shape != b.shape or float((a - b).abs().max()) > 1e-10 * scale:
                return False
        return True

    def preactivations_after_first_site(self, z0: torch.Tensor, upto: int | None = None
                                        ) -> list[torch.Tensor]:
        """Like :meth:`preactivations` (sites ``0..upto``), from site 0's pre-activations
        `z0` (N, size_0): one pass from site 0's activation on, so the layers before it do
        not run per point (valid where :attr:`cut_at_first_site`)."""
        slope = self.sites[0].negative_slope
        activation = torch.where(z0 > 0, z0, z0 * slope) if slope else z0.clamp_min(0.0)

        def after(x: torch.Tensor) -> Pass:
            ran = self.forward(x, stop_after=upto, inject={0: activation})
            self.check_sites(ran.sites, upto)
            return ran

        try:  # one input, the injected activation widening the batch (see _after_each)
            ran = after(self.examples[:1])
        except InputValueError:
            ran = after(self.examples[:1].expand(z0.shape[0], *self.input_shape))
        return [z0, *(r[0] for r in ran.records[1:])]

    def link(self, site: int) -> Link | None:
        """The affine map from site ``site-1``'s activation to site ``site``'s input, if any.

        ``site == len(self.sites)`` means the model's output. The map exists when that
        input depends on nothing but the previous site's activation (no skip connection
        around it): checked by injecting the same activation for different inputs. It is
        held dense when small, else (spatial sites: a conv net) by its certified sparse
        columns and applied by the layers themselves (see ``reluscope.nets.links``).

        Returns
        -------
        Link or None
            None: callers use the generic masked pass.
        """
        if site not in self._links:
            self._links[site] = self._find_link(site, pool=False) if site > 0 else None
        return self._links[site]

    def pool_source(self, site: int) -> PoolSource | None:
        """How the max-pool whose stage is site `site` reads its candidates: the site whose
        activation it pools and the units of each window, or None (not a stage, or the pool
        of something other than a site's activation itself)."""
        stage = self.sites[site].pool_stage
        return self._pool_sources.get(site - stage + 1) if stage else None

    def pool_read_by_next(self, site: int) -> PoolSource | None:
        """The max-pool whose first stage is site ``site+1`` and which reads site `site`'s
        activation itself, or None."""
        nxt = site + 1
        if nxt >= len(self.sites) or self.sites[nxt].pool_stage != 1:
            return None
        source = self.pool_source(nxt)
        return source if source is not None and source.site == site else None

    def pool_into(self, site: int) -> PoolSource | None:
        """The max-pool of a site's activation that site `site`'s maps and values come from
        (a stage of it, or the site right after it through :meth:`pool_link` where it has no
        link of its own), or None."""
        if self.sites[site].pool_stage:
            return self.pool_source(site)
        if site == 0 or self.link(site) is not None or self.pool_link(site) is None:
            return None
        return self.pool_source(site - 1)

    def pool_link(self, site: int) -> Link | None:
        """The affine map from the output of the max-pool right before site `site` (its last
        stage is site ``site-1``) to site `site`'s input (``len(sites)``: the output), found
        and certified like :meth:`link`; None if there is no such pool or map."""
        if site not in self._pool_links:
            before = self.sites[site - 1] if 0 < site <= len(self.sites) else None
            last_stage = before is not None and before.pool_stage > 0 \
                and before.pool_stage == before.pool_window - 1
            self._pool_links[site] = self._find_link(site, pool=True) if last_stage else None
        return self._pool_links[site]

    def _find_link(self, site: int, pool: bool) -> Link | None:
        """The link into site `site` from site ``site-1``'s activation, or (`pool`) from the
        max-pool output after it: remembered, or probed, built and certified."""
        is_output = site == len(self.sites)
        stop = None if is_output else site
        prev = self.sites[site - 1].size
        gen = torch.Generator().manual_seed(0)
        probe = torch.rand(2, prev, generator=gen, dtype=torch.float64).to(self.device)
        # random (not constant) input changes: a difference of two conv outputs of one
        # channel does not see a constant shift of the input, and would pass for a link
        noise = torch.randn(2, *self.input_shape, generator=gen, dtype=torch.float64)
        inputs = torch.cat([self.examples[:1], self.examples[:1] + noise.to(self.device)])

        def after(x: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
            where = {site - 1: activation}
            ran = self.forward(x, stop_after=stop, inject=None if pool else where,
                               inject_pool=where if pool else None)
            return ran.output[0] if is_output else ran.records[site][0]  # type: ignore[index]

        def operator(activation: torch.Tensor) -> torch.Tensor:
            return self._after_each(after, activation)

        key: Hashable = ("pool", site) if pool else site
        result = self._remembered_link(key, inputs, after, operator)
        if result is None:
            z_probe = after(inputs, probe[:1].expand(3, prev))
            scale = float(z_probe.abs().max()) + 1.0
            if float((z_probe - z_probe[:1]).abs().max()) <= 1e-12 * scale:
                result = self._build_link(site, operator, probe, 1e-10 * scale)
                if result is not None:
                    LINKS.put(self.model, self.state_key, key, result)
        return result

    @property
    def state_key(self) -> str:
        """Digest of the model's tensors, the sites and the link options (see LinkMemo)."""
        if self._state_key is None:
            self._state_key = state_key(
                [], self._digest, self.input_shape,
                [(s.shape, s.negative_slope) for s in self.sites], self.output_size, self.dense_fraction,
                type(self.model).__qualname__)
        return self._state_key

    def _remembered_link(self, site: Hashable, inputs: torch.Tensor,
                         after: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         operator: Callable[[torch.Tensor], torch.Tensor]) -> Link | None:
        """This model's link from an earlier copy, if this copy's site input, injected with the
        remembered random activation, equals the link's matrix there at every one of `inputs`
        (one pass: the input depends on nothing but the activation, and the map is the same;
        a changed map agrees with the remembered one there with probability 0)."""
        remembered = LINKS.get(self.model, self.state_key, site)
        if remembered is None:
            return None
        got = after(inputs, remembered.probe.expand(len(inputs), remembered.link.size_in))
        scale = float(got.abs().max()) + 1.0
        if float((got - remembered.expected).abs().max()) > 1e-10 * scale:
            return None
        return remembered.link.rebound(operator)

    def _build_link(self, site: int, operator: Callable[[torch.Tensor], torch.Tensor],
                    probe: torch.Tensor, tolerance: float) -> Link | None:
        """Sparse (local spatial map) or dense link from `operator`, checked at `probe`."""
        prev_shape = self.sites[site - 1].shape
        is_output = site == len(self.sites)
        cur_shape = (self.output_size,) if is_output else self.sites[site].shape
        prev, cur = self.sites[site - 1].size, int(np.prod(cur_shape))
        bias = operator(torch.zeros(1, prev, dtype=torch.float64, device=self.device))[0]
        expected = operator(probe)
        if len(prev_shape) >= 2 and len(cur_shape) >= 2:
            columns = local_link(operator, bias, prev_shape, cur_shape, probe, expected, tolerance)
            if columns is not None and (columns.nnz > self.dense_fraction * prev * cur
                                        and prev * cur <= MAX_LINK_ENTRIES):
                return Link(bias, dense=torch.from_numpy(columns.to_dense()).to(self.device))
            if columns is not None:
                return Link(bias, columns=columns, operator=operator)
        if prev * cur > MAX_LINK_ENTRIES:
            return None
        step = max(1, (1 << 22) // max(prev, cur))  # basis blocks: bounded memory
        blocks = []
        for lo in range(0, prev, step):
            basis = torch.zeros(min(step, prev - lo), prev, dtype=torch.float64, device=self.device)
            basis[torch.arange(basis.shape[0]), torch.arange(lo, lo + basis.shape[0])] = 1.0
            blocks.append(operator(basis) - bias)
        link = Link(bias, dense=torch.cat(blocks).T.contiguous())
        return link if link.agrees(probe, expected, tolerance) else None

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


def count_sites(model: nn.Module, x: torch.Tensor) -> int:
    """Number of piecewise-linear sites one forward of `model` on `x` applies (0: the model
    is affine on these inputs), in the model's own dtype; what the engines refuse (a GELU,
    BatchNorm in training mode, ...) is refused here too."""
    stack: list[str] = []
    recorder = SiteRecorder(stack)
    with module_paths(model, stack), torch.no_grad(), recorder:
        model(x)
    return len(recorder.sites)
