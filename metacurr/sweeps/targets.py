"""The jobs a sweep can run, and the check of a trial config before any run starts.

A sweep target is a library job that takes a config file and a run folder: ``train``
(`metacurr.training.train_run`) and ``train-agent`` (`metacurr.train_agent`). Each target's config is
checked up front by the same loader the job uses. The names match the ``metacurr`` subcommands that
run the same jobs, so ``metacurr TARGET --config FILE --out DIR`` repeats a trial by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metacurr.config import load_yaml
from metacurr.errors import ConfigError
from metacurr.run import resolve_config
from metacurr.sweeps.overrides import apply_params
from metacurr.training import train_run


@dataclass(frozen=True)
class Target:
    """One sweep target: its config check, its job, and which tracking options it takes."""

    name: str
    check: Callable[[dict], None]
    """Raises ConfigError when a trial config is invalid for this job."""
    run: Callable[..., None]
    """``run(config_path, run_dir, *, wandb, group, tags)``: the job; raises on failure."""
    tracking: tuple[str, ...]
    """The tracking settings the job honours, among ``wandb``, ``group``, ``tags``."""
    metrics: tuple[str, ...]
    """The metrics the job reports in its run summary (``tracking.json`` / ``summary.json``): the names a
    sweep's ``metric.name`` may use."""
    metric_prefixes: tuple[str, ...] = ()
    """Per-step metric families (the last logged value lands in the summary)."""


def _check_train(data: dict) -> None:
    resolve_config(None, config=data)


def _run_train(config_path: Path, run_dir: Path, *, wandb: str, group: str | None, tags: Sequence[str]) -> None:
    # one torch thread, as `metacurr train` runs by default
    train_run(load_yaml(config_path), out=run_dir, wandb=wandb, group=group, tags=list(tags), threads=1)


def _check_train_agent(data: dict) -> None:
    # Imported here, not at the top: agents pull in stable-baselines3, which sweeps of `train` never need.
    from metacurr.agents.config import load_agent_config

    load_agent_config(None, data)


def _run_train_agent(config_path: Path, run_dir: Path, *, wandb: str, group: str | None, tags: Sequence[str]) -> None:
    # Imported here, not at the top: agents pull in stable-baselines3, which sweeps of `train` never need.
    from metacurr.agents.job import train_agent

    res = train_agent(config_path, out=run_dir, overrides={"train": {}}, wandb=wandb, progress=False)
    if res.status != "finished":
        raise RuntimeError(f"agent training {res.status}; checkpoint in {run_dir}/checkpoints")


#: target name -> the job a trial runs.
TARGETS: dict[str, Target] = {
    "train": Target(
        "train", _check_train, _run_train, ("wandb", "group", "tags"),
        metrics=("best_val_acc", "confidence_volatility", "control_steps_done", "diverged", "early_stage_dominance",
                 "final_val_acc", "final_val_loss", "monitor_s", "monitor_time_fraction", "shift_acc", "shift_drop",
                 "shift_loss", "time_to_target", "train_s", "val_acc_volatility", "val_ece", "wall_s", "weight_change"),
        metric_prefixes=("inner/", "monitor/", "curriculum/"),
    ),
    "train-agent": Target(
        "train-agent", _check_train_agent, _run_train_agent, ("wandb",),
        metrics=("timesteps", "wall_s", "env_steps_per_s", "eval/policy_val_loss", "eval/heuristic_val_loss",
                 "eval/policy_minus_heuristic"),
    ),
}


def check_metric(target: str, name: str | None) -> None:
    """Raise a one-line ConfigError when ``target`` never reports metric ``name`` (before any trial runs)."""
    t = check_target(target)
    if name is None or name in t.metrics or name.startswith(t.metric_prefixes):
        return
    prefixes = [f"{p}*" for p in t.metric_prefixes]
    raise ConfigError(f"metric.name {name!r} is not reported by `metacurr {target}`; valid choices: "
                      f"{', '.join([*t.metrics, *prefixes])}")


def sweepable_targets() -> list[str]:
    """The names of the jobs a sweep can run."""
    return list(TARGETS)


def check_target(target: str) -> Target:
    """The target named ``target``; a one-line ConfigError if there is none."""
    if target not in TARGETS:
        raise ConfigError(
            f"sweep target {target!r} is not a metacurr subcommand taking --config and --out; "
            f"valid choices: {', '.join(TARGETS)}"
        )
    return TARGETS[target]


def check_config(target: str, data: dict) -> None:
    """Validate a trial config the way the target's job will.

    Raises:
        ConfigError: the config is invalid (message prefixed with the target).
    """
    try:
        check_target(target).check(data)
    except ConfigError as e:
        raise ConfigError(f"a trial config (base config + sweep parameters) is invalid for `metacurr {target}`: {e}") from None


def check_trial_config(command, params: dict) -> None:
    """Base config + ``params`` must apply and validate for the target (ConfigError otherwise)."""
    check_config(command.target, apply_params(command.base_config(), params))
