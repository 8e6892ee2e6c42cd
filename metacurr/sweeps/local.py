"""Local sweeps: the trials of a grid / random sweep file in a process pool on this machine (or as Ray
tasks: ``backend="ray"``), offline.

``DIR/sweep.json`` records which sweep ``DIR`` holds; ``DIR/runs/<run-id>/`` is one trial (run ids come
from the parameter values); ``DIR/results.csv`` is the table of all trials, best first. A rerun skips
every trial already finished, so an interrupted sweep continues where it stopped.

On Ray each trial is one task (``num_cpus=1``, one torch thread; `metacurr.evaluation.ray_backend`). A
trial writes its own folder (its tracking files and log), so the workers write into ``DIR/runs/`` and read
the base config themselves: on a multi-node cluster ``DIR`` and the base config must be on a file system
every node mounts at the same path. The driver still writes ``sweep.json`` and ``results.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from metacurr.errors import ConfigError
from metacurr.evaluation.orphans import watch_parent
from metacurr.evaluation.ray_backend import BACKENDS, RayExecutor, import_ray, ray_session
from metacurr.io import atomic_write_json, atomic_write_text
from metacurr.sweeps.sampling import plan
from metacurr.sweeps.spec import SweepSpec
from metacurr.sweeps.trial import TrialResult, load_trial, run_id, run_trial

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.csv"


@dataclasses.dataclass
class LocalSweepReport:
    """What a local sweep did."""

    out: Path
    method: str
    """Method actually used (bayes runs as random)."""
    results: list[TrialResult]
    """All trials of the plan, best first (failed last)."""
    ran: int
    resumed: int
    wall_s: float
    notices: list[str]


def _worker_init(owner_pid: int | None = None) -> None:
    if owner_pid is not None:  # end this worker if the sweep process dies without cleanup (kill -9)

        watch_parent(owner_pid)
    # one torch thread per worker: N workers on N cores beat N workers fighting over threads

    torch.set_num_threads(1)
    _trial_env()


def _trial_env() -> None:
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    os.environ.setdefault("MPLBACKEND", "Agg")


def _worker_run(kwargs: dict) -> TrialResult:
    return run_trial(**kwargs)


def check_backend(backend: str, address: str | None) -> None:
    """``pool`` or ``ray`` (installed); an address only with ``ray``."""

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if backend == "ray":
        import_ray()
    elif address:
        raise ConfigError("address applies to backend='ray' only")


@contextlib.contextmanager
def _executor(backend: str, address: str | None, workers: int) -> Iterator[Executor]:
    """Spawned worker processes (pool) or Ray tasks; on Ctrl-C or an error, queued trials are dropped."""
    if backend == "ray":
        with ray_session(address) as ray:
            ex = RayExecutor(ray, setup=_trial_env)
            try:
                yield ex
            except BaseException:
                ex.cancel_all()
                raise
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(os.getpid(),)) as ex:
        yield ex


def sort_results(results: list[TrialResult], goal: str) -> list[TrialResult]:
    """Finished trials by metric (best first, per ``goal``), then the rest."""
    sign = -1.0 if goal == "maximize" else 1.0

    def key(r: TrialResult):
        ok = r.status == "finished" and r.metric is not None and math.isfinite(r.metric)
        return (0 if ok else 1, sign * r.metric if ok else 0.0, r.run_id)

    return sorted(results, key=key)


def results_table(
    results: list[TrialResult],
    metric: str | None,
    param_names: list[str] | None = None,
    *,
    short: bool = False,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table.

    Args:
        results: trials, in display order.
        metric: the metric's name (column header).
        param_names: parameter columns, in order (default: as they appear in the results).
        short: for printing: numbers to 4 significant digits, parameter headers without the dotted
            prefix where that stays unambiguous.
    """
    pnames = param_names or list(dict.fromkeys(k for r in results for k in r.params))
    heads = pnames
    if short:
        tails = [p.rsplit(".", 1)[-1] for p in pnames]
        heads = tails if len(set(tails)) == len(tails) else pnames

    def fmt(v) -> str:
        if isinstance(v, list | dict):
            return json.dumps(v)
        if short and isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    header = ["rank", "run_id", "status", metric or "metric", *heads, "wall_s", "error"]
    rows = []
    for i, r in enumerate(results, 1):
        m = "" if r.metric is None else (f"{r.metric:.4g}" if short else repr(r.metric))
        vals = [fmt(r.params[p]) if p in r.params else "" for p in pnames]
        wall = "" if r.wall_s is None else f"{r.wall_s:.1f}"
        rows.append([str(i), r.run_id, r.status, m, *vals, wall, r.error or ""])
    return header, rows


