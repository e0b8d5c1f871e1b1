"""The training device: resolved and refused clearly; CPU training is unchanged by it; a CUDA
run (only where a GPU is present) writes checkpoints that load on the CPU."""

import pytest
import torch

from reluscope.experiments.config import config_from_dict
from reluscope.train import TrainConfig
from reluscope.train.checkpoints import load_state
from reluscope.train.device import cpu_state, resolve_device
from reluscope.train.loop import train

TINY = dict(objective="moco", epochs=1, subset=256, batch_size=128, width=16, depth=1)


def test_device_names_resolve_or_are_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu", "meta"):
        with pytest.raises(ValueError, match="'cpu', 'cuda', 'cuda:N' or 'auto'"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="a CUDA device this machine has"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="execution.device"):
        config_from_dict({"execution": {"device": "gpu"}})
    assert config_from_dict({"execution": {"device": "cuda:1"}}).execution.device == "cuda:1"
    nested = cpu_state({"a": [torch.ones(2)], "b": (torch.zeros(1), 3)})
    assert nested["b"][1] == 3 and nested["a"][0].device.type == "cpu"


def test_cpu_training_is_the_same_with_the_device_named(tmp_path, data_dir):
    config = TrainConfig(**TINY)
    default = train(config, tmp_path / "a", data_dir=data_dir, quiet=True)
    named = train(config, tmp_path / "b", data_dir=data_dir, quiet=True, device="auto" if not
                  torch.cuda.is_available() else "cpu")
    for (step, a), (_, b) in zip(default.checkpoints, named.checkpoints, strict=True):
        sa, sb = load_state(a)["objective"], load_state(b)["objective"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_run_checkpoints_on_the_cpu_and_resumes(tmp_path, data_dir):
    result = train(TrainConfig(**TINY), tmp_path / "gpu", data_dir=data_dir, quiet=True, device="cuda")
    state = load_state(result.checkpoints[-1][1])
    assert all(t.device.type == "cpu" for t in state["objective"].values())
    assert next(result.objective.parameters()).device.type == "cpu"
    again = train(TrainConfig(**TINY), tmp_path / "gpu", data_dir=data_dir, quiet=True, device="cuda")
    assert again.resumed_from == result.checkpoints[-1][0]
