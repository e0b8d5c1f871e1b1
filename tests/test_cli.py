"""The command line: `reluscope demo` end to end on the real MNIST files."""

import json

import pytest

from reluscope.cli import main


def test_demo_writes_picture_partitions_and_summary(tmp_path, data_dir):
    assert main(["demo", "--out", str(tmp_path), "--data", str(data_dir)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["init"]["verified"] and summary["trained"]["verified"]
    assert summary["init"]["regions"] > 1000
    assert (tmp_path / "partitions.png").stat().st_size > 10_000
    assert (tmp_path / "partition_trained.npz").is_file()


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "demo" in capsys.readouterr().err
