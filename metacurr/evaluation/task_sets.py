"""Named task sets for evaluation: held-out sets, and two sets inside the training distribution.

A task is a plain, JSON-serialisable dict ``{"name", "family", "arch", "n_stages", "params"}``
(``params`` = the family's difficulty parameters, see `metacurr list`); a task set is a named list of
them. Agents train on the task distributions of `metacurr.envs.task_distribution` (MNIST-1D, MLP / CNN,
2-5 stages, ``noise_max`` in [0.1, 0.4], ``translation_max`` in [24, 48], per-stage label noise of
either kind up to 0.7); every held-out set (`HELDOUT_SETS`) lies outside all of them (tested):

* ``heldout-family``: families no agent trained on: real handwritten digits, synthetic sequences.
* ``heldout-arch``: the training family under recurrent / attention models (GRU, transformer).
* ``heldout-difficulty``: the training family and model with distortions or a stage count outside
  the training ranges.
* ``heldout-systematic``: systematic label noise on one stage, under each held-out axis (family,
  architecture, noise rate / distortion, stage count).
* ``heldout-imbalance``: class-imbalanced (long-tailed) training stages, an axis no training
  distribution has: MNIST-1D + MLP with every other difficulty inside the training ranges (the
  long tail on the easiest, the hardest or growing over all stages), and real digits with a
  long-tailed middle stage. ``val`` stays balanced; compare the error-distribution metrics.
* ``heldout-stages``: curricula of 7 and 8 stages (MNIST-1D with an MLP or a CNN, real digits), with
  and without a noisy stage.
* ``default``: one task per held-out axis, with harmless and harmful label noise (the main job's set).
* ``quick``: one small held-out-family task, for smoke tests and first looks.

Not held out (reports label them so):

* ``validation``: MNIST-1D + MLP tasks inside the training distribution where the noisy stage and the
  noise kind vary; design choices and sweeps are made on it (`experiments/design.yaml`).
* ``validation-imbalance``: MNIST-1D + MLP tasks with class-imbalanced stages inside the
  ``mixed-mlp-imbalance`` / ``mixed-imbalance`` distributions, for deciding whether agents train on
  the imbalance axis.
* ``in-distribution``: fixed tasks inside the ``default`` distribution (MLP and CNN), for
  in-distribution vs held-out comparisons.

``--tasks`` also accepts a comma list ``family:arch[:n_stages]`` (default parameters, 3 stages).
"""

from __future__ import annotations

import copy
import json

from metacurr.config import TaskSpec, from_dict
from metacurr.errors import ConfigError, choices_error
from metacurr.validation import split_items


def _task(family: str, arch: str, n_stages: int = 3, name: str | None = None, **params) -> dict:
    return {"name": name or f"{family}:{arch}", "family": family, "arch": arch, "n_stages": n_stages, "params": params}


