"""The plan of an evaluation: every (controller variant, task, seed) cell, validated before any work.

`make_plan` validates everything (controllers, tasks, seeds, budget, workers) and resolves one
`RunConfig` per cell *before* anything is written; `metacurr.evaluation.execute` runs a plan and
`metacurr.evaluation.collect` turns its stored runs into one table.

Fair comparison: every cell of a (task, seed) gets the same `TaskSpec` (the seed included), and
`InnerRun` derives the data, the model initialisation, the mini-batch order and the probe sets from
that seed alone (`metacurr.inner_run.derive_seeds`), so controllers differ only in the weights they
choose (tested: the initial states of all controllers on a (task, seed) are identical).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from metacurr.config import MonitorConfig, RunConfig, check_device, from_dict, to_dict
from metacurr.errors import ConfigError
from metacurr.evaluation.best_static_search import search_plan
from metacurr.evaluation.specs import ControllerSpec, validate_specs
from metacurr.evaluation.task_sets import check_task
from metacurr.run import resolve_config
from metacurr.seeds import check_eval_seeds, search_seeds
from metacurr.tasks import build_curriculum

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
    identity: str | None = None
    """The controller's identity (a policy bundle's manifest checksum): a stored cell of another is rerun."""


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
    identities = validate_specs(specs, tasks)
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
                # with the variant's own parameter overrides (cached: one build per distinct task)
                build_curriculum(base.task.family, base.task.n_stages, seeds[0], base.task.params)
            if spec.controller == BEST_STATIC and "weights" not in spec.kwargs:
                # One search per task (and per task-override variant), shared by all seeds.
                ident = {"task": task, "config": dataclasses.replace(base, task=dataclasses.replace(base.task, seed=0)),
                         "seeds": s_seeds}
                search_key = f"{_slug(task['name'])}__{_digest(to_dict(ident['config']) | {'s': s_seeds})}"
                if search_key not in searches:
                    searches[search_key] = {"task": task["name"], "base": to_dict(ident["config"]),
                                            "plan": search_plan(base, seeds=s_seeds)}
            for seed in seeds:
                cfg = dataclasses.replace(base, task=dataclasses.replace(base.task, seed=seed))
                key = f"{_slug(spec.label)}__{_slug(task['name'])}__s{seed}__{_digest([spec.label, task['name'], seed])}"
                cells.append(Cell(spec, task, seed, to_dict(cfg), key, search_key, identities[spec.label]))
    budget = {"control_steps": cells[0].config["task"]["control_steps"], "inner_steps": cells[0].config["task"]["inner_steps"]}
    return EvalPlan(list(specs), tasks, task_set, list(seeds), cells, searches, mode, workers, budget)
