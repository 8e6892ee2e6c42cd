"""Seeds: the one place that keeps agent-training seeds and evaluation seeds apart.

Evaluation seeds are ``EVAL_SEED_BASE + i``; every seed used to *train* anything that is later
evaluated (a PPO agent, the best-static grid search) must be at most ``TRAIN_SEED_MAX``. A task's data,
model initialisation and mini-batch order all derive from its seed (`metacurr.inner_run.derive_seeds`),
so disjoint seeds mean the evaluated runs never share a curriculum draw or an initialisation with
anything a method was tuned on. The checks raise `ConfigError`; evaluation, the best-static search,
the task distributions of agent training and agent training itself call them. This module sits at the
bottom layer (it imports only `metacurr.errors`), so every layer can share the seed ranges.
"""

from __future__ import annotations

from collections.abc import Iterable

from metacurr.errors import ConfigError
from metacurr.validation import LIMITS, SEED_MAX, check_int_range

EVAL_SEED_BASE = 10_000
"""Evaluation seed i is EVAL_SEED_BASE + i."""
TRAIN_SEED_MAX = 9_999
"""Largest seed any training procedure (agents, best-static search) may use."""
SEARCH_SEED_BASE = 9_000
"""Seeds of the best-static grid search: SEARCH_SEED_BASE + i (training seeds, never evaluated)."""
DEFAULT_EVAL_SEEDS = 5
"""Evaluation seeds per task when an evaluation names none."""


def eval_seeds(n: int, offset: int = 0) -> list[int]:
    """The ``n`` evaluation seeds starting at ``EVAL_SEED_BASE + offset``."""
    if not (isinstance(n, int) and n > 0):
        raise ConfigError(f"number of seeds must be a positive integer, got {n!r}")
    if not (isinstance(offset, int) and offset >= 0):
        raise ConfigError(f"seed offset must be an integer >= 0, got {offset!r}")
    check_int_range(n, 1, LIMITS["seeds"], "number of seeds")  # before a list of 10^9 seeds is built
    check_int_range(offset, 0, SEED_MAX - EVAL_SEED_BASE - n, "seed offset")
    seeds = [EVAL_SEED_BASE + offset + i for i in range(n)]
    check_eval_seeds(seeds)
    return seeds


def search_seeds(n: int) -> list[int]:
    """The ``n`` training seeds of the best-static search."""
    if not (isinstance(n, int) and n > 0):
        raise ConfigError(f"number of search seeds must be a positive integer, got {n!r}")
    seeds = [SEARCH_SEED_BASE + i for i in range(n)]
    check_train_seeds(seeds)
    return seeds


def _ints(seeds: Iterable[int], what: str) -> list[int]:
    out = list(seeds)
    if not out:
        raise ConfigError(f"no {what} seeds given")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"{what} seeds must be integers, got {s!r}")
    return out


def check_eval_seeds(seeds: Iterable[int]) -> list[int]:
    """Raise `ConfigError` unless every seed is >= EVAL_SEED_BASE (and distinct); return them."""
    out = _ints(seeds, "evaluation")
    bad = [s for s in out if s < EVAL_SEED_BASE]
    if bad:
        raise ConfigError(
            f"evaluation seed {bad[0]} is in the training range; evaluation seeds must be >= {EVAL_SEED_BASE}"
        )
    if len(set(out)) != len(out):
        raise ConfigError("evaluation seeds must be distinct")
    return out


def check_train_seeds(seeds: Iterable[int]) -> list[int]:
    """Raise `ConfigError` unless every seed is in [0, TRAIN_SEED_MAX]; return them."""
    out = _ints(seeds, "training")
    bad = [s for s in out if not (0 <= s <= TRAIN_SEED_MAX)]
    if bad:
        raise ConfigError(
            f"training seed {bad[0]} is outside [0, {TRAIN_SEED_MAX}]; seeds >= {EVAL_SEED_BASE} are reserved for evaluation"
        )
    return out
