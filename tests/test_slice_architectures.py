"""Architectures the engine supports, and the ones it refuses (with clear messages)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reluscope as rs
from conftest import square

# every test runs with both ways the 2D engine finds chords


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.outer(F.relu(self.inner(x))))


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(2, 6)
        self.blocks = nn.ModuleList([ResidualBlock(6), ResidualBlock(6)])
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x).relu()
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def _cnn_bn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 2 * 2, 5),
                        nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    net.train()
    net(torch.randn(16, 1, 6, 6))  # populate running statistics
    return net.eval()


def test_residual_network_with_functional_relus(slicer):
    torch.manual_seed(3)
    model = ResNetish().eval()
    part = slicer(model, square(2.0))
    assert [s.size for s in part.sites] == [6, 6, 6, 6, 6]
    assert part.sites[1].name.startswith("blocks.0")
    assert part.verify(model).ok
    assert part.n_regions > 10


def test_cnn_with_batchnorm_eval_avgpool_and_dropout_eval(slicer):
    model = _cnn_bn()
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    part = slicer(model, rs.Plane.through(x[0], x[1], x[2], margin=0.3))
    assert [s.shape for s in part.sites] == [(3, 4, 4), (5,)]
    assert part.verify(model).ok


def test_model_is_not_modified(slicer):
    model = _cnn_bn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    slicer(model, rs.Plane.through(x[0], x[1], x[2]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert not model.training


@pytest.mark.parametrize(
    ("module", "pattern"),
    [
        (nn.GELU(), r"module `1 \(GELU\)`.*`gelu`.*replace it"),
        (nn.Tanh(), r"`tanh`"),
        (nn.Sigmoid(), r"`sigmoid`"),
        (nn.Hardswish(), r"`hardswish`"),
    ],
)
def test_refuses_non_piecewise_affine_activations(slicer, module, pattern):
    net = nn.Sequential(nn.Linear(2, 3), module, nn.Linear(3, 1))
    with pytest.raises(rs.UnsupportedModelError, match=pattern):
        slicer(net, square())


def test_refuses_padded_max_pool_with_module_path(slicer):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                        nn.Sequential(nn.MaxPool2d(2, padding=1)), nn.Flatten(), nn.Linear(18, 1))
    x = torch.rand(3, 1, 6, 6)
    with pytest.raises(rs.UnsupportedModelError, match=r"`2.0 \(MaxPool2d\)`.*max_pool2d.*padding"):
        slicer(net, rs.Plane.through(x[0], x[1], x[2]))


def test_refuses_training_mode_modules(slicer):
    bn = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)).train()
    with pytest.raises(rs.UnsupportedModelError, match=r"batch statistics.*model.eval\(\)"):
        slicer(bn, square())
    drop = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 1)).train()
    with pytest.raises(rs.UnsupportedModelError, match=r"dropout in training mode.*model.eval"):
        slicer(drop, square())


def test_no_hooks_survive_an_error(slicer):
    net = nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1))
    with pytest.raises(rs.UnsupportedModelError):
        slicer(net, square())
    for module in net.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    # and torch functions are no longer intercepted
    assert torch.equal(F.gelu(torch.zeros(1)), torch.zeros(1))


def test_affine_model_and_bad_arguments(slicer):
    with pytest.raises(rs.UnsupportedModelError, match="at least one ReLU"):
        slicer(nn.Linear(2, 1), square())
    with pytest.raises(TypeError, match=r"`model` of slice_regions must be a torch.nn.Module"):
        slicer(lambda x: x, square())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`plane` of slice_regions must be a reluscope.Plane"):
        slicer(nn.Linear(2, 1), (0, 1))  # type: ignore[arg-type]
    wrong = nn.Sequential(nn.Linear(5, 3), nn.ReLU())
    with pytest.raises(rs.InputValueError, match=r"shaped like the plane's origin \(2,\).*error from"):
        slicer(wrong, square())


def test_data_dependent_control_flow_is_refused(slicer):
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            h = torch.relu(self.lin(x))
            if float(x[0, 0]) > 0.5:  # different ReLU calls for different inputs
                h = torch.relu(h)
            return h

    with pytest.raises(rs.UnsupportedModelError, match="data-dependent control"):
        slicer(Branchy(), square())


def test_region_budget_is_enforced_with_a_clear_error(slicer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 40), nn.ReLU(), nn.Linear(40, 1))
    with pytest.raises(rs.TooManyRegionsError, match=r"max_regions=50 .*smaller domain"):
        slicer(net, square(3.0), max_regions=50)
    with pytest.raises(rs.InputValueError, match="positive integer"):
        slicer(net, square(), max_regions=0)