def write_results(path: Path, results: list[TrialResult], metric: str | None, param_names: list[str]) -> None:
    header, rows = results_table(results, metric, param_names)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _claim_folder(out: Path, spec: SweepSpec, source: str | None) -> None:
    """Refuse to mix two different sweeps in one folder (their run ids could collide)."""
    fp = spec.fingerprint()
    path = out / SWEEP_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if old.get("fingerprint") not in (None, fp):
            raise ConfigError(
                f"{out} holds another sweep ({old.get('source') or old.get('name')}, or this file before an edit); "
                "use a new --out"
            )
    atomic_write_json(path, {"name": spec.name, "source": source, "fingerprint": fp, "method": spec.method,
                             "metric": spec.metric, "command": spec.command.__dict__})


def run_local_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    workers: int = 1,
    count: int | None = None,
    seed: int = 0,
    source: str | None = None,
    on_start: Callable[[str, int, int, list[str]], None] | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    backend: str = "pool",
    address: str | None = None,
) -> LocalSweepReport:
    """Run a sweep's trials on this machine, offline, ``workers`` at a time; resume finished ones.

    Args:
        spec: the sweep (already checked: `metacurr.sweeps.check_sweep`).
        out: sweep folder.
        workers: worker processes (spawned; one torch thread each).
        count: at most this many trials (random / bayes: the number of draws); default ``run_cap``.
        seed: seed of random draws (same seed -> same trials -> resumable).
        source: the sweep file's path, recorded in ``sweep.json``.
        on_start: called once the plan is known, before any trial: (method used, number of trials,
            number already finished, notices).
        on_result: called with each trial as it finishes (and each resumed one), for progress output.
        backend: ``pool`` (``workers`` spawned processes) or ``ray`` (one Ray task per trial).
        address: with ``backend="ray"``, a running Ray cluster to join (default: a local instance sized to
            this machine).

    Returns:
        A `LocalSweepReport`; ``out/results.csv`` holds the same table.

    Raises:
        ConfigError: ``out`` holds a different sweep; a random sweep without a count; an unknown backend
            or Ray not installed.
    """
    t0 = time.perf_counter()
    out = Path(out)
    check_backend(backend, address)
    method, points, notices = plan(spec, count, seed)
    for n in notices:
        log.info(n)
    out.mkdir(parents=True, exist_ok=True)
    _claim_folder(out, spec, source)
    seen: dict[str, dict] = {}
    for p in points:
        seen.setdefault(run_id(p), p)  # random draws can repeat a categorical-only point
    if len(seen) < len(points):
        notices.append(f"{len(points) - len(seen)} repeated parameter sets dropped")
    done: dict[str, TrialResult] = {}
    todo: list[tuple[str, dict]] = []
    for rid, p in seen.items():
        prev = load_trial(out / "runs" / rid)
        if prev is not None and prev.status == "finished":
            prev.resumed = True
            done[rid] = prev
        else:
            todo.append((rid, p))
    resumed = len(done)
    if on_start is not None:
        on_start(method, len(seen), resumed, notices)
    if on_result is not None:
        for prev in done.values():
            on_result(prev)
    common = {"command": spec.command, "metric": spec.metric_name, "wandb": "offline", "group": spec.name,
              "tags": [f"sweep:{spec.name}"], "capture": True}
    try:
        if todo:
            runs = out / "runs"
            if backend == "ray":  # workers may run elsewhere: no path relative to this process's folder
                runs = runs.resolve()
                if spec.command.config is not None:
                    common["command"] = dataclasses.replace(spec.command,
                                                            config=str(Path(spec.command.config).resolve()))
            with _executor(backend, address, max(1, min(workers, len(todo)))) as ex:
                futures: dict[Future, str] = {
                    ex.submit(_worker_run, {**common, "params": p, "run_dir": runs / rid}): rid
                    for rid, p in todo
                }
                pending = set(futures)
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            rid = futures[f]
                            try:
                                res = f.result()
                            except Exception as e:  # a worker process died (e.g. out of memory)
                                res = TrialResult(rid, seen[rid], "failed", error=f"worker died: {e}",
                                                  run_dir=str(runs / rid))
                            done[rid] = res
                            if on_result is not None:
                                on_result(res)
                except BaseException:
                    for f in pending:
                        f.cancel()
                    raise
    finally:
        ordered = sort_results([done[r] for r in seen if r in done], spec.goal)
        write_results(out / RESULTS_FILE, ordered, spec.metric_name, [p.name for p in spec.params])
    return LocalSweepReport(out, method, ordered, len(done) - resumed, resumed, time.perf_counter() - t0, notices)
