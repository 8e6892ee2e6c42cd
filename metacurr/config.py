"""Typed, frozen, YAML-loadable configuration: `TaskSpec`, `MonitorConfig`, `RunConfig`.

Configs hold only JSON-serialisable values; models, controllers and task families are chosen by
registry name. `from_dict` validates every key and type before any work starts, so bad input is a
one-line `ConfigError` and never a half-finished run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from metacurr.errors import ConfigError, choices_error
from metacurr.models import ARCHS, check_compatible
from metacurr.tasks import MAX_STAGES, MIN_STAGES, check_params, family_module
from metacurr.validation import check_finite, check_limit, check_seed, parse_controller_ref, read_text

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")
#: TaskSpec.family of a run on a user-supplied `Curriculum`.
CUSTOM_FAMILY = "custom"


@dataclass(frozen=True)
class TaskSpec:
    """One inner training task: data, architecture, difficulty and budget."""

    family: str = "mnist1d"
    """Data family (see `metacurr list`)."""
    arch: str = "mlp"
    """Model architecture: mlp, cnn, gru, transformer."""
    n_stages: int = 3
    """Number of curriculum stages (2-8)."""
    seed: int = 0
    """Seed of the data, the model initialisation and the mini-batch order."""
    params: dict = field(default_factory=dict)
    """Family-specific difficulty parameters (see the family module's DEFAULTS)."""
    control_steps: int = 30
    """Number of control steps (weight updates) in one run."""
    inner_steps: int = 10
    """Optimiser steps per control step."""
    batch_size: int = 64
    """Mini-batch size drawn from each active stage."""
    optimizer: str = "adam"
    """adam, adamw or sgd."""
    lr: float = 3e-3
    """Learning rate."""
    lr_schedule: str = "constant"
    """constant or cosine (over the whole run)."""
    augment: float = 0.0
    """Std of Gaussian input jitter added to training batches (0 = off)."""
    norm: bool = False
    """Batch normalisation in MLP / CNN models."""
    grad_clip: float = 0.0
    """Clip the total gradient norm to this value (0 = off)."""

    @property
    def total_inner_steps(self) -> int:
        return self.control_steps * self.inner_steps


@dataclass(frozen=True)
class MonitorConfig:
    """Learning-state monitor settings (their cost is measured and reported)."""

    probe_size: int = 128
    """Fixed probe examples per stage (loss, entropy, drift, calibration, head-gradient variance)."""
    val_size: int = 512
    """Examples of the val set evaluated at each control step (the full set at the end)."""
    micro_batches: int = 4
    """Micro-batches the probe is split into for the gradient-variance estimate."""
    ece_bins: int = 10
    """Bins of the expected calibration error."""


@dataclass(frozen=True)
class RunConfig:
    """Everything `metacurr train` needs: the task, the controller and the monitors."""

    task: TaskSpec = field(default_factory=TaskSpec)
    controller: str = "heuristic"
    """Controller registry name, or policy:PATH / policy:default."""
    controller_kwargs: dict = field(default_factory=dict)
    """Keyword arguments of the controller."""
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    device: str = "cpu"
    """Torch device of the inner run (cpu, cuda, cuda:0, ...)."""

    def to_dict(self) -> dict:
        return to_dict(self)


def to_dict(obj: Any) -> dict:
    """Dataclass -> plain dict (recursively), JSON / YAML serialisable."""
    return dataclasses.asdict(obj)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return list(value)
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; valid choices: {', '.join(names)}")
    kwargs = {k: _check_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    obj = cls(**kwargs)
    _validate(obj, where)
    return obj


def _positive(obj: Any, names: tuple[str, ...], where: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if v <= 0:
            raise ConfigError(f"{where}.{n} must be positive, got {v!r}")


def _validate(obj: Any, where: str) -> None:
    if isinstance(obj, TaskSpec):
        if obj.family == CUSTOM_FAMILY:  # bring-your-own curriculum: checked against its layout at run time
            if obj.arch not in ARCHS:
                raise choices_error("arch", obj.arch, ARCHS)
            mod = None
        else:
            mod = family_module(obj.family)  # unknown family -> ConfigError with choices
        if mod is not None and obj.arch not in mod.ARCHS:
            if obj.arch not in ARCHS:
                raise choices_error("arch", obj.arch, ARCHS)
            raise ConfigError(
                f"arch {obj.arch!r} is incompatible with task {obj.family!r}; valid choices: {', '.join(mod.ARCHS)}"
            )
        if mod is not None:
            check_compatible(obj.arch, mod.LAYOUT)
        if not (MIN_STAGES <= obj.n_stages <= MAX_STAGES):
            raise ConfigError(f"{where}.n_stages must be in [{MIN_STAGES}, {MAX_STAGES}], got {obj.n_stages}")
        _positive(obj, ("control_steps", "inner_steps", "batch_size", "lr"), where)
        if obj.seed < 0:
            raise ConfigError(f"{where}.seed must be >= 0, got {obj.seed}")
        check_task_ranges(obj, where)
        if obj.optimizer not in OPTIMIZERS:
            raise choices_error("optimizer", obj.optimizer, OPTIMIZERS)
        if obj.lr_schedule not in LR_SCHEDULES:
            raise choices_error("lr_schedule", obj.lr_schedule, LR_SCHEDULES)
        if obj.augment < 0 or obj.grad_clip < 0:
            raise ConfigError(f"{where}.augment and {where}.grad_clip must be >= 0")
        if mod is not None:
            check_params(obj.family, obj.params)
    elif isinstance(obj, MonitorConfig):
        _positive(obj, ("probe_size", "val_size", "micro_batches", "ece_bins"), where)
        for n in ("probe_size", "val_size", "micro_batches", "ece_bins"):
            check_limit(getattr(obj, n), n, where)
        if obj.micro_batches > obj.probe_size:
            raise ConfigError(f"{where}.micro_batches ({obj.micro_batches}) exceeds probe_size ({obj.probe_size})")
    elif isinstance(obj, RunConfig):
        check_device(obj.device)


def check_task_ranges(spec: TaskSpec, where: str = "task") -> None:
    """Resource bounds of a TaskSpec (types already checked): budgets, seed, finite hyper-parameters."""
    for n in ("control_steps", "inner_steps", "batch_size"):
        check_limit(getattr(spec, n), n, where)
    check_seed(spec.seed, f"{where}.seed")
    check_finite(spec.lr, f"{where}.lr", 0.0, None, lo_open=True)
    check_finite(spec.augment, f"{where}.augment", 0.0)
    check_finite(spec.grad_clip, f"{where}.grad_clip", 0.0)


def check_device(device) -> str:
    """Validate a torch device name and that this machine has it; one-line ConfigError otherwise.

    Returns the name. ``cuda`` / ``cuda:N`` need a CUDA build of torch and that many GPUs; ``mps``
    needs Apple's backend. Checked up front, so a run never starts and then fails inside torch.
    """
    name = str(device)
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; valid choices: cpu, cuda, cuda:N, mps")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {name!r} is not available on this machine (no CUDA GPU visible to torch); valid choices: cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {name!r} is not available: this machine has {count} CUDA GPU(s); valid choices: cpu, cuda:0..cuda:{count - 1}")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r} is not available on this machine; valid choices: cpu")
    return name


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with ``safe_load``; one-line ConfigError on a missing file or bad syntax."""
    p = Path(path)
    text = read_text(p)  # missing, unreadable or not UTF-8: one line
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"malformed YAML in {p}{at}: {getattr(e, 'problem', None) or 'syntax error'}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def merge(base: dict, override: dict) -> dict:
    """Recursive dict merge (override wins)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_config(data: dict | None = None, **task_overrides: Any) -> RunConfig:
    """Resolve a RunConfig from a mapping (e.g. YAML) plus task-level overrides (e.g. CLI flags)."""
    if not isinstance(data or {}, dict):
        raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
    data = dict(data or {})
    task = data.get("task") or {}
    if not isinstance(task, dict):
        raise ConfigError(f"config.task: expected a mapping, got {type(task).__name__}")
    task = dict(task)
    task.update({k: v for k, v in task_overrides.items() if v is not None})
    data["task"] = task
    if isinstance(data.get("controller"), str) and "{" in data["controller"]:  # NAME{k=v}, as in evaluate
        name, kwargs = parse_controller_ref(data["controller"])
        given = data.get("controller_kwargs") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"config.controller_kwargs: expected a mapping, got {type(given).__name__}")
        clash = sorted(set(kwargs) & set(given))
        if clash:
            raise ConfigError(f"controller parameter {clash[0]!r} is given both in {data['controller']!r} and in controller_kwargs")
        data["controller"], data["controller_kwargs"] = name, {**given, **kwargs}
    return from_dict(RunConfig, data, "config")
