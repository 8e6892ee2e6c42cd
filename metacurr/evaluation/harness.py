"""Runs every controller on every task x seed, in parallel processes, resumably.

`make_plan` validates everything (controllers, tasks, seeds, budget, workers) and resolves one
`RunConfig` per cell *before* anything is written; `execute` runs the plan into an output folder;
`collect` turns the stored runs into one table.

Fair comparison: every cell of a (task, seed) gets the same `TaskSpec` (the seed included), and
`InnerRun` derives the data, the model initialisation, the mini-batch order and the probe sets from
that seed alone (`metacurr.inner_run.derive_seeds`), so controllers differ only in the weights they
choose (tested: the initial states of all controllers on a (task, seed) are identical).

Resume: each finished cell is stored atomically as ``DIR/runs/<cell>.json`` together with its exact
config; rerunning with the same ``DIR`` skips cells whose stored config matches. The best-static grid
search (once per task, on training seeds; `metacurr.controllers.best_static`) is cached the same way
in ``DIR/search/``. A run that raises inside a worker is stored as a diverged row with its ``error``,
never a crash of the evaluation. Workers are processes started by a ``forkserver`` (``spawn`` where
that is unavailable; never a plain fork of this process) with one torch thread each; they never print
(their stdout / stderr are redirected to /dev/null).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metacurr.config import MonitorConfig, RunConfig, check_device, from_dict, to_dict
from metacurr.errors import ConfigError
from metacurr.evaluation.seeds import check_eval_seeds, search_seeds
from metacurr.evaluation.specs import ControllerSpec, validate_specs
from metacurr.io import atomic_write_json

MODES = ("standard", "incremental")
BEST_STATIC = "best-static"

#: (event, done, total, what) -> None; event is "cell", "search" or "skip".
Progress = Callable[[str, int, int, str], None]


@dataclass
class Cell:
    """One run: a controller variant on a task with a seed."""

    spec: ControllerSpec
    task: dict
    seed: int
    config: dict
    key: str
    search_key: str | None = None


@dataclass
class EvalPlan:
    """Everything an evaluation will run, fully validated."""

    specs: list[ControllerSpec]
    tasks: list[dict]
    task_set: str
    seeds: list[int]
    cells: list[Cell]
    searches: dict[str, dict] = field(default_factory=dict)
    mode: str = "standard"
    workers: int = 1
    budget: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-serialisable description (written to ``DIR/plan.json``)."""
        return {
            "mode": self.mode, "task_set": self.task_set, "tasks": self.tasks, "seeds": self.seeds,
            "controllers": [s.to_dict() for s in self.specs], "workers": self.workers, "budget": self.budget,
            "searches": {k: {"task": v["task"], "seeds": v["plan"]["seeds"], "candidates": v["plan"]["candidates"]}
                         for k, v in self.searches.items()},
        }


def _slug(text: str, n: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:n] or "x"


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _task_config(task: dict, spec: ControllerSpec, seed: int, control_steps: int | None, inner_steps: int | None,
                 monitor: dict | None, device: str) -> RunConfig:
    from metacurr.run import resolve_config

    over = dict(spec.task)
    params = {**task.get("params", {}), **over.pop("params", {})}
    data = {"monitor": dict(monitor or {})}
    # policy controllers are checked by validate_specs (they load there); resolve_config skips them.
    return resolve_config(
        task["family"], config=data, arch=task["arch"], n_stages=task["n_stages"], params=params, seed=seed,
        control_steps=control_steps, inner_steps=inner_steps, controller=spec.controller,
        controller_kwargs=dict(spec.kwargs), device=device, **over,
    )


