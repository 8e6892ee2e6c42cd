"""`metacurr.evaluate`: every controller on every held-out task x evaluation seed, with statistics.

The pipeline is plan -> execute -> collect -> report:

1. `metacurr.evaluation.plan.make_plan` validates the request and resolves every cell (writes nothing);
2. `metacurr.evaluation.execute.execute` runs the cells through a backend
   (`metacurr.evaluation.executors`: in this process, a process pool, Ray
   (`metacurr.evaluation.ray_backend`) or any other ``concurrent.futures.Executor``) into ``out/runs/``,
   resuming finished cells;
3. `metacurr.evaluation.collect.collect` reads the stored runs into one table;
4. `metacurr.evaluation.report.write_report` writes ``results.csv``, ``stats.json``, ``report.md`` and
   ``plots/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from metacurr.errors import ConfigError
from metacurr.evaluation.collect import collect, incremental_rounds
from metacurr.evaluation.execute import execute
from metacurr.evaluation.executors import Backend
from metacurr.evaluation.plan import EvalPlan, Progress, make_plan
from metacurr.evaluation.ray_backend import resolve_backend
from metacurr.evaluation.report import write_report
from metacurr.evaluation.specs import DEFAULT_CONTROLLERS, ControllerSpec, load_ablations, parse_controllers
from metacurr.evaluation.task_sets import parse_tasks
from metacurr.evaluation.tracking import evaluation_tracker, log_evaluation
from metacurr.io import OutputFolder
from metacurr.seeds import DEFAULT_EVAL_SEEDS, eval_seeds
from metacurr.tracking import resolve_mode
from metacurr.validation import check_out_dir


@dataclass
class EvaluationResult:
    """What `evaluate` produced: the results table, the statistics and where the files are."""

    results: pd.DataFrame
    """One row per run (``results.csv``)."""
    stats: dict
    """The statistics of ``stats.json`` (IQM with CIs, paired differences, probability of improvement)."""
    out: Path
    """The output folder."""
    plan: EvalPlan
    """The validated plan that ran."""
    ran: int
    """Cells run by this call."""
    skipped: int
    """Cells found finished in ``out`` and not rerun."""
    searches: dict
    """Best-static search results, by search key."""
    wall_s: float
    """Seconds this call took."""
    rounds: pd.DataFrame | None = None
    """Per-round rows of an incremental evaluation (``incremental.csv``); None in standard mode."""
    paths: dict[str, Path] = field(default_factory=dict)
    """The files written: ``results``, ``report``, ``stats``, ``plots`` and, when incremental, ``incremental``."""
    wandb_info: dict = field(default_factory=dict)
    """Where the tracker run went: ``{"mode", "id", "run_dir", "url"}`` (``{"mode": "disabled"}`` without W&B)."""

    @property
    def n_diverged(self) -> int:
        """Runs that diverged or failed."""
        return int(self.results["diverged"].astype(bool).sum()) if len(self.results) else 0


def resolve_specs(
    controllers: str | Sequence[str | ControllerSpec] | None = None, ablations: str | Path | None = None
) -> tuple[list[ControllerSpec], dict]:
    """The controller variants of an evaluation and the ablations file's defaults (``tasks``, ``seeds``).

    ``controllers`` (a comma list, a list of references or `ControllerSpec`s) come first, then the
    ablation variants; with neither, `DEFAULT_CONTROLLERS`.
    """
    defaults: dict = {}
    specs: list[ControllerSpec] = []
    if ablations:
        specs, defaults = load_ablations(str(ablations))
    if controllers is not None or not specs:  # controllers="" is an error, not the defaults
        given = DEFAULT_CONTROLLERS if controllers is None else controllers
        if isinstance(given, str):
            head = parse_controllers(given)
        else:
            if not given:
                raise ConfigError("controllers: empty list; give at least one item")
            refs = [c for c in given if not isinstance(c, ControllerSpec)]
            parsed = iter(parse_controllers(",".join(refs)) if refs else [])
            head = [c if isinstance(c, ControllerSpec) else next(parsed) for c in given]
        specs = head + specs
    return specs, defaults


def evaluate(
    controllers: str | Sequence[str | ControllerSpec] | None = None,
    tasks: str | None = None,
    *,
    out: str | Path,
    seeds: int | None = None,
    seed_offset: int = 0,
    workers: int = 1,
    control_steps: int | None = None,
    inner_steps: int | None = None,
    ablations: str | Path | None = None,
    incremental: bool = False,
    search_seeds: int = 1,
    device: str = "cpu",
    progress: Progress | None = None,
    backend: str | Backend | None = None,
    address: str | None = None,
    wandb: str = "auto",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
) -> EvaluationResult:
    """Compare controllers on held-out tasks x evaluation seeds; write the report into ``out``.

    Rerunning with the same ``out`` resumes: cells whose stored config matches are not run again.

    Args:
        controllers: comma list or list of references (registry names, ``name{key=value,...}``,
            ``policy:PATH``, ``open-loop:NAME``) or `ControllerSpec`s; default `DEFAULT_CONTROLLERS`
            (or only the variants of ``ablations``).
        tasks: a task set name (``default``, ``quick``, ``heldout-family``, ...) or a comma list
            ``family:arch[:n_stages]``; default the ablations file's ``tasks``, else ``default``.
        out: output folder (``results.csv``, ``report.md``, ``stats.json``, ``plots/``, ``runs/``).
        seeds: evaluation seeds per task (default the ablations file's ``seeds``, else `DEFAULT_EVAL_SEEDS`).
        seed_offset: the first evaluation seed is 10000 + offset.
        workers: worker processes of the process pool (1 = in this process); not used by ``backend="ray"``.
        control_steps, inner_steps: budget overrides (None = TaskSpec defaults).
        ablations: an ablations YAML of named variants.
        incremental: run the incremental-retraining protocol (churn and forgetting between rounds).
        search_seeds: training seeds of the best-static grid search.
        device: torch device of the inner runs.
        progress: called after each job as ``progress(event, done, total, what)``.
        backend: where the cells run: None / ``"pool"`` (this process or a process pool, per ``workers``),
            ``"ray"`` (one Ray task per cell: `metacurr.evaluation.ray_backend`) or a custom backend
            (`metacurr.evaluation.executors`). Same cells, same numbers on every backend.
        address: with ``backend="ray"``, a running Ray cluster to join (default: start a local instance
            sized to this machine).
        wandb: W&B mode of the evaluation's tracker run (``auto``, ``online``, ``offline``, ``disabled``):
            the results table, the statistics, the plots and the report artifact are logged there
            (`metacurr.evaluation.tracking`); a W&B failure never fails the evaluation.
        name, group, tags: the tracker run's name (default ``evaluate__TASKSET__OUTNAME__TIME``), W&B
            group and extra tags.

    Returns:
        An `EvaluationResult`.

    Raises:
        ConfigError: invalid input, before anything is written; ``backend="ray"`` without Ray installed.
    """
    resolve_mode(wandb)  # a bad mode is a ConfigError before anything is planned or written
    where = ("on Ray" + (f" at {address}" if address else "")) if backend == "ray" else None
    backend = resolve_backend(backend, address)
    specs, defaults = resolve_specs(controllers, ablations)
    task_set, task_list = parse_tasks(str(defaults.get("tasks", "default")) if tasks is None else tasks)
    seed_list = eval_seeds(seeds or defaults.get("seeds", DEFAULT_EVAL_SEEDS), seed_offset)
    out = check_out_dir(out)  # the CLI's line too: a file, a file parent or a read-only folder
    plan = make_plan(specs, task_list, seed_list, task_set=task_set, control_steps=control_steps,
                     inner_steps=inner_steps, workers=workers, mode="incremental" if incremental else "standard",
                     n_search_seeds=search_seeds, device=device)
    t0 = time.perf_counter()
    with OutputFolder(out):  # a failed write (full disk) removes what this call added; finished runs stay
        tracker = evaluation_tracker(plan, out, wandb=wandb, name=name, group=group, tags=tags)
        ok = False
        try:
            res = execute(plan, out, progress, backend)
            df = collect(plan, out)
            rounds = incremental_rounds(plan, out) if plan.mode == "incremental" else None
            stats = write_report(out, plan, df, res["searches"], time.perf_counter() - t0, rounds, where)
            paths = {"results": out / "results.csv", "report": out / "report.md", "stats": out / "stats.json",
                     "plots": out / "plots"}
            if rounds is not None and len(rounds):
                paths["incremental"] = out / "incremental.csv"
            result = EvaluationResult(df, stats, out, plan, res["ran"], res["skipped"], res["searches"],
                                      time.perf_counter() - t0, rounds, paths, dict(tracker.wandb_info))
            log_evaluation(tracker, result)
            ok = True
        finally:
            tracker.finish(exit_code=0 if ok else 1)  # an interrupted or failed evaluation is marked failed
    return result
