"""Links between sites: sparse (certified local columns) and dense, against autograd Jacobians;
conv nets sliced through sparse links against their dense-equivalent MLPs."""

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from reluscope.nets.links import SparseColumns
from reluscope.nets.plane_network import Network


class Residual(nn.Module):
    """``conv(a) + a``: affine in the previous site's activation, so still a link."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.conv(a) + a


class Flip(nn.Module):
    """A non-local map (mirrors the image): the locality guess fails and must be caught."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flip(a, dims=(-1,)) * 2.0 - 0.5


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn.eval()


MIDDLES = {
    "conv stride 1 pad 1": lambda: nn.Conv2d(3, 4, 3, padding=1),
    "conv stride 2 pad 1": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
    "conv dilation 2 pad 2 groups 3": lambda: nn.Conv2d(3, 6, 3, padding=2, dilation=2, groups=3),
    "conv 5x5 no padding": lambda: nn.Conv2d(3, 2, 5),
    "avgpool then conv": lambda: nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, padding=1)),
    "conv then eval batchnorm": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _bn(4)),
    "conv then conv": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)),
    "residual": lambda: Residual(3),
    "transposed conv": lambda: nn.ConvTranspose2d(3, 2, 2, stride=2),
    "non-local flip": lambda: Flip(),
}


def _model(middle: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), middle, nn.ReLU()).eval()


def _jacobian(middle: nn.Module, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The middle's affine map by autograd (an oracle independent of reluscope)."""
    middle = middle.double()
    zero = torch.zeros(1, *shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: middle(a.reshape(1, *shape)).reshape(-1),
                                             zero.reshape(-1))
    return jac.numpy(), middle(zero).reshape(-1).detach().numpy()


def _dense(columns: SparseColumns) -> np.ndarray:
    out = np.zeros((columns.size_out, len(columns.ptr) - 1))
    out[columns.rows, np.repeat(np.arange(len(columns.ptr) - 1), np.diff(columns.ptr))] = columns.values
    return out


@pytest.mark.parametrize("name", list(MIDDLES))
def test_sparse_links_equal_the_autograd_jacobian(name):
    torch.manual_seed(0)
    model = _model(MIDDLES[name]())
    x = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    net = Network(model, rs.Plane.through(x[0], x[1], x[2]), dense_fraction=0.999)
    link = net.link(1)
    assert link is not None and link.sparse
    matrix, bias = _jacobian(model[2], net.sites[0].shape)
    np.testing.assert_allclose(_dense(link.columns), matrix, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(link.bias.numpy(), bias, rtol=1e-12, atol=1e-12)
    act = torch.rand(5, net.sites[0].size, dtype=torch.float64)
    np.testing.assert_allclose(link.apply(act).numpy(), act.numpy() @ matrix.T + bias, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(link.dense_columns(np.array([0, 7, 42])).numpy(), matrix[:, [0, 7, 42]].T,
                               atol=1e-12)
    # and the same link held dense
    dense = Network(model, rs.Plane.through(x[0], x[1], x[2]), dense_fraction=1e-9).link(1)
    assert dense is not None and not dense.sparse
    np.testing.assert_allclose(dense.dense.numpy(), matrix, rtol=1e-12, atol=1e-12)


def test_a_skip_around_a_site_is_not_a_link():
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 1, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x))) + x)

    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    net = Network(Skip().eval(), rs.Plane.through(x[0], x[1], x[2]))
    assert net.link(1) is None


class DenseEquivalent(nn.Module):
    """The MLP with the same affine maps between ReLUs as a conv net: an independent
    oracle (the maps come from autograd, the slice from dense links only)."""

    def __init__(self, segments: list[nn.Module], shapes: list[tuple[int, ...]]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (segment, shape) in enumerate(zip(segments, shapes, strict=False)):
            matrix, bias = _jacobian(segment, shape)
            linear = nn.Linear(matrix.shape[1], matrix.shape[0]).double()
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(matrix))
                linear.bias.copy_(torch.from_numpy(bias))
            layers.append(linear)
            if i < len(segments) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def _conv_net() -> tuple[nn.Module, list[nn.Module], list[tuple[int, ...]]]:
    torch.manual_seed(3)
    segments = [nn.Conv2d(1, 3, 3, padding=1),
                nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, padding=1), _bn(4)),
                nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
                nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 6)),
                nn.Linear(6, 2)]
    layers: list[nn.Module] = []
    for i, segment in enumerate(segments):
        layers.append(segment)
        if i < len(segments) - 1:
            layers.append(nn.ReLU())
    shapes = [(1, 8, 8), (3, 8, 8), (4, 4, 4), (4, 4, 4), (6,)]
    return nn.Sequential(*layers).eval(), segments, shapes


