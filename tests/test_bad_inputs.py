"""Bad input gets a clear error (what was expected, what was received, how to fix it) or the
exact result: hidden masks, non-finite weights, odd LeakyReLU slopes, meta tensors,
overflowing scales, garbage given to metrics, and config / command-line values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from reluscope.cli import main
from reluscope.experiments.config import config_from_dict, load_config
from reluscope.metrics import anchor_metrics, area_entropy, decision_boundary, gini
from reluscope.train.loop import TrainConfig


def tiny_net(slope: float | None = None) -> nn.Module:
    torch.manual_seed(0)
    act: nn.Module = nn.ReLU() if slope is None else nn.LeakyReLU(slope)
    return nn.Sequential(nn.Linear(2, 4), act, nn.Linear(4, 3)).double()


def plane2d() -> rs.Plane:
    return rs.Plane(torch.zeros(2), torch.eye(2), ((-1.0, 1.0), (-1.0, 1.0)))


class HiddenMask(nn.Module):
    """ReLU, then a second, hand-written ReLU by a boolean mask: g * (g > 0)."""

    def __init__(self, real_relu: bool = True) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(3, 2)
        self.real_relu = real_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.real_relu:
            h = torch.relu(h)
        g = self.b(h) - 0.1
        return g * (g > 0)


@pytest.mark.parametrize("real_relu", [True, False])
def test_a_mask_built_from_values_is_refused_not_ignored(real_relu):
    model = HiddenMask(real_relu).double()
    with pytest.raises(ValueError, match="`gt`|`__gt`"):
        rs.slice_regions(model, plane2d())
    with pytest.raises(ValueError, match="`gt`|`__gt`"):
        rs.path_regions(model, rs.Path.segment(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])))


@pytest.mark.parametrize("where", ["weight", "bias"])
def test_non_finite_parameters_are_refused_by_both_engines(where):
    model = tiny_net()
    with torch.no_grad():
        getattr(model[0], where).view(-1)[1] = float("nan") if where == "weight" else float("inf")
    with pytest.raises(ValueError, match=rf"finite parameters.*`0.{where}` with 1 non-finite"):
        rs.slice_regions(model, plane2d())
    with pytest.raises(ValueError, match=rf"`0.{where}` with 1 non-finite"):
        rs.path_regions(model, rs.Path.segment(torch.zeros(2), torch.ones(2)))


def test_leaky_relu_slopes_nan_refused_and_one_is_no_breakpoint():
    with pytest.raises(ValueError, match="LeakyReLU .* a finite negative slope"):
        rs.slice_regions(tiny_net(float("nan")), plane2d())
    with pytest.raises(ValueError, match="affine"):  # slope 1: the identity, nothing to partition
        rs.slice_regions(tiny_net(1.0), plane2d())
    torch.manual_seed(0)
    mixed = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(1.0), nn.Linear(4, 4), nn.ReLU(),
                          nn.Linear(4, 2)).double()
    part = rs.slice_regions(mixed, plane2d())
    assert len(part.sites) == 1 and part.verify(mixed).ok


def test_a_model_on_the_meta_device_is_refused():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="meta device.*to_empty"):
        rs.slice_regions(model, plane2d())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_asking_for_cuda_without_it_says_so_instead_of_a_torch_assertion():
    for where in (plane2d(), rs.Path.segment(torch.zeros(2), torch.ones(2))):
        with pytest.raises(ValueError, match="CPU-only torch|visible GPU"):
            where.to("cuda")
    with pytest.raises(ValueError, match="torch device such as 'cpu'"):
        plane2d().to("gpu0")
    with pytest.raises(ValueError, match="shapes only"):
        plane2d().to("meta")
    assert plane2d().to("cpu").origin.device.type == "cpu"


def test_scales_float64_cannot_resolve_are_refused():
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="magnitude at most 1e\\+100.*smaller margin"):
        rs.Plane.through(x[0], x[1], x[2], margin=1e300)
    with pytest.raises(ValueError, match="`points` of Path .* magnitude"):
        rs.Path.segment(torch.zeros(4, dtype=torch.float64), 1e300 * torch.eye(4, dtype=torch.float64)[0])
    rs.Plane.through(x[0], x[1], x[2], margin=1e6)  # large but resolvable


def test_metrics_refuse_garbage():
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="at least one value"):
        gini(np.array([]))
    with pytest.raises(ValueError, match="non-negative"):
        area_entropy(np.array([-1.0, 2.0]))
    assert gini(np.array([1.0, 1.0])) == 0.0
    assert area_entropy(np.array([1.0, 1.0])) == pytest.approx(np.log(2))
    model = tiny_net()
    part = rs.slice_regions(model, plane2d())
    with pytest.raises(ValueError, match="`radius` of anchor_metrics must be a positive"):
        anchor_metrics(part, np.zeros((1, 2)), radius=-1)
    other = nn.Sequential(nn.Linear(2, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    with pytest.raises(ValueError, match="the model the partition was computed for"):
        decision_boundary(part, other)
    single = nn.Sequential(model[0], model[1], nn.Linear(4, 1).double())
    with pytest.raises(ValueError, match="at least 2 outputs"):
        decision_boundary(part, single)


def test_a_config_reports_every_problem_at_once():
    bad = {"grid": {"widths": [-4], "seeds": [0, 0]},
           "training": {"lr": float("nan"), "subset": 0},
           "analysis": {"lc_radius": float("inf"), "lc_directions": 100_000, "probe_train": -3,
                        "plane_seed": "abc"},
           "execution": {"workers": 0}}
    with pytest.raises(ValueError) as caught:
        config_from_dict(bad)
    text = str(caught.value)
    assert text.startswith("the experiment config has 9 problems")
    for name in ("grid.widths", "grid.seeds", "training.lr", "training.subset", "analysis.lc_radius",
                 "analysis.lc_directions", "analysis.probe_train", "analysis.plane_seed",
                 "execution.workers"):
        assert f"`{name}`" in text, name


def test_an_empty_config_file_does_not_start_the_default_grid(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"a \[grid\] table"):
        load_config(empty)


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("lr", float("nan")), ("subset", 0), ("subset", -5),
                                          ("weight_decay", -1e-3), ("checkpoints_per_decade", 0)])
def test_train_config_refuses_values_that_would_fail_or_mislead_later(field, value):
    with pytest.raises(ValueError, match=f"`{field}` of TrainConfig"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("args", [["train", "--subset", "-5"], ["train", "--subset", "0"],
                                  ["train", "--lr", "-1"], ["demo", "--workers", "-3"],
                                  ["run", "configs/mnist-small.toml", "--workers", "0"]])
def test_command_line_numbers_are_checked_before_any_work(args, capsys):
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    assert "expected a positive" in capsys.readouterr().err


class Squared(nn.Module):
    """A ReLU network whose output is squared: not piecewise affine, and no comparison to refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y * y


