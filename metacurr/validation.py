"""Input checks shared by the CLI, the Python API and the environment: one rule, one message.

Every check raises `ConfigError` with one line naming the input, the value and the valid range or
choices, before anything is allocated or written. The CLI prints that line and exits 2; the API and
the env raise it unchanged, so the three give identical lines for the same bad input.

The ranges are resource guards, not research limits: each is far above anything a run on one machine
uses, and far below what would exhaust memory or hang (a ``batch_size`` of 10^12 would try to allocate
terabytes; ``control_steps`` of 10^23 never ends).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from metacurr.errors import ConfigError

#: Largest seed: every family's data generator and torch's seeding accept [0, 2^32 - 1].
SEED_MAX = 2**32 - 1
#: Upper bounds of the budget / resource fields (inclusive), by field name.
LIMITS: dict[str, int] = {
    "control_steps": 100_000,
    "inner_steps": 100_000,
    "batch_size": 65_536,
    "probe_size": 65_536,
    "val_size": 1_048_576,
    "micro_batches": 65_536,
    "ece_bins": 10_000,
    "total_timesteps": 10**10,
    "n_envs": 1_024,
    "checkpoint_every": 10**10,
    "eval_seeds": 10_000,
    "seeds": 100_000,
}


def max_threads() -> int:
    """Torch threads a run may ask for: this machine's logical CPUs."""
    return max(1, os.cpu_count() or 1)


def check_int_range(value: Any, lo: int, hi: int, where: str) -> int:
    """An integer in [lo, hi] (bools are not integers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where} must be in [{lo}, {hi}], got {value}")
    return value


def check_limit(value: int, name: str, where: str) -> int:
    """A positive integer no larger than ``LIMITS[name]``."""
    return check_int_range(value, 1, LIMITS[name], f"{where}.{name}" if where else name)


def check_seed(value: Any, where: str = "seed") -> int:
    return check_int_range(value, 0, SEED_MAX, where)


def check_threads(value: Any, where: str = "threads") -> int:
    return check_int_range(value, 1, max_threads(), where)


def check_finite(value: Any, where: str, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False) -> float:
    """A finite real number in [lo, hi] ((lo, hi] with ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    below = lo is not None and (v <= lo if lo_open else v < lo)
    if below or (hi is not None and v > hi):
        left = "(" if lo_open else "["
        raise ConfigError(f"{where} must be in {left}{lo if lo is not None else '-inf'}, "
                          f"{hi if hi is not None else 'inf'}], got {value!r}")
    return v


def check_env_kwargs(control_steps: Any, inner_steps: Any, divergence_penalty: Any, render_mode: Any,
                     render_modes: list[str] | tuple[str, ...] = ()) -> None:
    """The environment's own keyword arguments (the task's fields are checked by `metacurr.config`)."""
    for name, v in (("control_steps", control_steps), ("inner_steps", inner_steps)):
        if v is not None:
            check_limit(v, name, "")
    check_finite(divergence_penalty, "divergence_penalty")
    if render_mode is not None and render_mode not in render_modes:
        valid = ", ".join(["None", *render_modes])
        raise ConfigError(f"unknown render_mode {render_mode!r}; valid choices: {valid}")


def check_reset_options(options: Any, valid: tuple[str, ...]) -> dict:
    """``reset(options=...)``: None or a mapping with known keys."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(f"reset options must be a mapping (e.g. {{'task': 'mnist1d'}}), got {type(options).__name__}")
    unknown = sorted(set(options) - set(valid), key=str)
    if unknown:
        raise ConfigError(f"unknown reset option {unknown[0]!r}; valid choices: {', '.join(valid)}")
    return options


#: Most classes a bring-your-own curriculum may have (the model's output layer has one unit each).
MAX_CLASSES = 100_000


def check_classes(stage_ys: list, val_y: Any, shift: Any, n_classes: Any) -> int:
    """Labels of a user's curriculum (already integer tensors >= 0); returns the class count.

    At least 2 classes, at most `MAX_CLASSES` (a label of 10^9 would size a 10^9-way output layer), every
    val / shift class taught by some stage.
    """
    import torch  # lazy: validation sits under every module, and `metacurr --help` should not load torch

    top = max(int(y.max()) for y in [*stage_ys, val_y, *([] if shift is None else [shift[1]])])
    if n_classes is None:
        n_classes = top + 1
    check_int_range(n_classes, 2, MAX_CLASSES, "n_classes")
    if top >= n_classes:
        raise ConfigError(f"a label {top} is out of range for n_classes={n_classes}; labels must be in [0, {n_classes - 1}]")
    taught = torch.unique(torch.cat([y.reshape(-1) for y in stage_ys]))
    if len(taught) < 2:
        raise ConfigError(f"the stages teach {len(taught)} class(es); a curriculum needs at least 2")
    for name, y in (("val", val_y), ("shift", None if shift is None else shift[1])):
        if y is None:
            continue
        extra = sorted(set(torch.unique(y).tolist()) - set(taught.tolist()))
        if extra:
            raise ConfigError(f"{name} holds class(es) {extra[:5]} that no stage teaches (labels taught: "
                              f"{len(taught)} of {n_classes})")
    return n_classes


def check_observation(obs: Any, size: int, layout: str) -> Any:
    """A raw observation for a loaded policy: shape (size,) or (N, size), finite numbers."""
    try:
        a = np.asarray(obs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"observation must be numbers in the policy's layout ({layout}), got {type(obs).__name__}") from None
    if a.ndim not in (1, 2) or a.shape[-1] != size:
        raise ConfigError(f"observation has shape {a.shape} but this policy reads {size} values per observation "
                          f"({layout}); build it with the policy's ObservationSpec")
    return a


def check_action(action: Any, n_slots: int, low: float = -1.0, high: float = 1.0) -> Any:
    """An env action: exactly ``n_slots`` finite values in [low, high] (Gymnasium's Box bounds)."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"action must be {n_slots} numbers in [{low}, {high}], got {type(action).__name__}") from None
    if a.size != n_slots or a.ndim > 1:
        raise ConfigError(f"action has shape {a.shape} but the action space is ({n_slots},): one value per stage slot")
    return check_action_range(a.reshape(-1), low, high)


def check_action_range(a: Any, low: float = -1.0, high: float = 1.0) -> Any:
    """Every value of an action array finite and in [low, high] (float32 rounding allowed)."""
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a) | (a < low - 1e-6) | (a > high + 1e-6)
    if bad.any():
        i = np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape)
        where = f"slot {i[-1]}" + (f" of env {i[0]}" if a.ndim > 1 else "")
        raise ConfigError(f"action value {float(a[i])!r} at {where} is outside [{low}, {high}]")
    return a