def make_plan(
    specs: list[ControllerSpec],
    tasks: list[dict],
    seeds: list[int],
    *,
    task_set: str = "custom",
    control_steps: int | None = None,
    inner_steps: int | None = None,
    workers: int = 1,
    mode: str = "standard",
    n_search_seeds: int = 1,
    monitor: dict | None = None,
    device: str = "cpu",
    check_data: bool = True,
) -> EvalPlan:
    """Validate the request and resolve every cell's config; writes nothing.

    Args:
        specs: controller variants (labels unique).
        tasks: task dicts (`metacurr.evaluation.task_sets`).
        seeds: evaluation seeds (each >= EVAL_SEED_BASE).
        task_set: label of the task set for the report.
        control_steps, inner_steps: budget overrides (None = TaskSpec defaults).
        workers: worker processes (1 = run in this process).
        mode: ``"standard"`` or ``"incremental"`` (`metacurr.evaluation.incremental`).
        n_search_seeds: training seeds of the best-static search.
        monitor: MonitorConfig overrides.
        device: torch device of the inner runs.
        check_data: build each task's curriculum once now so bad task parameters fail before any work.

    Raises:
        ConfigError: anything invalid, as one line naming the valid choices.
    """
    check_device(device)
    from metacurr.controllers.best_static import BestStatic
    from metacurr.evaluation.task_sets import check_task

    if mode not in MODES:
        raise ConfigError(f"unknown evaluation mode {mode!r}; valid choices: {', '.join(MODES)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    for nm, v in (("control_steps", control_steps), ("inner_steps", inner_steps)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{nm} must be a positive integer, got {v!r}")
    if not specs:
        raise ConfigError("no controllers given")
    if not tasks:
        raise ConfigError("no tasks given")
    seeds = check_eval_seeds(seeds)
    tasks = [check_task(t) for t in tasks]
    validate_specs(specs, tasks)
    names = [t["name"] for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate task name {sorted({n for n in names if names.count(n) > 1})[0]!r}")
    from_dict(MonitorConfig, dict(monitor or {}), "monitor")
    cells: list[Cell] = []
    searches: dict[str, dict] = {}
    s_seeds = search_seeds(n_search_seeds)
    for task in tasks:
        for spec in specs:
            search_key = None
            base = _task_config(task, spec, seeds[0], control_steps, inner_steps, monitor, device)
            if check_data and task["family"] != "custom":
                from metacurr.tasks import build_curriculum

                # with the variant's own parameter overrides (cached: one build per distinct task)
                build_curriculum(base.task.family, base.task.n_stages, seeds[0], base.task.params)
            if spec.controller == BEST_STATIC and "weights" not in spec.kwargs:
                # One search per task (and per task-override variant), shared by all seeds.
                ident = {"task": task, "config": dataclasses.replace(base, task=dataclasses.replace(base.task, seed=0)),
                         "seeds": s_seeds}
                search_key = f"{_slug(task['name'])}__{_digest(to_dict(ident['config']) | {'s': s_seeds})}"
                if search_key not in searches:
                    searches[search_key] = {"task": task["name"], "base": to_dict(ident["config"]),
                                            "plan": BestStatic.search_plan(base, seeds=s_seeds)}
            for seed in seeds:
                cfg = dataclasses.replace(base, task=dataclasses.replace(base.task, seed=seed))
                key = f"{_slug(spec.label)}__{_slug(task['name'])}__s{seed}__{_digest([spec.label, task['name'], seed])}"
                cells.append(Cell(spec, task, seed, to_dict(cfg), key, search_key))
    budget = {"control_steps": cells[0].config["task"]["control_steps"], "inner_steps": cells[0].config["task"]["inner_steps"]}
    return EvalPlan(list(specs), tasks, task_set, list(seeds), cells, searches, mode, workers, budget)


# ---------------------------------------------------------------- workers


def _worker_init(owner_pid: int | None = None) -> None:
    import os
    import sys
    import warnings

    import torch

    if owner_pid is not None:  # end this worker if the evaluation process dies without cleanup (kill -9)
        from metacurr.evaluation.orphans import watch_parent

        watch_parent(owner_pid)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.stderr = devnull


def build_controller(spec: ControllerSpec, n_stages: int | None = None):
    """The spec's controller (wrapped by `MaskedController` when it has a mask).

    ``n_stages``: for incremental rounds, best-static weights are restricted to the first n stages.
    """
    from metacurr.controllers import make_controller
    from metacurr.evaluation.masking import MaskedController

    kwargs = dict(spec.kwargs)
    if spec.controller == BEST_STATIC and n_stages is not None and kwargs.get("weights") is not None:
        w = np.asarray(kwargs["weights"], dtype=np.float64)[:n_stages]
        kwargs["weights"] = None if w.sum() <= 0 else [float(v) for v in w / w.sum()]
    ctrl = make_controller(spec.controller, **kwargs)
    return MaskedController(ctrl, spec.mask) if spec.mask else ctrl


def run_cell(payload: dict) -> dict:
    """Run one cell in a worker; a failure is returned as a diverged record with ``error``."""
    cfg = from_dict(RunConfig, payload["config"])
    spec = ControllerSpec.from_dict(payload["spec"])
    error = None
    rows: list[dict] = []
    try:
        if payload["mode"] == "incremental":
            from metacurr.evaluation.incremental import run_incremental

            summary, rows = run_incremental(cfg, lambda n: build_controller(spec, n))
        else:
            from metacurr.run import run_episode

            summary, rows = run_episode(cfg, build_controller(spec))
    except Exception as e:  # a failing controller or task becomes a row, not a crashed evaluation
        error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        summary = {"diverged": True, "n_stages": cfg.task.n_stages, "per_stage_acc": [], "final_weights": []}
    summary.update({"controller": spec.label, "task": payload["task"], "family": cfg.task.family,
                    "arch": cfg.task.arch, "seed": cfg.task.seed})
    return {"key": payload["key"], "spec": spec.to_dict(), "task": payload["task"], "seed": cfg.task.seed,
            "mode": payload["mode"], "config": payload["config"], "summary": summary, "rows": rows, "error": error}


def _search_job(payload: dict) -> dict:
    from metacurr.controllers.best_static import score_static

    try:
        return score_static(payload)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}