def test_verify_catches_an_output_that_is_not_affine_inside_its_regions():
    model = Squared().double()
    part = rs.slice_regions(model, plane2d())
    report = part.verify(model)
    assert report.nonaffine_regions > 0 and not report.ok
    clean = tiny_net()
    assert rs.slice_regions(clean, plane2d()).verify(clean).nonaffine_regions == 0


def test_config_values_can_be_overridden_on_the_command_line_and_bad_overrides_are_named(tmp_path, capsys):
    from reluscope.experiments.config import apply_overrides

    config = load_config("configs/mnist-small.toml", ["training.epochs=1", "grid.seeds=[0, 1]",
                                                       "name=quick-look", "grid.objectives=[\"simclr\"]",
                                                       "analysis.lc_estimators=[\"ball\"]"])
    assert config.training.epochs == 1 and config.grid.seeds == [0, 1] and config.name == "quick-look"
    assert config.grid.objectives == ["simclr"] and len(config.runs()) == 2 * len(config.grid.widths)
    assert apply_overrides({"grid": {}}, ["grid.backbones=mlp"])["grid"]["backbones"] == "mlp"  # bare word
    for bad in ("training.epochs", "epochs=2", "a.b.c=1", "=3"):
        with pytest.raises(ValueError, match="section.key=value"):
            load_config("configs/mnist-small.toml", [bad])
    with pytest.raises(ValueError, match="`training.epochs`"):  # validated like the file itself
        load_config("configs/mnist-small.toml", ["training.epochs=-2"])
    assert main(["run", "configs/mnist-small.toml", "--set", "oops", "--root", str(tmp_path / "x")]) == 2
    assert "section.key=value" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_engine_options_name_the_bad_field_and_the_default():
    with pytest.raises(ValueError, match="`walk_min_width` of EngineOptions must be an integer >= 0; got -1.*"
                                         "walk_min_width=128"):
        rs.EngineOptions(walk_min_width=-1)
    with pytest.raises(ValueError, match="`sibling_batch` of EngineOptions must be a positive integer"):
        rs.EngineOptions(sibling_batch=2.5)
    with pytest.raises(ValueError, match="`snap_rtol` of EngineOptions must be a relative tolerance in"):
        rs.EngineOptions(snap_rtol=2.0)
    with pytest.raises(ValueError, match="`link_dense_fraction` of EngineOptions must be a relative"):
        rs.EngineOptions(link_dense_fraction=0.0)
    with pytest.raises(ValueError, match="`pool_link_difference` of EngineOptions must be a relative "
                                         "tolerance in \\(0, 1\\); got 1.5.*The default is 0.25"):
        rs.EngineOptions(pool_link_difference=1.5)
    with pytest.raises(ValueError, match="`arrange` of EngineOptions must be True or False"):
        rs.EngineOptions(arrange=1)
    with pytest.raises(ValueError, match="`pool_values` of EngineOptions must be True or False; "
                                         "got 'yes'.*Pass a bool"):
        rs.EngineOptions(pool_values="yes")
    with pytest.raises(ValueError, match="`arrange_batch_chords` of EngineOptions must be a positive "
                                         "integer; got 0.*arrange_batch_chords=65536"):
        rs.EngineOptions(arrange_batch_chords=0)
    for name, default in (("slot_batch", 262144), ("pool_compact_slots", 262144),
                          ("sign_batch", 32768)):
        with pytest.raises(ValueError, match=f"`{name}` of EngineOptions must be a positive "
                                             f"integer; got -3.*{name}={default}"):
            rs.EngineOptions(**{name: -3})
    with pytest.raises(TypeError, match="`options` of slice_regions must be an EngineOptions"):
        rs.slice_regions(tiny_net(), plane2d(), options={"snap_rtol": 1e-9})


def test_to_frame_refuses_a_model_that_is_not_a_module():
    part = rs.slice_regions(tiny_net(), plane2d())
    with pytest.raises(TypeError, match="`model` of Partition2D.to_frame must be a torch.nn.Module"):
        part.to_frame(lambda x: x)
