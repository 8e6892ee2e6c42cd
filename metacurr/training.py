"""A tracked training run into a folder: the library call behind ``metacurr train`` and the ``train`` sweep target.

`train_run` checks everything (config, controller, the task's data) before the folder is touched, opens
a tracker (W&B / TensorBoard / ``tracking.json``), runs one inner training under the controller and
writes ``config.yaml``, ``metrics.jsonl``, ``summary.json`` and ``plots/`` (`metacurr.run.write_run`).
`metacurr.train` is the lighter call for notebooks: no tracker, files only when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from metacurr.config import RunConfig, to_dict
from metacurr.controllers import make_controller
from metacurr.errors import ConfigError
from metacurr.io import OutputFolder
from metacurr.run import resolve_config, run_episode, write_run
from metacurr.tasks import build_curriculum
from metacurr.tracking import make_tracker, run_name
from metacurr.validation import check_out_dir


@dataclass
class TrainRunResult:
    """What `train_run` produced."""

    summary: dict
    """The run's summary (``summary.json``)."""
    config: RunConfig
    """The exact resolved config (``config.yaml``)."""
    out: Path
    """The run folder."""
    wandb_info: dict
    """Where the W&B run went (``mode``, ``run_dir``, ``url``; empty when W&B was off)."""


def train_run(
    config: RunConfig | dict | None = None,
    *,
    out: str | Path,
    task: str | None = None,
    arch: str | None = None,
    seed: int | None = None,
    control_steps: int | None = None,
    inner_steps: int | None = None,
    controller: str | None = None,
    device: str | None = None,
    wandb: str = "auto",
    group: str | None = None,
    tags: Sequence[str] = (),
    threads: int | None = None,
    on_start: Callable[[RunConfig], None] | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainRunResult:
    """Run one inner training under a controller into ``out``, tracked.

    Args:
        config: a `RunConfig` or a mapping (``task:``, ``controller:``, ``controller_kwargs:``, ``monitor:``)
            that the other arguments override.
        out: the run folder (may exist; files are replaced atomically).
        task, arch, seed, control_steps, inner_steps, controller, device: overrides (None = the config's).
        wandb: W&B mode (``auto``, ``online``, ``offline``, ``disabled``).
        group, tags: W&B group and extra tags.
        threads: torch CPU threads for the run (None = leave the process setting as it is).
        on_start: called with the resolved config once every check passed, before the run starts.
        on_step: called after each control step as ``on_step(t, metrics_row)``.

    Returns:
        A `TrainRunResult`.

    Raises:
        ConfigError: invalid input, before anything is written.
        OSError: a failed write (full disk, read-only folder), after removing what this run added.
    """
    cfg = resolve_config(task, config=config, arch=arch, seed=seed, control_steps=control_steps,
                         inner_steps=inner_steps, controller=controller, device=device)
    out = check_out_dir(out)  # the CLI's line too: a file, a file parent or a read-only folder
    ctrl = make_controller(cfg.controller, **cfg.controller_kwargs)  # loads policy bundles: errors before work
    try:  # e.g. a policy with fewer stage slots than the task has stages
        ctrl.check_stages(cfg.task.n_stages)
    except ConfigError as e:
        raise ConfigError(f"controller {cfg.controller!r} cannot run task {cfg.task.family!r} "
                          f"with {cfg.task.n_stages} stages: {e}") from None
    # Build the data now (cached: the run reuses it): a bad difficulty value fails before the folder exists.
    build_curriculum(cfg.task.family, cfg.task.n_stages, cfg.task.seed, cfg.task.params)
    if threads is not None:
        torch.set_num_threads(threads)
    if on_start is not None:
        on_start(cfg)
    with OutputFolder(out):  # a failed write (full disk) removes what this run added, then raises
        tracker = make_tracker(
            wandb, out,
            name=run_name(cfg.task.family, cfg.controller, cfg.task.seed),
            group=group,
            tags=[cfg.controller, cfg.task.family, cfg.task.arch, *tags],
            config=to_dict(cfg),
            wandb_process=True,  # W&B's start-up (~1.5 s) runs on another core while this process trains
        )
        ok = False
        try:
            summary, rows = run_episode(cfg, ctrl, tracker=tracker, on_step=on_step)
            write_run(out, cfg, summary, rows)
            ok = True
        finally:
            tracker.finish(exit_code=0 if ok else 1)  # a crashed run is marked failed in W&B and tracking.json
    return TrainRunResult(summary, cfg, out, dict(tracker.wandb_info))
