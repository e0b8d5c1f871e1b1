"""Run an experiment grid: train every run, analyse every checkpoint, skip finished work.

Each run is one job: train (resuming from its last checkpoint), then analyse each
checkpoint not yet in the store. Jobs run in local processes (``execution.workers``),
or as tasks on an existing Ray cluster (``execution.engine = "ray"``). A failing job is
recorded in its folder (``error.txt``) and reported; the others go on. Rerunning the
same command resumes an interrupted grid: nothing finished is recomputed.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reluscope._files import safe_name
from reluscope._validation import message
from reluscope.errors import InputValueError, RunLockedError
from reluscope.experiments.analyze import analyse, choose_probes, classifier_metrics
from reluscope.experiments.config import ExperimentConfig, RunSpec, config_from_dict
from reluscope.experiments.store import Store
from reluscope.progress import progress_bar, quiet_by_default
from reluscope.train.loggers import Loggers, TensorBoardLogger, WandbLogger
from reluscope.train.loop import load_checkpoint, train
from reluscope.train.objectives import OBJECTIVES


@dataclass
class GridReport:
    """Outcome of one invocation: runs done, skipped (already complete) and failed."""

    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: runs another live process holds the lock of (left to it)
    busy: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_job(config: ExperimentConfig, spec: RunSpec, root: str, data_dir: str | None,
            quiet: bool | None = None) -> str:
    """Train and analyse one run (safe to call again after an interruption); returns its id.

    The run's lock is held throughout (:meth:`Store.lock`): a second process on the same
    store gets :class:`RunLockedError` for it instead of doing the work twice.
    """
    store = Store(root)
    with store.lock(spec.run_id):
        if store.is_complete(spec.run_id) and store.verify_run(spec.run_id):
            raise _AlreadyComplete(spec.run_id)  # finished by another process meanwhile
        return _train_and_analyse(config, spec, store, data_dir, quiet)


class _AlreadyComplete(Exception):
    """The run was completed by another process between scheduling and taking its lock."""


def _train_and_analyse(config: ExperimentConfig, spec: RunSpec, store: Store, data_dir: str | None,
                       quiet: bool | None) -> str:
    run_id = spec.run_id
    run_dir = store.run_dir(run_id)
    dataset = spec.train.dataset
    stored = store.read_json(f"planes/{safe_name(dataset)}.json")
    probes, _ = choose_probes(dataset, config.analysis, data_dir, stored)
    on_log = run_loggers(config, spec, run_dir)
    try:
        result = train(spec.train, run_dir, data_dir=data_dir, quiet=quiet,  # the current run's bar
                       device=config.execution.device, on_log=on_log if on_log.loggers else None)
    finally:
        on_log.close()
    family = OBJECTIVES[spec.train.objective][0].family  # type: ignore[attr-defined]
    todo = [(s, p) for s, p in result.checkpoints if not store.has_step(run_id, s)]
    pictured = pictured_steps(config, spec, [s for s, _ in result.checkpoints])
    finetuned = spread_steps(spec, [s for s, _ in result.checkpoints], config.analysis.finetune_checkpoints,
                             last_first=True) if config.analysis.finetune_fractions else set()
    for step, path in progress_bar(todo, desc=f"analyse {run_id}", disable=quiet):
        _, objective, meta = load_checkpoint(path)
        keep = None
        if step in pictured:
            keep = run_dir / "partitions" / f"step_{step:08d}"
            keep.mkdir(parents=True, exist_ok=True)
        values = analyse(objective, dataset, config.analysis, probes, data_dir, keep=keep,
                         finetune=step in finetuned)
        values.update(classifier_metrics(objective, spec.train, data_dir, config.analysis.probe_test,
                                         config.analysis))
        for key, value in meta.get("metrics", {}).items():
            values[f"train.{key}"] = float(value)
        c = spec.train
        rows = [{"run_id": run_id, "dataset": c.dataset, "objective": c.objective, "family": family,
                 "backbone": c.backbone, "width": c.width, "seed": c.seed, "step": step,
                 "epoch": float(meta["epoch"]), "metric": k, "value": float(v)}
                for k, v in sorted(values.items())]
        store.write_rows(run_id, step, rows)
    # float reductions depend on the thread count (~1e-5 relative): record it with the run
    store.mark_complete(run_id, {"checkpoints": [s for s, _ in result.checkpoints],
                                 "train_seconds": result.seconds, "torch_threads": torch.get_num_threads()})
    return run_id


def pictured_steps(config: ExperimentConfig, spec: RunSpec, steps: list[int]) -> set[int]:
    """Checkpoints whose partitions are kept for pictures (``analysis.keep_checkpoints``).

    Only runs of the first ``analysis.keep_seeds`` seeds of the grid keep any; the steps are
    those of :func:`spread_steps`, so a published store holds a few partitions per objective.
    """
    a = config.analysis
    if a.keep_partitions == 0 or spec.train.seed not in sorted(config.grid.seeds)[: a.keep_seeds]:
        return set()
    return spread_steps(spec, steps, a.keep_checkpoints)


def spread_steps(spec: RunSpec, steps: list[int], count: int, last_first: bool = False) -> set[int]:
    """`count` checkpoints of a run: the first, the end of the first epoch and the last (or,
    with `last_first`, the last, then the end of epoch 1, then the first), then more spread
    evenly over the schedule."""
    ordered = sorted(steps)
    if not ordered or count < 1:
        return set()
    per_epoch = max(1, spec.train_steps_per_epoch())
    first_epoch = min(ordered, key=lambda s: abs(s - per_epoch))
    picks = [ordered[-1], first_epoch, ordered[0]] if last_first else [ordered[0], first_epoch, ordered[-1]]
    picks += [ordered[round(i)] for i in np.linspace(0, len(ordered) - 1, max(count, 2))]
    return set(list(dict.fromkeys(picks))[:count])


def run_loggers(config: ExperimentConfig, spec: RunSpec, run_dir: Path) -> Loggers:
    """The ``[execution] loggers`` of one run (TensorBoard under its folder, W&B by name)."""
    loggers: list[Any] = []
    if "tensorboard" in config.execution.loggers:
        loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
    if "wandb" in config.execution.loggers:
        loggers.append(WandbLogger(config.name, name=spec.run_id, config=spec.train.to_dict(),
                                   directory=run_dir))
    return Loggers(loggers)


def same_results(stored: dict[str, Any], config: ExperimentConfig) -> bool:
    """Whether a stored experiment config asks for the same results as `config`.

    The stored one is read with today's defaults for fields added since it was written, and
    the ``[execution]`` table (workers, engine) is left out: it changes how, not what. The
    grid may grow (more seeds, objectives, ...: finished runs are kept, only new ones run),
    never shrink or change its depth; every other table must be the same.
    """
    try:
        before = config_from_dict(stored).to_dict()
    except InputValueError:
        return False
    now = config.to_dict()
    grid_before, grid_now = before.pop("grid"), now.pop("grid")
    before.pop("execution", None)
    now.pop("execution", None)
    for name, value in grid_before.items():
        if isinstance(value, list):
            if not set(value) <= set(grid_now.get(name, [])):
                return False
        elif grid_now.get(name) != value:
            return False
    return before == now


#: Environment variables that size the thread pools of numpy's BLAS and OpenMP.
NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def native_threads(threads: int) -> Iterator[None]:
    """Processes started inside this block size their BLAS / OpenMP pools to `threads`.

    A spawned worker loads numpy before its initializer runs, so the limit has to be in the
    environment it inherits: without it each worker's OpenBLAS starts one thread per core,
    and on 2 cores two workers' idle BLAS threads spin against each other's work (~15%
    more CPU per checkpoint analysis measured here). The caller's environment is restored.
    """
    saved = {name: os.environ.get(name) for name in NATIVE_THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in NATIVE_THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_init(threads: int, parent: int) -> None:
    torch.set_num_threads(threads)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the grid process dies, even by ``kill -9``
    (Linux ``PR_SET_PDEATHSIG``; elsewhere workers end when their task queue closes)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while a grid runs, so workers are stopped and the store is
    left resumable (a ``kill`` of a background grid otherwise orphans its workers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_workers(pool: futures.ProcessPoolExecutor) -> None:
    """Cancel queued runs and terminate the running ones (their checkpoints stay; the next
    run of the grid resumes them)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=10)