@pytest.mark.parametrize("walk", [False, True])
def test_conv_net_through_sparse_links_equals_its_dense_equivalent(slicer, walk):
    model, segments, shapes = _conv_net()
    oracle = DenseEquivalent(segments, shapes).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    flat = rs.Plane(plane.origin.reshape(-1), plane.basis.reshape(2, -1), plane.extent)
    options = {"link_dense_fraction": 0.999}
    if walk:  # every chained site walks its faces with sparse rank-1 terms, anchors often
        options.update(walk_min_width=1, walk_anchor_steps=7, walk_line_refresh=3)
    part = slicer.replace(**options)(model, plane)
    reference = slicer.replace(link_dense_fraction=1e-9)(oracle, flat)
    assert part.n_regions == reference.n_regions > 100
    np.testing.assert_allclose(np.sort(part.areas()), np.sort(reference.areas()), rtol=1e-9, atol=1e-14)
    assert part.verify(model).ok


def test_links_are_remembered_per_model_state_and_rechecked():
    from reluscope.nets.links import LINKS

    torch.manual_seed(0)
    # float64 from the start: the oracle below (`_jacobian`) converts the layer in place,
    # and a model's key covers its tensors' dtypes
    model = _model(nn.Conv2d(3, 4, 3, padding=1)).double()
    x = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    plane = rs.Plane.through(x[0], x[1], x[2])
    first = Network(model, plane, dense_fraction=0.999)
    built = first.link(1)
    again = Network(model, rs.Plane.through(x[1], x[2], x[0]), dense_fraction=0.999)
    remembered = LINKS.get(model, again.state_key, 1)
    assert remembered.link is built  # remembered, with the link's value at its check point ...
    dense = torch.from_numpy(_dense(built.columns))
    torch.testing.assert_close(remembered.expected, remembered.probe @ dense.T + built.bias,
                               rtol=0, atol=1e-12)
    # ... and reused
    assert again.link(1).columns is built.columns
    # ... until the weights change (a new state key) ...
    with torch.no_grad():
        model[2].weight.mul_(2.0)
    changed = Network(model, plane, dense_fraction=0.999)
    assert changed.state_key != first.state_key
    matrix, _ = _jacobian(model[2], changed.sites[0].shape)
    np.testing.assert_allclose(_dense(changed.link(1).columns), matrix, atol=1e-12)
    # ... or the forward changes behind the key's back (dilation is not state, and the
    # shapes stay): the remembered link fails its re-check and is rebuilt
    changed.link(1)
    model[2].dilation, model[2].padding = (2, 2), (2, 2)
    dilated = Network(model, plane, dense_fraction=0.999)
    assert dilated.state_key == changed.state_key
    matrix, _ = _jacobian(model[2], dilated.sites[0].shape)
    np.testing.assert_allclose(_dense(dilated.link(1).columns), matrix, atol=1e-12)


def test_float64_state_is_remembered_per_model_until_its_tensors_change():
    from reluscope.nets.states import STATES

    torch.manual_seed(0)
    model = _model(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    plane = rs.Plane.through(x[0], x[1], x[2])
    first = Network(model, plane)
    again = Network(model, rs.Plane.through(x[1], x[2], x[0]))
    assert again.state is first.state  # the planes of one checkpoint share one copy
    assert all(t.dtype == torch.float64 for t in first.state.values() if t.is_floating_point())
    # a weight changed in place: a new copy with the new values
    with torch.no_grad():
        model[2].weight.mul_(2.0)
    changed = Network(model, plane)
    assert changed.state is not first.state
    torch.testing.assert_close(changed.state["2.weight"], model[2].weight.double(), rtol=0, atol=0)
    # the copy itself written into (a forward that updates a buffer): not reused
    changed.state["2.bias"].add_(1.0)
    fresh = Network(model, plane)
    assert fresh.state is not changed.state
    torch.testing.assert_close(fresh.state["2.bias"], model[2].bias.double(), rtol=0, atol=0)
    # a model that became non-finite is refused even though an earlier copy is remembered
    with torch.no_grad():
        model[2].bias[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        Network(model, plane)
    STATES.forget(model)
    # the same slice as without any remembered copy
    with torch.no_grad():
        model[2].bias[0] = 0.0
    part = rs.slice_regions(model, plane)
    STATES.forget(model)
    assert rs.slice_regions(model, plane).n_regions == part.n_regions