def split_top_level(text: str, sep: str = ",", keep_empty: bool = False) -> list[str]:
    """Split on ``sep`` outside ``{}`` / ``[]`` (stripped items; empty ones dropped unless ``keep_empty``)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced brackets in {text!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ConfigError(f"unbalanced brackets in {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if keep_empty or p.strip()]


def parse_value(text: str) -> Any:
    """A ``key=value`` value read as a YAML scalar / list (``1.0``, ``true``, ``[0.2,0.3]``, ``window``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"cannot read value {text!r}") from None


def parse_controller_ref(text: str, item: str | None = None) -> tuple[str, dict]:
    """``NAME{key=value,...}`` -> (NAME, kwargs); a plain name or ``policy:PATH`` -> (text, {}).

    The one reading of a controller reference with parameters: ``metacurr train --controller``,
    ``metacurr evaluate --controllers`` and ``metacurr.train(controller=...)`` all use it.
    """
    item = text if item is None else item
    kwargs: dict = {}
    if text.startswith(("policy:", "wandb:")) or "{" not in text:
        return text.strip(), kwargs
    if not text.endswith("}"):
        raise ConfigError(f"bad controller {item!r}; expected name{{key=value,...}}")
    name, inner = text[: text.index("{")], text[text.index("{") + 1 : -1]
    for kv in split_top_level(inner):
        if "=" not in kv:
            raise ConfigError(f"bad controller parameter {kv!r} in {item!r}; expected key=value")
        k, val = kv.split("=", 1)
        kwargs[k.strip()] = parse_value(val.strip())
    return name.strip(), kwargs


def split_items(text: str | None, what: str, parts: list[str] | None = None) -> list[str]:
    """Items of a comma list; an empty list or an empty item (``a,,b``, a trailing comma) is an error.

    ``parts`` is the split already done by a bracket-aware splitter (empty items kept); by default
    ``text`` is split on commas.
    """
    if text is None or not str(text).strip():
        raise ConfigError(f"{what}: empty list; give at least one item")
    items = [p.strip() for p in (parts if parts is not None else str(text).split(","))]
    if any(not p for p in items):
        raise ConfigError(f"{what}: empty item in {text!r} (a stray or trailing comma)")
    return items


def check_out_dir(path: Any, flag: str = "output folder") -> Path:
    """The one output-folder guard: a non-empty path that is, or can become, a writable folder.

    Checked before anything is written (nothing is created here): an existing file, a parent that is
    a file, or a read-only folder on the way is refused with one line.
    """
    if path is None or not str(path).strip():
        raise ConfigError(f"{flag}: the path is empty ({str(path if path is not None else '')!r}); give a folder to write to")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {p} exists and is not a directory")
    probe = p.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {p}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p}: {probe} is not writable")
    return p


def read_text(path: str | Path, what: str = "config file") -> str:
    """A text file as UTF-8; one line when it is missing, unreadable or not UTF-8."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {p} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {p}: {e.strerror or type(e).__name__}") from None


def write_error(e: OSError, out: Any = None) -> str:
    """One line for a failed write (full disk, read-only file system, permissions)."""
    where = e.filename or out
    target = f" {where}" if where else ""
    return (f"cannot write{target} ({e.strerror or type(e).__name__}); the files this run had written were "
            f"removed (checkpoints and finished runs are kept for a rerun)")
