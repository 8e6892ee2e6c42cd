"""metacurr: reinforcement learning that discovers how to rebalance a curriculum.

Quick use::

    import metacurr
    summary = metacurr.train("mnist1d", arch="mlp", controller="heuristic", seed=0)
    cur = metacurr.Curriculum.from_tensors(stages=[(X0, y0), (X1, y1)], val=(Xv, yv))
    ctrl = metacurr.load_controller("policy:default")
    res = metacurr.evaluate("uniform,heuristic", "quick", out="runs/eval", seeds=2)
    report = metacurr.sweep("experiments/sweeps/heuristic.yaml", out="runs/sweep", workers=2)
    agent = metacurr.train_agent("experiments/main_agent.yaml", out="runs/agent")

Importing metacurr registers the Gymnasium environment ``metacurr/Rebalance-v0``.
"""

from __future__ import annotations

import importlib

from metacurr.errors import ConfigError, MetacurrError

# Public names -> the module that defines them, imported on first use: `import metacurr` (and the
# `metacurr` command line, which lives in this package) does not pay for torch until a name needs it.
_LAZY = {
    "MonitorConfig": "metacurr.config",
    "RunConfig": "metacurr.config",
    "TaskSpec": "metacurr.config",
    "Controller": "metacurr.controllers",
    "WeightMapping": "metacurr.controllers",
    "list_controllers": "metacurr.controllers",
    "make_controller": "metacurr.controllers",
    "LearningState": "metacurr.monitors.state",
    "feature_names": "metacurr.monitors.state",
    "train": "metacurr.run",
    "build_curriculum": "metacurr.tasks",
    "list_families": "metacurr.tasks",
    "Curriculum": "metacurr.tasks.curriculum",
    # The heavier jobs: evaluation pulls in pandas, scipy and matplotlib, agent training stable-baselines3.
    "evaluate": "metacurr.evaluation.pipeline",
    "EvaluationResult": "metacurr.evaluation.pipeline",
    "sweep": "metacurr.sweeps.api",
    "train_agent": "metacurr.agents.job",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metacurr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"


def load_controller(ref: str, **kwargs):
    """Load a controller by name or reference (``heuristic``, ``policy:PATH``, ``policy:default``)."""
    from metacurr.controllers import make_controller  # on first use: `import metacurr` stays free of torch

    return make_controller(ref, **kwargs)


def _register_envs() -> None:
    # Imported here: the envs sit in a layer above this facade's other imports, and registering them is
    # the one side effect of ``import metacurr`` (skipped where gymnasium is missing).
    try:
        import gymnasium  # noqa: F401
    except ImportError:  # pragma: no cover - gymnasium is a dependency
        return
    from importlib.util import find_spec

    if find_spec("metacurr.envs.registration") is not None:
        from metacurr.envs.registration import register_envs

        register_envs()


_register_envs()

__all__ = [
    "ConfigError",
    "EvaluationResult",
    "Controller",
    "Curriculum",
    "LearningState",
    "MetacurrError",
    "MonitorConfig",
    "RunConfig",
    "TaskSpec",
    "WeightMapping",
    "build_curriculum",
    "feature_names",
    "list_controllers",
    "list_families",
    "load_controller",
    "make_controller",
    "evaluate",
    "sweep",
    "train",
    "train_agent",
    "__version__",
]
