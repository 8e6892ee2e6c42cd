"""`metacurr.train`: one inner training run under a controller, with its artifacts.

``DIR/config.yaml`` (the exact resolved config), ``DIR/metrics.jsonl`` (one row per control step),
``DIR/summary.json`` and ``DIR/plots/*.png``. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from metacurr.config import CUSTOM_FAMILY, MonitorConfig, RunConfig, TaskSpec, from_dict, run_config, to_dict
from metacurr.controllers import Controller, make_controller, validate_controller
from metacurr.error_distribution import error_distribution
from metacurr.errors import ConfigError
from metacurr.inner_run import InnerRun, derive_seeds
from metacurr.io import OutputFolder, atomic_write_json, atomic_write_jsonl, atomic_write_yaml
from metacurr.models import check_compatible
from metacurr.tasks.curriculum import Curriculum
from metacurr.tracking.base import NullTracker, Tracker
from metacurr.trajectory import trajectory_metrics
from metacurr.validation import check_out_dir


def resolve_config(
    task: str | Curriculum | None = None,
    *,
    config: RunConfig | dict | None = None,
    **overrides: Any,
) -> RunConfig:
    """Merge a config (RunConfig, mapping or None) with explicit task-level overrides and validate it.

    ``overrides`` may hold TaskSpec fields (arch, seed, control_steps, ...) and ``controller`` /
    ``controller_kwargs`` / ``device``; ``None`` values are ignored.
    """
    if config is not None and not isinstance(config, RunConfig | dict):
        raise ConfigError(f"config: expected a RunConfig or a mapping, got {type(config).__name__}")
    data = to_dict(config) if isinstance(config, RunConfig) else dict(config or {})
    for k in ("controller", "controller_kwargs", "device"):
        if overrides.get(k) is not None:
            data[k] = overrides.pop(k)
        else:
            overrides.pop(k, None)
    if isinstance(task, Curriculum):
        overrides["family"] = CUSTOM_FAMILY
        overrides["n_stages"] = task.n_stages
    elif task is not None:
        overrides["family"] = task
    cfg = run_config(data, **overrides)
    if isinstance(task, Curriculum):
        check_compatible(cfg.task.arch, task.layout)
    validate_controller(cfg.controller, cfg.controller_kwargs)
    return cfg


def run_episode(
    cfg: RunConfig,
    controller: Controller | None = None,
    curriculum: Curriculum | None = None,
    tracker: Tracker | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Run one inner training under a controller; return (summary, metrics rows). No files written."""
    tracker = tracker or NullTracker()
    ctrl = controller or make_controller(cfg.controller, **cfg.controller_kwargs)
    run = InnerRun(cfg.task, cfg.monitor, curriculum=curriculum, device=cfg.device)
    rng = np.random.default_rng(derive_seeds(cfg.task.seed)["controller"])
    rows: list[dict] = []

    def record(run: InnerRun, state) -> None:
        row = state.as_row()
        if run.t > 0:
            row["diverged"] = run.diverged
        rows.append(row)
        tracker.log(row, run.t)
        if on_step is not None and run.t > 0:
            on_step(run.t, row)

    state = run.play(ctrl, rng, record)
    summary = run.final_metrics()
    summary.update(
        {
            "controller": cfg.controller,
            "task": cfg.task.family,
            "arch": cfg.task.arch,
            "seed": cfg.task.seed,
            "n_stages": run.n_stages,
            "stage_names": list(run.curriculum.stage_names),
            "final_weights": [float(v) for v in state.weights],
        }
    )
    summary.update(error_distribution(run.model, run.curriculum))
    summary.update(trajectory_metrics(rows, run.n_stages))
    tracker.summary(summary)
    return summary, rows


def write_run(out: str | Path, cfg: RunConfig, summary: dict, rows: list[dict], curriculum_info: dict | None = None) -> None:
    """Write config.yaml, metrics.jsonl, summary.json and plots/ into ``out`` (atomically, file by file)."""
    from metacurr.plots import plot_run  # matplotlib loads only when a run writes its plots (start-up time)

    out = Path(out)
    conf = to_dict(cfg)
    if curriculum_info:
        conf["curriculum"] = curriculum_info
    atomic_write_yaml(out / "config.yaml", conf)
    atomic_write_jsonl(out / "metrics.jsonl", rows)
    plot_run(rows, summary["n_stages"], out / "plots", summary.get("stage_names"))
    atomic_write_json(out / "summary.json", summary)


def train(
    task: str | Curriculum = "mnist1d",
    *,
    arch: str | None = None,
    controller: str | Controller | None = None,
    seed: int | None = None,
    control_steps: int | None = None,
    inner_steps: int | None = None,
    out: str | Path | None = None,
    config: RunConfig | dict | None = None,
    controller_kwargs: dict | None = None,
    tracker: Tracker | None = None,
    **task_overrides: Any,
) -> dict:
    """Run one inner training with a controller and return its summary.

    Args:
        task: a task family name (`metacurr list`) or a `Curriculum` of your own.
        arch: model architecture.
        controller: registry name, ``policy:PATH`` / ``policy:default``, or a `Controller` instance.
        seed: seed of data, initialisation and batch order.
        control_steps, inner_steps: budget overrides.
        out: folder for config.yaml, metrics.jsonl, summary.json, plots/ (None = write nothing).
        config: a `RunConfig` or mapping (e.g. from YAML) that the other arguments override.
        controller_kwargs: controller parameters.
        tracker: where metrics go besides the returned summary.
        **task_overrides: any other `TaskSpec` field (n_stages, lr, batch_size, params, ...).

    Returns:
        The summary dict (``final_val_acc``, ``final_val_loss``, ``shift_acc``, ``per_stage_acc``,
        ``val_balanced_acc``, ``val_worst_class_acc``, ``val_class_error_spread`` and their ``shift_``
        twins, ``wall_s``, ``monitor_time_fraction``, ``diverged``, ...).
    """
    ctrl_obj = controller if isinstance(controller, Controller) else None
    if out is not None:
        check_out_dir(out)  # before any work: a file, a file parent or a read-only folder is one line
    cfg = resolve_config(
        task,
        config=config,
        arch=arch,
        seed=seed,
        control_steps=control_steps,
        inner_steps=inner_steps,
        controller=None if ctrl_obj is not None else controller,
        controller_kwargs=controller_kwargs,
        **task_overrides,
    )
    if ctrl_obj is not None:
        cfg = dataclasses.replace(cfg, controller=getattr(ctrl_obj, "name", type(ctrl_obj).__name__))
    curriculum = task if isinstance(task, Curriculum) else None
    summary, rows = run_episode(cfg, ctrl_obj, curriculum, tracker)
    if out is not None:
        info = curriculum.describe() if curriculum is not None else None
        with OutputFolder(out):  # a failed write (full disk) removes the files it had added, then raises
            write_run(out, cfg, summary, rows, info)
    return summary


__all__ = ["train", "resolve_config", "run_episode", "write_run", "RunConfig", "TaskSpec", "MonitorConfig", "from_dict"]
