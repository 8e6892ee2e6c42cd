"""Controllers by registry name. One controller per file behind `Controller`.

``make_controller("heuristic", alpha=2.0)``; ``policy:PATH`` / ``policy:default`` load a saved PPO policy
bundle (see `metacurr.agents`), ``wandb:ENTITY/PROJECT/NAME:VERSION`` a bundle logged as a W&B artifact.
"""

from __future__ import annotations

import importlib
import inspect

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError, choices_error
from metacurr.weights import WeightMapping, normalize

#: name -> "module:Class"; modules are imported on first use.
REGISTRY: dict[str, str] = {
    "uniform": "metacurr.controllers.uniform:Uniform",
    "sequential": "metacurr.controllers.sequential:Sequential",
    "linear-pacing": "metacurr.controllers.linear_pacing:LinearPacing",
    "heuristic": "metacurr.controllers.heuristic:Heuristic",
    "best-static": "metacurr.controllers.best_static:BestStatic",
    "dwa": "metacurr.controllers.dwa:DWA",
    "uncertainty": "metacurr.controllers.uncertainty:Uncertainty",
    "gradnorm": "metacurr.controllers.gradnorm:GradNorm",
    "self-paced": "metacurr.controllers.self_paced:SelfPaced",
    "bandit": "metacurr.controllers.bandit:Bandit",
    "random": "metacurr.controllers.rlw:RandomWeights",
    "random-policy": "metacurr.controllers.random_policy:RandomPolicy",
}

PREFIXES = ("policy:", "wandb:")


def list_controllers() -> list[str]:
    """Registry names (plus the ``policy:PATH`` / ``wandb:`` forms, not listed)."""
    return list(REGISTRY)


def controller_class(name: str) -> type[Controller]:
    if name not in REGISTRY:
        raise choices_error("controller", name, list(REGISTRY) + ["policy:PATH", "policy:default", "wandb:..."])
    mod, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def check_kwargs(cls: type, kwargs: dict, what: str) -> None:
    """Reject keyword arguments the constructor does not take (one line, with the valid choices)."""
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for k in kwargs:
        if k not in valid:
            raise ConfigError(f"unknown parameter {k!r} for {what}; valid choices: {', '.join(valid) or '(none)'}")


def make_controller(name: str, **kwargs) -> Controller:
    """Instantiate a controller by registry name or ``policy:`` / ``wandb:`` reference."""
    if not isinstance(name, str) or not name:
        raise choices_error("controller", name, list(REGISTRY))
    if name.startswith("policy:") or name.startswith("wandb:"):
        # Plugin point, not a layer violation: a saved policy resolves lazily to a PolicyController
        # (agents layer), so every caller of the registry can run one without importing agents.
        from metacurr.agents.policy_controller import load_policy_controller

        return load_policy_controller(name, **kwargs)
    cls = controller_class(name)
    check_kwargs(cls, kwargs, f"controller {name!r}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad parameters for controller {name!r}: {e}") from None


def validate_controller(name: str, kwargs: dict | None = None) -> None:
    """Check a controller reference before any work starts (``policy:`` paths are checked on load)."""
    if isinstance(name, str) and name.startswith(PREFIXES):
        return
    make_controller(name, **(kwargs or {}))


__all__ = ["Controller", "WeightMapping", "REGISTRY", "list_controllers", "make_controller", "normalize"]