def run_experiment(config: ExperimentConfig, root: str | Path, *, data_dir: str | Path | None = None,
                   workers: int | None = None, quiet: bool | None = None) -> GridReport:
    """Run (or resume) the whole grid under `root`; see the module docstring."""
    start = time.perf_counter()
    store = Store(root)
    previous = store.read_json("experiment.json")
    if previous is not None and not same_results(previous, config):
        raise InputValueError(message(f"experiment folder {str(root)!r}", "empty or holding this experiment",
                                      "results of a different config (only the grid's lists may grow)",
                                      "Use a new folder (--root), or put the stored config back."))
    store.write_json("experiment.json", config.to_dict())
    data = None if data_dir is None else str(data_dir)
    for dataset in config.grid.datasets:  # fix the images every run looks at, once
        name = f"planes/{safe_name(dataset)}.json"
        _, stored = choose_probes(dataset, config.analysis, data, store.read_json(name))
        store.write_json(name, stored)
    report = GridReport()
    pending = []
    for spec in config.runs():
        if store.is_complete(spec.run_id) and store.verify_run(spec.run_id):
            report.skipped.append(spec.run_id)
        else:
            pending.append(spec)
    with _sigterm_as_interrupt():
        if config.execution.engine == "ray":
            _run_on_ray(config, pending, str(root), data, report, store)
        else:
            _run_locally(config, pending, str(root), data, workers or config.execution.workers, report,
                         store, quiet)
    report.seconds = time.perf_counter() - start
    return report


