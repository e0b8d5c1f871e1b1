"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def test_readme_python_examples_run(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("RELUSCOPE_DATA", str(data_dir))
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), namespace)
    assert "True" in capsys.readouterr().out  # the example prints part.verify(model).ok
