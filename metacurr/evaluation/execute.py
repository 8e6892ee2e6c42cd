"""Execute an evaluation plan into an output folder, resumably.

Resume: each finished cell is stored atomically as ``DIR/runs/<cell>.json`` together with its exact
config; rerunning with the same ``DIR`` skips cells whose stored config matches. The best-static grid
search (once per task, on training seeds; `metacurr.evaluation.best_static_search`) is cached the same
way in ``DIR/search/``. A run that raises inside a worker is stored as a diverged row with its ``error``,
never a crash of the evaluation. A job whose worker process died (killed, out of memory, a lost Ray
node) is stored the same way with ``"lost": true``; a rerun runs lost cells again. Where the jobs run is
the backend's choice (`metacurr.evaluation.executors`, `metacurr.evaluation.ray_backend`).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
from pathlib import Path

import numpy as np

from metacurr.config import RunConfig, from_dict
from metacurr.controllers import make_controller
from metacurr.evaluation.best_static_search import score_static, select
from metacurr.evaluation.executors import Backend, local_backend
from metacurr.evaluation.incremental import run_incremental
from metacurr.evaluation.masking import MaskedController
from metacurr.evaluation.plan import BEST_STATIC, Cell, EvalPlan, Progress
from metacurr.evaluation.specs import ControllerSpec
from metacurr.io import atomic_write_json
from metacurr.run import run_episode


def build_controller(spec: ControllerSpec, n_stages: int | None = None):
    """The spec's controller (wrapped by `MaskedController` when it has a mask).

    ``n_stages``: for incremental rounds, best-static weights are restricted to the first n stages.
    """
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
            summary, rows = run_incremental(cfg, lambda n: build_controller(spec, n))
        else:
            summary, rows = run_episode(cfg, build_controller(spec))
    except Exception as e:  # a failing controller or task becomes a row, not a crashed evaluation
        error = _error_line(e)
        summary = {"diverged": True, "n_stages": cfg.task.n_stages, "per_stage_acc": [], "final_weights": []}
    summary.update({"controller": spec.label, "task": payload["task"], "family": cfg.task.family,
                    "arch": cfg.task.arch, "seed": cfg.task.seed})
    return {"key": payload["key"], "spec": spec.to_dict(), "task": payload["task"], "seed": cfg.task.seed,
            "mode": payload["mode"], "config": payload["config"], "identity": payload.get("identity"),
            "summary": summary, "rows": rows, "error": error}


def _error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def lost_record(payload: dict, error: BaseException) -> dict:
    """The record of a cell whose worker died before returning: failed, with the error, run again on resume."""
    cfg = payload["config"]
    spec = ControllerSpec.from_dict(payload["spec"])
    summary = {"diverged": True, "n_stages": cfg["task"]["n_stages"], "per_stage_acc": [], "final_weights": [],
               "controller": spec.label, "task": payload["task"], "family": cfg["task"]["family"],
               "arch": cfg["task"]["arch"], "seed": cfg["task"]["seed"]}
    return {"key": payload["key"], "spec": spec.to_dict(), "task": payload["task"], "seed": cfg["task"]["seed"],
            "mode": payload["mode"], "config": cfg, "identity": payload.get("identity"), "summary": summary, "rows": [],
            "error": f"worker lost: {_error_line(error)}", "lost": True}


def search_job(payload: dict) -> dict:
    """Run one best-static search candidate in a worker; a failure is returned as ``{"error": ...}``."""
    try:
        return score_static(payload)
    except Exception as e:
        return {"error": _error_line(e)}


def read_json(path: Path) -> dict | None:
    """The JSON object stored at ``path``; None if it is missing or unreadable (e.g. a half-written cell)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def cell_path(out: Path, cell: Cell) -> Path:
    return Path(out) / "runs" / f"{cell.key}.json"


def execute(plan: EvalPlan, out: str | Path, progress: Progress | None = None, backend: Backend | None = None) -> dict:
    """Run the plan into ``out`` (resuming finished cells); return {"searches": {...}, "ran": n, "skipped": n}.

    Writes ``out/plan.json``, ``out/runs/*.json`` and ``out/search/*.json`` (each atomically).

    Args:
        plan: from `metacurr.evaluation.plan.make_plan`.
        out: the output folder.
        progress: called after each job as ``progress(event, done, total, what)``.
        backend: where the jobs run (`metacurr.evaluation.executors`); default `local_backend`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "plan.json", plan.describe())
    progress = progress or (lambda *a: None)
    search_results: dict[str, dict] = {}
    pending_search: dict[str, list] = {}
    for sk, s in plan.searches.items():
        old = read_json(out / "search" / f"{sk}.json")
        if old is not None and _same(old.get("base", {}), s["base"]) and old.get("seeds") == s["plan"]["seeds"]:
            search_results[sk] = old
        else:
            pending_search[sk] = [None] * len(s["plan"]["payloads"])
    total = len(plan.cells) + sum(len(v) for v in pending_search.values())
    done = 0
    stats = {"ran": 0, "skipped": 0}

    def payload(cell: Cell) -> dict:
        return {"config": cell.config, "spec": cell.spec.to_dict(), "task": cell.task["name"], "key": cell.key,
                "mode": plan.mode, "identity": cell.identity}

    def fill(cell: Cell) -> None:
        if cell.search_key is not None:
            w = search_results[cell.search_key]["weights"]
            cell.spec = dataclasses.replace(cell.spec, kwargs={**cell.spec.kwargs, "weights": w})
            cell.config = dict(cell.config, controller_kwargs={**cell.config["controller_kwargs"], "weights": w})

    def finished(cell: Cell) -> bool:
        old = read_json(cell_path(out, cell))
        return (old is not None and not old.get("lost") and _same(old.get("config", {}), cell.config)
                and old.get("mode") == plan.mode and old.get("identity") == cell.identity)

    with (backend or local_backend)(plan.workers) as ex:
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
                futures[ex.submit(search_job, p)] = ("search", sk, i)
        for cell in plan.cells:
            if cell.search_key is None or cell.search_key in search_results:
                submit_cell(cell)
        while futures:
            ready, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in ready:
                job = futures.pop(fut)
                done += 1
                if job[0] == "cell":
                    try:
                        rec = fut.result()
                    except Exception as e:  # the worker died: a failed row now, run again on a rerun
                        rec = lost_record(payload(job[1]), e)
                    atomic_write_json(cell_path(out, job[1]), rec)
                    stats["ran"] += 1
                    progress("cell", done, total, f"{job[1].spec.label} {job[1].task['name']} {job[1].seed}")
                    continue
                _, sk, i = job
                try:
                    pending_search[sk][i] = fut.result()
                except Exception as e:  # the worker died: this candidate is ineligible, like a failed run
                    pending_search[sk][i] = {"error": f"worker lost: {_error_line(e)}"}
                progress("search", done, total, f"best-static search {plan.searches[sk]['task']}")
                if all(r is not None for r in pending_search[sk]):
                    res = select(plan.searches[sk]["plan"], pending_search[sk])
                    res.update({"task": plan.searches[sk]["task"], "base": plan.searches[sk]["base"]})
                    atomic_write_json(out / "search" / f"{sk}.json", res)
                    search_results[sk] = res
                    for cell in plan.cells:
                        if cell.search_key == sk:
                            submit_cell(cell)
    return {"searches": search_results, **stats}
