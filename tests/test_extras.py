"""The geometry API runs without the experiments/plot extras; their features name the extra."""

import subprocess
import sys
import textwrap

import pytest

import reluscope as rs
from reluscope._extras import require


def test_the_geometry_api_imports_no_extra():
    script = textwrap.dedent("""
        import sys, torch, reluscope as rs
        from reluscope import metrics
        x = torch.rand(3, 784, dtype=torch.float64)
        net = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
        part = rs.slice_regions(net, rs.Plane.through(x[0], x[1], x[2]))
        rs.path_regions(net, rs.Path.segment(x[0], x[1]))
        assert part.verify(net).ok
        metrics.summary(part)
        print(sorted(m for m in ("pandas", "pyarrow", "matplotlib") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_names_what_to_install():
    with pytest.raises(rs.MissingDependencyError, match=r"pip install 'reluscope\[experiments\]'") as info:
        require(("pandas", "not_a_real_package_xyz"), "experiments", "the results store")
    assert isinstance(info.value, ImportError)
    assert "not_a_real_package_xyz not installed" in str(info.value)
    require(("numpy",), "core", "anything")  # installed: silent
