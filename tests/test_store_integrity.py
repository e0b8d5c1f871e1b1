"""A finished store survives corruption and concurrency: corrupt or truncated result parts
and checkpoints are named, set aside and recomputed with nothing else lost; two processes
on one store never do a run twice; stale locks are taken over; names cannot escape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reluscope.errors import RunLockedError
from reluscope.experiments.config import config_from_dict
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import Store, load_results

pytestmark = pytest.mark.slow  # trains networks / runs grids end to end

SMALL = {
    "name": "integrity",
    "grid": {"objectives": ["supervised", "simclr"], "widths": [8], "depth": 1},
    "training": {"epochs": 1, "batch_size": 128, "subset": 256, "checkpoints_per_decade": 1},
    "analysis": {"planes": 1, "paths": 2, "lc_points": 5, "lc_directions": 2, "probe_train": 300,
                 "probe_test": 200, "networks": ["backbone"]},
    "execution": {"workers": 1},
}


def exact_rows(frame):
    rows = frame[~frame["metric"].str.startswith("time.")]
    return rows.sort_values(["run_id", "step", "metric"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("store") / "exp"
    report = run_experiment(config_from_dict(SMALL), root, data_dir=data_dir, quiet=True)
    assert len(report.completed) == 2
    return root, exact_rows(load_results(root))


def copy_store(src, dst):
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def test_a_flipped_byte_in_a_result_part_is_named_set_aside_and_recomputed(finished, tmp_path, data_dir):
    root, reference = finished
    root = copy_store(root, tmp_path / "exp")
    part = sorted(root.glob("runs/simclr*/results/*.parquet"))[1]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=rf"{part.name} is corrupt .*SHA-256.*recomputed"):
        partial = load_results(root)
    assert partial["step"].nunique() >= 1 and (part.parent / (part.name + ".corrupt")).is_file()
    other = sorted(root.glob("runs/supervised*/results/*.parquet"))
    before = {p: p.stat().st_mtime_ns for p in other}
    report = run_experiment(config_from_dict(SMALL), root, data_dir=data_dir, quiet=True)
    assert report.completed == [r for r in report.completed if r.startswith("simclr")] and report.completed
    assert {p: p.stat().st_mtime_ns for p in other} == before  # nothing else was recomputed
    again = exact_rows(load_results(root))
    np.testing.assert_allclose(again["value"], reference["value"], rtol=1e-9)


def test_a_truncated_part_does_not_kill_the_report_and_is_recomputed(finished, tmp_path, data_dir):
    root, reference = finished
    root = copy_store(root, tmp_path / "exp")
    part = sorted(root.glob("runs/supervised*/results/*.parquet"))[-1]
    part.write_bytes(part.read_bytes()[:100])
    (part.parent / (part.name + ".sha256")).unlink()  # as a part written before checksums
    with pytest.warns(RuntimeWarning, match="cannot be read as Parquet"):
        assert len(load_results(root)) < len(reference) + 1000
    run_experiment(config_from_dict(SMALL), root, data_dir=data_dir, quiet=True)
    np.testing.assert_allclose(exact_rows(load_results(root))["value"], reference["value"], rtol=1e-9)


def test_corrupt_and_truncated_checkpoints_are_set_aside_and_retrained(finished, tmp_path, data_dir):
    from reluscope.train.checkpoints import completed_checkpoints, load_state
    from reluscope.train.loop import TrainConfig, train

    config = TrainConfig(objective="simclr", width=8, depth=1, epochs=1, batch_size=128, subset=256,
                         checkpoints_per_decade=1)
    run = tmp_path / "run"
    first = train(config, run, data_dir=data_dir, quiet=True)
    final = {k: v.clone() for k, v in first.objective.state_dict().items()}
    steps = [s for s, _ in first.checkpoints]
    middle = first.checkpoints[1][1]
    data = bytearray(middle.read_bytes())
    data[-200] ^= 0x01  # one flipped byte
    middle.write_bytes(bytes(data))
    last = first.checkpoints[-1][1]
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    with pytest.warns(RuntimeWarning, match="does not match the checksum"):
        left = completed_checkpoints(run)
    assert [s for s, _ in left] == [steps[0], *steps[2:-1]]
    again = train(config, run, data_dir=data_dir, quiet=True)
    assert [s for s, _ in again.checkpoints] == steps
    for key, value in again.objective.state_dict().items():
        assert np.array_equal(value.numpy(), final[key].numpy()), key
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt.*cannot read.*Delete it"):
        load_state(bad)


def test_two_processes_on_one_store_never_run_the_same_run(tmp_path, data_dir):
    root = tmp_path / "exp"
    config = {**SMALL, "grid": {**SMALL["grid"], "objectives": ["supervised", "simclr", "byol"]}}
    script = textwrap.dedent(f"""
        import json
        from reluscope.experiments.config import config_from_dict
        from reluscope.experiments.runner import run_experiment
        r = run_experiment(config_from_dict({config!r}), {str(root)!r}, data_dir={str(data_dir)!r},
                           quiet=True)
        print(json.dumps({{"completed": r.completed, "busy": r.busy, "failed": r.failed}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=os.environ) for _ in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    done = [set(o["completed"]) for o in outs]
    assert not (done[0] & done[1])  # no run trained or analysed twice
    assert len(done[0] | done[1]) + len(set(outs[0]["busy"]) & set(outs[1]["busy"])) <= 3
    final = run_experiment(config_from_dict(config), root, data_dir=data_dir, quiet=True)
    assert len(final.skipped) + len(final.completed) == 3 and not final.busy
    results = load_results(root)
    assert not results.duplicated(["run_id", "step", "metric"]).any()
    assert not list(root.glob("runs/*/lock.json"))


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path):
    store = Store(tmp_path)
    lock = store.run_dir("r") / "lock.json"
    lock.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    import socket

    lock.write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "since": "then"}))
    with store.lock("r"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=rf"lock held by pid {os.getpid()}.*Wait for it"):
            with store.lock("r"):
                pass
    assert not lock.exists()