#: name -> {"description": str, "tasks": [task dict, ...]}
TASK_SETS: dict[str, dict] = {
    "default": {
        "description": "one task per held-out axis (family, architecture, difficulty), with harmless and harmful label noise",
        "tasks": [
            _task("digits", "mlp", name="digits:mlp"),
            _task("digits", "mlp", name="digits:mlp/sys-mid", label_noise=[0.0, 0.7, 0.0], noise_kind="systematic"),
            _task("mnist1d", "gru", name="mnist1d:gru/sys-first", label_noise=[0.7, 0.0, 0.0], noise_kind="systematic"),
            _task("mnist1d", "mlp", name="mnist1d:mlp/hard", noise_max=0.6, translation_max=60, label_noise=[0.0, 0.0, 0.5]),
        ],
    },
    "quick": {
        "description": "one small held-out-family task (smoke tests)",
        "tasks": [
            _task("digits", "mlp", 3, name="digits:mlp/quick", n_per_stage=300, n_val=300, n_test=100,
                  n_shift=300, label_noise=0.35),
        ],
    },
    "heldout-family": {
        "description": "data families no agent was trained on (real digits, synthetic sequences)",
        "tasks": [
            _task("digits", "mlp", name="digits:mlp"),
            _task("digits", "cnn", name="digits:cnn"),
            _task("sequence", "gru", name="sequence:gru"),
            _task("sequence", "transformer", name="sequence:transformer"),
        ],
    },
    "heldout-arch": {
        "description": "the training family under architectures no agent was trained with",
        "tasks": [
            _task("mnist1d", "gru", name="mnist1d:gru"),
            _task("mnist1d", "transformer", name="mnist1d:transformer"),
        ],
    },
    "heldout-difficulty": {
        "description": "the training family and model, difficulty outside the training ranges",
        "tasks": [
            _task("mnist1d", "mlp", name="mnist1d:mlp/hard", noise_max=0.6, translation_max=60, label_noise=[0.0, 0.0, 0.5]),
            _task("mnist1d", "mlp", 6, name="mnist1d:mlp/s6", noise_max=0.4, translation_max=48),
            _task("mnist1d", "mlp", 4, name="mnist1d:mlp/s4-clean-shear", noise_max=0.05, shear_max=1.5, scale_max=0.8),
        ],
    },
    "validation": {
        "description": "inside the training distribution (NOT held out), for choosing a design: the noisy stage moves",
        "tasks": [
            _task("mnist1d", "mlp", name="mnist1d:mlp/clean", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.0, 0.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/noisy-first", noise_max=0.25, translation_max=36, label_noise=[0.35, 0.0, 0.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/noisy-mid", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.35, 0.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/noisy-last", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.0, 0.35]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/sys-first", noise_max=0.25, translation_max=36, label_noise=[0.6, 0.0, 0.0],
                  noise_kind="systematic"),
            _task("mnist1d", "mlp", name="mnist1d:mlp/sys-mid", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.6, 0.0],
                  noise_kind="systematic"),
            _task("mnist1d", "mlp", name="mnist1d:mlp/sys-last", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.0, 0.6],
                  noise_kind="systematic"),
        ],
    },
    "heldout-systematic": {
        "description": "systematic (y -> y+1) label noise on one stage, under each held-out axis",
        "tasks": [
            _task("digits", "mlp", name="digits:mlp/sys-mid", label_noise=[0.0, 0.7, 0.0], noise_kind="systematic"),
            _task("digits", "cnn", name="digits:cnn/sys-last", label_noise=[0.0, 0.0, 0.7], noise_kind="systematic"),
            _task("mnist1d", "gru", name="mnist1d:gru/sys-first", label_noise=[0.7, 0.0, 0.0], noise_kind="systematic"),
            _task("mnist1d", "mlp", name="mnist1d:mlp/sys-hard", noise_max=0.6, translation_max=60,
                  label_noise=[0.0, 0.0, 0.8], noise_kind="systematic"),
            _task("mnist1d", "mlp", 4, name="mnist1d:mlp/s4-sys", label_noise=[0.0, 0.8, 0.0, 0.0], noise_kind="systematic"),
        ],
    },
    "heldout-imbalance": {
        "description": "long-tailed class distributions in the training stages (val stays balanced)",
        "tasks": [
            _task("mnist1d", "mlp", name="mnist1d:mlp/lt-last", noise_max=0.25, translation_max=36, imbalance=[1.0, 1.0, 20.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/lt-first", noise_max=0.25, translation_max=36, imbalance=[20.0, 1.0, 1.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/lt-ramp", noise_max=0.25, translation_max=36, imbalance=10.0),
            _task("digits", "mlp", name="digits:mlp/lt-mid", imbalance=[1.0, 20.0, 1.0]),
        ],
    },
    "heldout-stages": {
        "description": "curricula of 7 and 8 stages (agents train on 2-5), other difficulty inside the training ranges",
        "tasks": [
            _task("mnist1d", "mlp", 7, name="mnist1d:mlp/s7", noise_max=0.25, translation_max=36),
            _task("mnist1d", "mlp", 8, name="mnist1d:mlp/s8-sys", noise_max=0.25, translation_max=36,
                  label_noise=[0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0], noise_kind="systematic"),
            _task("mnist1d", "cnn", 7, name="mnist1d:cnn/s7-noisy", noise_max=0.25, translation_max=36,
                  label_noise=[0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5]),
            _task("digits", "mlp", 8, name="digits:mlp/s8"),
        ],
    },
    "validation-imbalance": {
        "description": "inside the imbalance training distributions (NOT held out), for choosing a design: class-imbalanced stages",
        "tasks": [
            _task("mnist1d", "mlp", name="mnist1d:mlp/imb-first", noise_max=0.25, translation_max=36, imbalance=[6.0, 1.0, 1.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/imb-last", noise_max=0.25, translation_max=36, imbalance=[1.0, 1.0, 6.0]),
            _task("mnist1d", "mlp", name="mnist1d:mlp/imb-mid-noisy", noise_max=0.25, translation_max=36,
                  imbalance=[1.0, 6.0, 1.0], label_noise=[0.0, 0.0, 0.35]),
            _task("mnist1d", "mlp", 4, name="mnist1d:mlp/s4-imb", noise_max=0.25, translation_max=36,
                  imbalance=[1.0, 4.0, 1.0, 8.0]),
        ],
    },
    "in-distribution": {
        "description": "tasks inside the agents' training distribution (NOT held out)",
        "tasks": [
            _task("mnist1d", "mlp", name="mnist1d:mlp/in", noise_max=0.25, translation_max=36, label_noise=[0.0, 0.0, 0.3]),
            _task("mnist1d", "cnn", 4, name="mnist1d:cnn/in", noise_max=0.3, translation_max=48, label_noise=[0.0, 0.0, 0.0, 0.0]),
        ],
    },
}

HELDOUT_SETS = ("default", "quick", "heldout-family", "heldout-arch", "heldout-difficulty", "heldout-systematic",
                "heldout-imbalance", "heldout-stages")
IN_DISTRIBUTION = "in-distribution"
TASK_KEYS = ("name", "family", "arch", "n_stages", "params")


def list_task_sets() -> list[str]:
    """Names of the task sets."""
    return list(TASK_SETS)


def get_task_set(name: str) -> list[dict]:
    """A deep copy of the tasks of a named set."""
    if name not in TASK_SETS:
        raise choices_error("task set", name, list(TASK_SETS) + ["family:arch[,family:arch...]"])
    return copy.deepcopy(TASK_SETS[name]["tasks"])


def task_specs(name: str, **fields) -> list:
    """The tasks of a named set as `TaskSpec` s (``fields``: other TaskSpec fields, e.g. seed, budget)."""
    return [from_dict(TaskSpec, {**{k: t[k] for k in ("family", "arch", "n_stages", "params")}, **fields}, name)
            for t in get_task_set(name)]


def task_key(task: dict) -> tuple:
    """What makes two tasks the same task (the name is only a label)."""
    return (task["family"], task["arch"], int(task["n_stages"]), json.dumps(task.get("params") or {}, sort_keys=True))


def check_task(task: dict) -> dict:
    """Validate a task dict's keys and fill defaults (name, n_stages = 3, params = {})."""
    if not isinstance(task, dict):
        raise ConfigError(f"a task must be a mapping with keys {', '.join(TASK_KEYS)}, got {task!r}")
    unknown = [k for k in task if k not in TASK_KEYS]
    if unknown:
        raise ConfigError(f"unknown task key {unknown[0]!r}; valid choices: {', '.join(TASK_KEYS)}")
    if "family" not in task or "arch" not in task:
        raise ConfigError(f"a task needs 'family' and 'arch', got {task!r}")
    out = {"family": task["family"], "arch": task["arch"], "n_stages": task.get("n_stages", 3),
           "params": dict(task.get("params") or {})}
    out["name"] = task.get("name") or f"{out['family']}:{out['arch']}" + (f":{out['n_stages']}" if out["n_stages"] != 3 else "")
    return {k: out[k] for k in TASK_KEYS}


def parse_tasks(text: str) -> tuple[str, list[dict]]:
    """``--tasks``: a task-set name, or ``family:arch[:n_stages]`` items separated by commas.

    Returns:
        (label of the set, validated task dicts with unique names).
    """
    text = (text or "").strip()
    split_items(text, "--tasks")  # "" or a stray comma is an error, never the default set
    if text in TASK_SETS:
        return text, [check_task(t) for t in get_task_set(text)]
    if ":" not in text:
        raise choices_error("task set", text, list(TASK_SETS) + ["family:arch[,family:arch...]"])
    tasks = []
    for item in split_items(text, "--tasks"):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"bad task {item!r}; expected family:arch or family:arch:n_stages, or a task set: "
                              f"{', '.join(TASK_SETS)}")
        n = 3
        if len(parts) == 3:
            try:
                n = int(parts[2])
            except ValueError:
                raise ConfigError(f"bad stage count in task {item!r}: expected an integer") from None
        tasks.append(check_task({"family": parts[0], "arch": parts[1], "n_stages": n, "name": item}))
    if not tasks:
        raise ConfigError("no tasks given")
    names = [t["name"] for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate task in --tasks: {text!r}")
    return "custom", tasks