def _record(report: GridReport, store: Store, spec: RunSpec, error: BaseException | None) -> None:
    if error is None:
        report.completed.append(spec.run_id)
        return
    if isinstance(error, RunLockedError):
        report.busy.append(spec.run_id)
        return
    if isinstance(error, _AlreadyComplete):
        report.skipped.append(spec.run_id)
        return
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    store.mark_failed(spec.run_id, text)
    report.failed[spec.run_id] = f"{type(error).__name__}: {error}"


def _log_line(report: GridReport, total: int, spec: RunSpec, quiet: bool | None) -> None:
    """One line per finished run when no progress bar is shown (logs of background grids)."""
    if quiet is False or (quiet is None and not quiet_by_default()):
        return
    error = report.failed.get(spec.run_id)
    state = ("busy in another process" if spec.run_id in report.busy else "already complete"
             if spec.run_id in report.skipped else "done" if error is None else f"FAILED ({error})")
    finished = len(report.completed) + len(report.failed) + len(report.busy) + len(report.skipped)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {spec.run_id} {state} [{finished}/{total}]", flush=True)


def _run_locally(config: ExperimentConfig, pending: list[RunSpec], root: str, data: str | None, workers: int,
                 report: GridReport, store: Store, quiet: bool | None) -> None:
    before = len(report.skipped)  # complete before this call: counted in the log's [done/total]
    bar = progress_bar(total=len(pending), desc=f"grid {config.name}", unit="run", disable=quiet)
    with bar:
        if workers <= 1 or len(pending) <= 1:
            for spec in pending:
                try:
                    run_job(config, spec, root, data, quiet)
                    _record(report, store, spec, None)
                except Exception as exc:  # one failing run must not stop the grid
                    _record(report, store, spec, exc)
                bar.update(1)
                _log_line(report, len(pending) + before, spec, quiet)
            return
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        pool = futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                           initargs=(threads, os.getpid()))
        try:
            with native_threads(threads):  # the workers start (and load numpy) on the first submit
                jobs = {pool.submit(run_job, config, spec, root, data, True): spec for spec in pending}
            for done in futures.as_completed(jobs):
                _record(report, store, jobs[done], done.exception())
                bar.update(1)
                _log_line(report, len(pending) + before, jobs[done], quiet)
        except BaseException:  # Ctrl-C or SIGTERM: no orphaned workers
            _stop_workers(pool)
            raise
        pool.shutdown(wait=True)


def _ray_job(config: ExperimentConfig, spec: RunSpec, root: str, data: str | None,
             threads: int) -> None:  # pragma: no cover - runs in a Ray worker
    torch.set_num_threads(threads)
    run_job(config, spec, root, data, True)


def _run_on_ray(config: ExperimentConfig, pending: list[RunSpec], root: str, data: str | None,
                report: GridReport, store: Store) -> None:  # pragma: no cover - needs a Ray cluster
    try:
        import ray
    except ImportError as exc:
        raise InputValueError(message(
            "`execution.engine` of the experiment config", "'ray' only where Ray is installed",
            "engine 'ray' without Ray",
            "pip install ray and start a cluster, or use engine = 'local'.")) from exc
    ray.init(address="auto", ignore_reinit_error=True)
    # the local engine's thread count for the same `workers`, so that a run's numbers do
    # not depend on where it ran (float reductions follow the thread count)
    workers = config.execution.workers
    threads = torch.get_num_threads() if workers <= 1 else max(1, (os.cpu_count() or 1) // workers)
    # numpy's BLAS pool is sized when a worker starts: the same limit as the local engine's workers
    remote = ray.remote(runtime_env={"env_vars": {name: str(threads) for name in NATIVE_THREAD_VARIABLES}}
                        )(_ray_job)
    refs = {remote.remote(config, spec, root, data, threads): spec for spec in pending}
    for ref, spec in refs.items():
        error: Any = None
        try:
            ray.get(ref)
        except Exception as exc:
            error = exc
        _record(report, store, spec, error)
