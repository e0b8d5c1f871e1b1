"""Shared fixtures: small networks with known geometry, and the dataset directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Dataset folder: $RELUSCOPE_DATA, else ../shared/datasets beside the checkout."""
    env = os.environ.get("RELUSCOPE_DATA")
    path = Path(env) if env else SHARED_DATA
    if not (path / "mnist").is_dir():
        pytest.skip(f"MNIST files not found under {path}; set RELUSCOPE_DATA")
    return path


def linear_relu(weight: list[list[float]], bias: list[float], out: int = 1) -> nn.Sequential:
    """Linear(2, k) -> ReLU -> Linear(k, out) with the given first-layer parameters."""
    w = torch.tensor(weight, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(2, w.shape[0]), nn.ReLU(), nn.Linear(w.shape[0], out)).double()
    with torch.no_grad():
        net[0].weight.copy_(w)
        net[0].bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return net


def square(half: float = 1.0) -> rs.Plane:
    """The plane of R^2 itself, domain [-half, half]^2."""
    return rs.Plane(torch.zeros(2), torch.eye(2), ((-half, half), (-half, half)))


def random_mlp(seed: int, widths: list[int], d_in: int = 2) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    prev = d_in
    for w in widths:
        lin = nn.Linear(prev, w)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, prev, generator=gen) / np.sqrt(prev))
            lin.bias.copy_(0.5 * torch.randn(w, generator=gen))
        layers += [lin, nn.ReLU()]
        prev = w
    layers.append(nn.Linear(prev, 3))
    return nn.Sequential(*layers).eval()


def grid_patterns(model: nn.Module, plane: rs.Plane, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Activation patterns on an n x n grid of the domain (brute-force oracle).

    Returns the grid points (n*n, 2) and the patterns (n*n, total neurons) as bool.
    """
    from reluscope.nets.plane_network import Network

    (s0, s1), (t0, t1) = plane.extent
    s = np.linspace(s0, s1, n + 2)[1:-1]
    t = np.linspace(t0, t1, n + 2)[1:-1]
    pts = np.stack(np.meshgrid(s, t), -1).reshape(-1, 2)
    net = Network(model, plane)
    pre = net.plane_preactivations(torch.from_numpy(pts))
    return pts, np.concatenate([(z > 0).cpu().numpy() for z in pre], axis=1)


class Slicer:
    """``slice_regions`` with fixed EngineOptions (``slicer.replace(...)`` changes some)."""

    def __init__(self, options: rs.EngineOptions) -> None:
        self.options = options

    def __call__(self, model, plane, **kwargs):
        return rs.slice_regions(model, plane, options=self.options, **kwargs)

    def replace(self, **changes) -> Slicer:
        import dataclasses

        return Slicer(dataclasses.replace(self.options, **changes))


#: the 2D engine's two ways to find chords
ENGINE_PATHS = {"vertex values": rs.EngineOptions(), "face maps": rs.EngineOptions(values_max_entries=0)}


@pytest.fixture(params=list(ENGINE_PATHS), scope="module")
def slicer(request) -> Slicer:
    """Run a slice test with each of the 2D engine's two ways to find chords."""
    return Slicer(ENGINE_PATHS[request.param])


def browser_screenshot(page: Path, out: Path, width: int = 1400, height: int = 3000, fragment: str = ""):
    """A headless Chromium screenshot of a local HTML page (opened at ``#fragment`` if
    given) as an (H, W, 3) float array, or pytest.skip when no Chromium is installed
    (scripts/test.sh installs Debian's)."""
    import shutil
    import subprocess

    import matplotlib.image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (scripts/test.sh installs it with apt-get)")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={out.parent / 'chromium-profile'}", f"--window-size={width},{height}",
                    f"--screenshot={out}", page.resolve().as_uri() + (f"#{fragment}" if fragment else "")],
                   check=True, capture_output=True, timeout=120)
    return matplotlib.image.imread(out)[..., :3]