def test_names_cannot_escape_the_output_folder():
    for bad in ("../../../escape", "a/b", ".hidden", 42, ""):
        with pytest.raises(ValueError, match="`name` of the experiment config must be a folder name"):
            config_from_dict({"name": bad})
    assert config_from_dict({"name": "mnist-study_2.0"}).name == "mnist-study_2.0"


def test_a_store_resumes_with_other_workers_and_with_fields_added_since():
    from reluscope.experiments.runner import same_results

    config = config_from_dict(SMALL)
    stored = config.to_dict()
    assert same_results({**stored, "execution": {"workers": 2, "engine": "local"}}, config)
    older = {**stored, "findings": {k: v for k, v in stored["findings"].items() if k != "detection_z"}}
    assert same_results(older, config)  # a field added later takes its default
    assert not same_results({**stored, "training": {**stored["training"], "epochs": 2}}, config)


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return {int(c) for c in listing.read().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _grid_with_two_workers(tmp_path, data_dir) -> tuple[subprocess.Popen, set[int]]:
    """A `reluscope run` with 2 workers on slow enough runs, once its workers are busy."""
    import time

    config = tmp_path / "grid.toml"
    config.write_text('name = "stop"\n[grid]\nobjectives = ["supervised", "simclr"]\nwidths = [64]\n'
                      "depth = 2\n[training]\nepochs = 3\nsubset = 20000\n[execution]\nworkers = 2\n")
    proc = subprocess.Popen([sys.executable, "-m", "reluscope", "run", str(config), "--root",
                             str(tmp_path / "exp"), "--data", str(data_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ)
    deadline = time.time() + 120
    workers: set[int] = set()
    while time.time() < deadline and not list((tmp_path / "exp").glob("runs/*/lock.json")):
        time.sleep(0.5)
    workers = _children(proc.pid)
    assert list((tmp_path / "exp").glob("runs/*/lock.json")) and workers, "the grid never started a run"
    return proc, workers


def _gone(pids: set[int], seconds: float) -> bool:
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_grid_and_its_workers_and_says_how_to_resume(tmp_path, data_dir):
    import signal

    proc, workers = _grid_with_two_workers(tmp_path, data_dir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "resume" in err
    assert _gone(workers, 30), "workers outlived the grid"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_do_not_outlive_a_grid_killed_with_sigkill(tmp_path, data_dir):
    import signal

    proc, workers = _grid_with_two_workers(tmp_path, data_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _gone(workers, 30), "workers outlived the grid"


def test_a_lock_still_being_written_is_not_taken_for_stale(tmp_path):
    """os.open(O_EXCL) creates the lock empty; its JSON follows. A second process must wait for
    it, not unlink it as a crash's leftover (two processes once ran one run this way)."""
    import socket
    import threading
    import time

    store = Store(tmp_path / "exp")
    path = store.run_dir("r") / "lock.json"
    path.parent.mkdir(parents=True)
    path.write_text("")  # created, not yet written
    live = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}
    writer = threading.Timer(0.3, lambda: path.write_text(json.dumps(live)))
    writer.start()
    try:
        with pytest.raises(RunLockedError, match="held by pid"), store.lock("r"):
            pass
    finally:
        writer.join()
    path.write_text("")  # left empty by a crash long ago: stale
    old = time.time() - 60
    os.utime(path, (old, old))
    with store.lock("r"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_grid_may_grow_but_not_shrink():
    from reluscope.experiments.runner import same_results

    config = config_from_dict(SMALL)
    stored = config.to_dict()
    grid = stored["grid"]
    grown = config_from_dict({**SMALL, "grid": {**grid, "seeds": [*grid["seeds"], 7],
                                                "objectives": [*grid["objectives"], "mae"]}})
    assert same_results(stored, grown)  # more seeds and objectives: new runs only
    assert not same_results(grown.to_dict(), config)  # fewer: the store holds runs it does not
    deeper = config_from_dict({**SMALL, "grid": {**grid, "depth": grid["depth"] + 1}})
    assert not same_results(stored, deeper)
