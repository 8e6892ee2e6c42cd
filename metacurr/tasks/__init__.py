"""Task families: each builds a staged `Curriculum` offline from a seed and difficulty parameters.

A family module exposes ``ARCHS`` (compatible architectures), ``DEFAULTS`` (its difficulty parameters
with default values; every accepted keyword is listed there) and ``build(n_stages, seed, **params)``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

from metacurr.errors import ConfigError, choices_error
from metacurr.tasks.curriculum import Curriculum

_FAMILY_MODULES = {
    "mnist1d": "metacurr.tasks.mnist1d",
    "digits": "metacurr.tasks.digits",
    "sequence": "metacurr.tasks.sequence",
}

MIN_STAGES, MAX_STAGES = 2, 8


def list_families() -> list[str]:
    """Names of the built-in task families."""
    return list(_FAMILY_MODULES)


def family_module(name: str) -> ModuleType:
    if name not in _FAMILY_MODULES:
        raise choices_error("task", name, list(_FAMILY_MODULES))
    return importlib.import_module(_FAMILY_MODULES[name])


def compatible_archs(family: str) -> tuple[str, ...]:
    return tuple(family_module(family).ARCHS)


def check_params(family: str, params: dict) -> dict:
    """Validate difficulty parameters against the family's DEFAULTS; return the full resolved dict."""
    mod = family_module(family)
    unknown = sorted(set(params) - set(mod.DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for task {family!r}; valid choices: {', '.join(sorted(mod.DEFAULTS)) or '(none)'}"
        )
    return {**mod.DEFAULTS, **params}


def build_curriculum(family: str, n_stages: int = 3, seed: int = 0, params: dict | None = None) -> Curriculum:
    """Build (and cache per process) the curriculum of a family for a seed and parameters."""
    if not isinstance(n_stages, int) or not (MIN_STAGES <= n_stages <= MAX_STAGES):
        raise ConfigError(f"n_stages must be an integer in [{MIN_STAGES}, {MAX_STAGES}], got {n_stages!r}")
    resolved = check_params(family, dict(params or {}))
    key = (family, n_stages, int(seed), _freeze(resolved))
    return _build_cached(key)


def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v):
    if isinstance(v, tuple) and v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
        return {k: _thaw(x) for k, x in v}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


@lru_cache(maxsize=16)
def _build_cached(key) -> Curriculum:
    family, n_stages, seed, frozen = key
    params = {k: _thaw(v) for k, v in frozen}
    cur = family_module(family).build(n_stages=n_stages, seed=seed, **params)
    cur.meta = {"family": family, "n_stages": n_stages, "seed": seed, "params": params, **cur.meta}
    return cur


__all__ = [
    "Curriculum",
    "build_curriculum",
    "check_params",
    "compatible_archs",
    "family_module",
    "list_families",
    "MIN_STAGES",
    "MAX_STAGES",
]