class _InlineExecutor(cf.Executor):
    """workers=1: run jobs in this process, one torch thread (restored afterwards)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - surfaced through the future, like a pool
            fut.set_exception(e)
        return fut


@contextlib.contextmanager
def _executor(workers: int):
    if workers == 1:
        import torch

        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield _InlineExecutor()
        finally:
            torch.set_num_threads(n)
        return
    import os

    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_worker_init,
                                initargs=(os.getpid(),))
    try:
        yield ex
    except BaseException:
        # Ctrl-C or an error: drop queued cells instead of running them all before exiting.
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


#: Imported once by the fork server, so workers start without re-importing torch, sklearn, ...
PRELOAD = ["metacurr.run", "metacurr.evaluation.harness", "metacurr.evaluation.incremental", "metacurr.evaluation.orphans",
           "metacurr.tasks.digits", "metacurr.tasks.mnist1d", "metacurr.tasks.sequence", "sklearn.datasets"]


def _mp_context():
    """``forkserver`` where available (fast worker start from a clean, preloaded server; no fork of this
    process's threads), else ``spawn``. Never plain ``fork``: the parent may hold torch threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


# ---------------------------------------------------------------- execution


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def cell_path(out: Path, cell: Cell) -> Path:
    return Path(out) / "runs" / f"{cell.key}.json"


def execute(plan: EvalPlan, out: str | Path, progress: Progress | None = None) -> dict:
    """Run the plan into ``out`` (resuming finished cells); return {"searches": {...}, "ran": n, "skipped": n}.

    Writes ``out/plan.json``, ``out/runs/*.json`` and ``out/search/*.json`` (each atomically).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "plan.json", plan.describe())
    progress = progress or (lambda *a: None)
    search_results: dict[str, dict] = {}
    pending_search: dict[str, list] = {}
    for sk, s in plan.searches.items():
        old = _read_json(out / "search" / f"{sk}.json")
        if old is not None and _same(old.get("base", {}), s["base"]) and old.get("seeds") == s["plan"]["seeds"]:
            search_results[sk] = old
        else:
            pending_search[sk] = [None] * len(s["plan"]["payloads"])
    total = len(plan.cells) + sum(len(v) for v in pending_search.values())
    done = 0
    stats = {"ran": 0, "skipped": 0}

    def payload(cell: Cell) -> dict:
        return {"config": cell.config, "spec": cell.spec.to_dict(), "task": cell.task["name"], "key": cell.key,
                "mode": plan.mode}

    def fill(cell: Cell) -> None:
        if cell.search_key is not None:
            w = search_results[cell.search_key]["weights"]
            cell.spec = dataclasses.replace(cell.spec, kwargs={**cell.spec.kwargs, "weights": w})
            cell.config = dict(cell.config, controller_kwargs={**cell.config["controller_kwargs"], "weights": w})

    def finished(cell: Cell) -> bool:
        old = _read_json(cell_path(out, cell))
        return old is not None and _same(old.get("config", {}), cell.config) and old.get("mode") == plan.mode

    with _executor(plan.workers) as ex:
        futures: dict[cf.Future, tuple] = {}

        def submit_cell(cell: Cell) -> None:
            nonlocal done
            fill(cell)
            if finished(cell):
                done += 1
                stats["skipped"] += 1
                progress("skip", done, total, f"{cell.spec.label} {cell.task['name']} {cell.seed}")
                return
            futures[ex.submit(run_cell, payload(cell))] = ("cell", cell)

        for sk in pending_search:
            for i, p in enumerate(plan.searches[sk]["plan"]["payloads"]):
                futures[ex.submit(_search_job, p)] = ("search", sk, i)
        for cell in plan.cells:
            if cell.search_key is None or cell.search_key in search_results:
                submit_cell(cell)
        while futures:
            ready, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in ready:
                job = futures.pop(fut)
                done += 1
                if job[0] == "cell":
                    rec = fut.result()
                    atomic_write_json(cell_path(out, job[1]), rec)
                    stats["ran"] += 1
                    progress("cell", done, total, f"{job[1].spec.label} {job[1].task['name']} {job[1].seed}")
                    continue
                _, sk, i = job
                pending_search[sk][i] = fut.result()
                progress("search", done, total, f"best-static search {plan.searches[sk]['task']}")
                if all(r is not None for r in pending_search[sk]):
                    from metacurr.controllers.best_static import BestStatic

                    res = BestStatic.select(plan.searches[sk]["plan"], pending_search[sk])
                    res.update({"task": plan.searches[sk]["task"], "base": plan.searches[sk]["base"]})
                    atomic_write_json(out / "search" / f"{sk}.json", res)
                    search_results[sk] = res
                    for cell in plan.cells:
                        if cell.search_key == sk:
                            submit_cell(cell)
    return {"searches": search_results, **stats}


# ---------------------------------------------------------------- collection

#: results.csv column order (per-stage and per-weight columns are inserted after their group).
LEADING = ["controller", "task", "family", "arch", "n_stages", "seed", "final_val_acc", "final_val_loss", "val_ece",
           "shift_acc", "shift_loss", "shift_drop", "worst_stage_acc", "stage_acc_spread",
           # error distribution over classes (metacurr.evaluation.error_distribution.SUMMARY_KEYS)
           "val_balanced_acc", "val_worst_class_acc", "val_class_error_spread",
           "shift_balanced_acc", "shift_worst_class_acc", "shift_class_error_spread"]
TRAILING = ["early_stage_dominance", "val_acc_volatility", "confidence_volatility", "weight_change", "best_val_acc",
            "time_to_target", "time_to_target_self", "churn_mean", "churn_last", "forgetting_stage0", "forgetting_mean",
            "control_steps_done", "wall_s", "train_s", "monitor_s", "monitor_time_fraction", "diverged", "error",
            "controller_name", "controller_kwargs", "task_overrides", "mask"]
INCREMENTAL_ONLY = ("churn_mean", "churn_last", "forgetting_stage0", "forgetting_mean")
TARGET_FRACTION = 0.95


def load_records(plan: EvalPlan, out: str | Path) -> list[dict]:
    """The stored records of the plan's cells (missing cells are skipped)."""
    recs = []
    for cell in plan.cells:
        rec = _read_json(cell_path(out, cell))
        if rec is not None:
            recs.append(rec)
    return recs


def record_row(rec: dict) -> dict:
    """One results.csv row from a stored record (before task-relative time-to-target)."""
    s = rec["summary"]
    spec = rec["spec"]
    per = [np.nan if v is None else float(v) for v in (s.get("per_stage_acc") or [])]
    row = {k: s.get(k) for k in LEADING + TRAILING if k in s}
    row.update({"controller": spec["label"], "task": rec["task"], "seed": rec["seed"],
                "n_stages": s.get("n_stages"), "diverged": bool(s.get("diverged", False)), "error": rec.get("error"),
                "controller_name": spec["controller"], "controller_kwargs": json.dumps(spec["kwargs"], sort_keys=True),
                "task_overrides": json.dumps(spec["task"], sort_keys=True),
                "mask": json.dumps(spec["mask"]) if spec["mask"] else ""})
    finite = [v for v in per if np.isfinite(v)]
    row["worst_stage_acc"] = min(finite) if finite else None
    row["stage_acc_spread"] = (max(finite) - min(finite)) if finite else None
    for i, v in enumerate(per):
        row[f"stage{i}_acc"] = v
    for i, v in enumerate(s.get("final_weights") or []):
        row[f"final_w{i}"] = v
    row["time_to_target_self"] = s.get("time_to_target")
    row["val_acc_series"] = [r.get("inner/val_acc") for r in rec.get("rows", [])]
    return row


def time_to_target(series: list, target: float) -> float:
    """First control step whose val accuracy reaches ``target`` (NaN if never)."""
    for t, v in enumerate(series):
        if v is not None and np.isfinite(v) and v >= target:
            return float(t)
    return float("nan")


def collect(plan: EvalPlan, out: str | Path):
    """All stored runs of the plan as a DataFrame (one row per run), columns ordered for results.csv.

    ``time_to_target`` is task-relative: control steps until the per-step val accuracy reaches 95% of
    the best *final* val accuracy any controller reached on that task with that seed (same data and
    initialisation, so the target is the same for every controller); NaN = never reached.
    ``time_to_target_self`` is the run's own 95%-of-its-best step (from the run summary).
    """
    import pandas as pd

    rows = [record_row(r) for r in load_records(plan, out)]
    if not rows:
        return pd.DataFrame(columns=LEADING + TRAILING)
    df = pd.DataFrame(rows)
    for c in LEADING:  # runs that all failed have no metrics: the columns exist anyway (empty)
        if c not in df:
            df[c] = np.nan
    acc = pd.to_numeric(df["final_val_acc"], errors="coerce")
    best = acc.groupby([df["task"], df["seed"]]).transform("max")
    df["time_to_target"] = [time_to_target(s, TARGET_FRACTION * b) if np.isfinite(b) else np.nan
                            for s, b in zip(df["val_acc_series"], best, strict=True)]
    df = df.drop(columns=["val_acc_series"])
    stage_cols = sorted([c for c in df if re.fullmatch(r"stage\d+_acc", c)], key=lambda c: int(c[5:-4]))
    w_cols = sorted([c for c in df if re.fullmatch(r"final_w\d+", c)], key=lambda c: int(c[7:]))
    trailing = [c for c in TRAILING if plan.mode == "incremental" or c not in INCREMENTAL_ONLY]
    cols = [c for c in LEADING if c in df] + stage_cols + [c for c in trailing if c in df] + w_cols
    for c in LEADING + trailing:
        if c not in df:
            df[c] = None
            if c not in cols:
                cols.append(c)
    order = {s.label: i for i, s in enumerate(plan.specs)}
    torder = {t["name"]: i for i, t in enumerate(plan.tasks)}
    df = df.assign(_c=df["controller"].map(order), _t=df["task"].map(torder)).sort_values(["_c", "_t", "seed"])
    return df[cols].reset_index(drop=True)


def incremental_rounds(plan: EvalPlan, out: str | Path):
    """Per-round rows of an incremental evaluation (controller, task, seed, round, val/shift acc, churn, stage acc)."""
    import pandas as pd

    rows = []
    for rec in load_records(plan, out):
        for rd in rec["summary"].get("rounds", []):
            row = {"controller": rec["spec"]["label"], "task": rec["task"], "seed": rec["seed"], "round": rd["round"],
                   "n_stages": rd["n_stages"], "val_acc": rd["val_acc"], "shift_acc": rd["shift_acc"], "churn": rd["churn"]}
            for i, v in enumerate(rd["stage_acc"]):
                row[f"stage{i}_acc"] = v
            rows.append(row)
    return pd.DataFrame(rows)
