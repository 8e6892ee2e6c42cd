"""The metacurr subcommands a sweep can run, and the check of a trial config before any run starts.

A trial runs the target through the CLI (exactly what a user would type), so a target is any
subcommand taking ``--config FILE`` and ``--out DIR``. Its config is checked up front by the same
loader the subcommand uses, where one is registered in `CONFIG_CHECKS`; other targets validate their
config when each trial starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from metacurr.errors import ConfigError


def _check_train(data: dict) -> None:
    from metacurr.run import resolve_config

    resolve_config(None, config=data)


def _check_train_agent(data: dict) -> None:
    from metacurr.agents.config import load_agent_config

    load_agent_config(None, data)


#: Subcommands that take --config and --out but are no sweep target (``sweep-run`` would run itself).
NOT_TARGETS = ("sweep-run",)

#: target subcommand -> config check (raises ConfigError). Imported lazily: agents pull in SB3.
CONFIG_CHECKS: dict[str, Callable[[dict], None]] = {
    "train": _check_train,
    "train-agent": _check_train_agent,
}


#: Metrics each target reports in its run summary (``tracking.json`` / ``summary.json``): the names a
#: sweep's ``metric.name`` may use. Targets not listed here are not checked up front.
REPORTED_METRICS: dict[str, tuple[str, ...]] = {
    "train": (
        "best_val_acc", "confidence_volatility", "control_steps_done", "diverged", "early_stage_dominance",
        "final_val_acc", "final_val_loss", "monitor_s", "monitor_time_fraction", "shift_acc", "shift_drop",
        "shift_loss", "time_to_target", "train_s", "val_acc_volatility", "val_ece", "wall_s", "weight_change",
    ),
    "train-agent": ("timesteps", "wall_s", "env_steps_per_s", "eval/policy_val_loss", "eval/heuristic_val_loss",
                    "eval/policy_minus_heuristic"),
}
#: Per-step metric families (the last logged value lands in the summary), by target.
REPORTED_PREFIXES: dict[str, tuple[str, ...]] = {"train": ("inner/", "monitor/", "curriculum/")}


def check_metric(target: str, name: str | None) -> None:
    """Raise a one-line ConfigError when ``target`` never reports metric ``name`` (before any trial runs)."""
    known = REPORTED_METRICS.get(target)
    if name is None or known is None or name in known or name.startswith(REPORTED_PREFIXES.get(target, ())):
        return
    prefixes = [f"{p}*" for p in REPORTED_PREFIXES.get(target, ())]
    raise ConfigError(f"metric.name {name!r} is not reported by `metacurr {target}`; valid choices: "
                      f"{', '.join([*known, *prefixes])}")


@functools.cache
def target_options(target: str) -> frozenset[str]:
    """The option strings of metacurr subcommand ``target`` (empty if there is no such subcommand)."""
    import argparse

    from metacurr.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(target)
            return frozenset(sub._option_string_actions) if sub is not None else frozenset()
    return frozenset()


def sweepable_targets() -> list[str]:
    """Subcommands taking ``--config`` and ``--out``."""
    import argparse

    from metacurr.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [n for n in action.choices if n not in NOT_TARGETS and {"--config", "--out"} <= target_options(n)]
    return []


def check_target(target: str) -> None:
    """Raise a one-line ConfigError unless ``target`` is a subcommand a sweep can run."""
    if target in NOT_TARGETS or not {"--config", "--out"} <= target_options(target):
        valid = sweepable_targets()
        raise ConfigError(
            f"sweep target {target!r} is not a metacurr subcommand taking --config and --out; "
            f"valid choices: {', '.join(valid)}"
        )


def check_config(target: str, data: dict) -> bool:
    """Validate a trial config the way ``metacurr TARGET --config`` will.

    Returns:
        False when no check is registered for ``target`` (it validates when each trial starts).

    Raises:
        ConfigError: the config is invalid (message prefixed with the target).
    """
    check = CONFIG_CHECKS.get(target)
    if check is None:
        return False
    try:
        check(data)
    except ConfigError as e:
        raise ConfigError(f"a trial config (base config + sweep parameters) is invalid for `metacurr {target}`: {e}") from None
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("metacurr"):
            return False  # the target's loader is not installed in this build
        raise
    return True



def check_trial_config(command, params: dict) -> None:
    """Base config + ``params`` must apply and validate for the target (ConfigError otherwise)."""
    from metacurr.sweeps.overrides import apply_params

    check_config(command.target, apply_params(command.base_config(), params))
