"""torch.export programs are sliced exactly; TorchScript and unsafe loads are refused clearly."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from reluscope.cli.slice import archive_kind, load_model
from reluscope.errors import InputValueError, UnsupportedModelError

BATCH = {0: torch.export.Dim("batch")}


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Dropout(0.1), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2)).eval()


def export(model: nn.Module, example: torch.Tensor, dynamic: bool = True) -> torch.export.ExportedProgram:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(model, (example,), dynamic_shapes=(BATCH,) if dynamic else None)


@pytest.fixture(scope="module")
def plane() -> rs.Plane:
    x = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return rs.Plane.through(x[0], x[1], x[2])


@pytest.mark.parametrize("decompose", [False, True])
def test_an_exported_program_has_the_eager_models_regions(plane, decompose):
    model = small_cnn()
    program = export(model, torch.randn(3, 1, 6, 6))
    if decompose:  # core ATen: convolution, addmm, view by the input's batch size
        program = program.run_decompositions()
    graph = program.module()
    eager = rs.slice_regions(model, plane)
    exported = rs.slice_regions(graph, plane)
    assert exported.n_regions == eager.n_regions > 20
    np.testing.assert_allclose(np.sort(exported.areas()), np.sort(eager.areas()), rtol=1e-9, atol=1e-12)
    assert exported.verify(graph).ok
    ends = plane.to_input(np.array([[0.1, 0.2], [0.8, 0.6]]))
    segment = rs.Path.segment(ends[0], ends[1])
    assert rs.path_regions(graph, segment).n_pieces == rs.path_regions(model, segment).n_pieces > 1


def test_an_export_fixed_to_one_batch_size_gets_told_how_to_export(plane):
    graph = export(small_cnn(), torch.randn(3, 1, 6, 6), dynamic=False).module()
    with pytest.raises(InputValueError, match=r"dynamic batch axis.*Dim\('batch'\)"):
        rs.slice_regions(graph, plane)


def test_exported_operators_not_known_to_be_affine_are_refused(plane):
    class Cumulative(nn.Module):
        def forward(self, x):
            return torch.relu(x.flatten(1)).cumsum(1)  # cumsum: affine, but not on the list

    gelu = nn.Sequential(nn.Flatten(), nn.Linear(36, 4), nn.GELU(), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedModelError, match="gelu"):
        rs.slice_regions(export(gelu, torch.randn(3, 1, 6, 6)).run_decompositions().module(), plane)
    with pytest.raises(UnsupportedModelError, match="cumsum.*not know to be affine"):
        rs.slice_regions(export(Cumulative(), torch.randn(3, 1, 6, 6)).module(), plane)
    training = nn.Sequential(nn.Flatten(), nn.Linear(36, 4), nn.Dropout(0.5), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModelError, match="dropout in training mode"):
        rs.slice_regions(export(training.train(), torch.randn(3, 1, 6, 6)).module(), plane)


def test_the_slice_command_loads_exports_only_when_trusted_and_refuses_torchscript(tmp_path):
    model = small_cnn()
    torch.export.save(export(model, torch.randn(3, 1, 6, 6)), tmp_path / "model.pt2")
    torch.jit.save(torch.jit.script(model), tmp_path / "model.ts")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    assert archive_kind(tmp_path / "model.pt2") == "export"
    assert archive_kind(tmp_path / "model.ts") == "torchscript"
    assert archive_kind(tmp_path / "weights.pt") is None
    with pytest.raises(InputValueError, match="--allow-pickle for a torch.export program"):
        load_model(tmp_path / "model.pt2")
    with pytest.warns(UserWarning, match="may unpickle"):
        loaded = load_model(tmp_path / "model.pt2", allow_pickle=True)
    x = torch.randn(4, 1, 6, 6)
    torch.testing.assert_close(loaded(x), model(x))
    for trusted in (False, True):
        with pytest.raises(InputValueError, match="TorchScript archive.*torch.export"):
            load_model(tmp_path / "model.ts", allow_pickle=trusted)
