"""Training task distributions: what the environment samples at each ``reset``.

A distribution is data (JSON-serialisable): lists of families, architectures, stage counts and
per-family difficulty ranges. Sampling draws everything from the env's ``np_random``, and task seeds
from ``[0, TRAIN_SEED_MAX]`` so training never touches evaluation seeds (``>= EVAL_SEED_BASE``).

Held-out evaluation task sets (`metacurr.evaluation.task_sets`) are built to never overlap these:
`check_disjoint` is tested for every named pair.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from metacurr.config import TaskSpec
from metacurr.errors import ConfigError, choices_error

# Task seeds used for agent training are in [0, TRAIN_SEED_MAX]; evaluation seeds start at EVAL_SEED_BASE.
from metacurr.seeds import EVAL_SEED_BASE, TRAIN_SEED_MAX  # noqa: E402,F401
from metacurr.tasks import check_params
from metacurr.tasks.imbalance import stage_imbalance


@dataclass(frozen=True)
class TaskDistribution:
    """A distribution over `TaskSpec`s.

    Attributes:
        name: label.
        families: {family: {"archs": [...], "params": {param: [low, high] | [choices...]}}}; a
            two-element numeric list is a uniform range, ``{"choice": [...]}`` a categorical choice.
        n_stages: stage counts to draw from.
        base: TaskSpec fields shared by every sample (budget, optimiser, lr, ...).
    """

    name: str
    families: dict
    n_stages: tuple[int, ...] = (3,)
    base: dict = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> TaskSpec:
        fams = sorted(self.families)
        fam = fams[int(rng.integers(len(fams)))]
        entry = self.families[fam]
        archs = list(entry["archs"])
        arch = archs[int(rng.integers(len(archs)))]
        n = int(self.n_stages[int(rng.integers(len(self.n_stages)))])
        params = {}
        for k, spec in sorted(entry.get("params", {}).items()):
            params[k] = _draw(spec, rng, n)
        seed = int(rng.integers(0, TRAIN_SEED_MAX + 1))
        return TaskSpec(**{**self.base, "family": fam, "arch": arch, "n_stages": n, "seed": seed, "params": params})

    def with_budget(self, **budget) -> TaskDistribution:
        return replace(self, base={**self.base, **{k: v for k, v in budget.items() if v is not None}})


def _draw(spec, rng: np.random.Generator, n_stages: int):
    if isinstance(spec, dict) and "choice" in spec:
        opts = spec["choice"]
        return copy.deepcopy(opts[int(rng.integers(len(opts)))])
    if isinstance(spec, dict) and "per_stage" in spec:
        # Independent per-stage draws, e.g. which stages carry label noise and how much; a stage not
        # drawn gets ``off`` (0.0: no label noise; 1.0: a balanced stage).
        lo, hi = spec["per_stage"]
        p, off = spec.get("p", 1.0), spec.get("off", 0.0)
        return [float(rng.uniform(lo, hi)) if rng.random() < p else off for _ in range(n_stages)]
    if isinstance(spec, (list, tuple)) and len(spec) == 2 and all(isinstance(v, (int, float)) for v in spec):
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int):
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))
    return copy.deepcopy(spec)


#: Named training distributions. "default": MNIST-1D with an MLP or a CNN, randomised difficulty: which
#: stages carry label noise and how much, how strong the distortions are, so the best weighting differs
#: between episodes and reading the learner's state can pay. GRU / transformer and the other families
#: stay held out for evaluation.
#: Per-stage label noise (each stage noisy with probability 0.5, rate 0-70%), of either kind: uniform
#: flips (harmless-ish: the clean class stays the most frequent label, so down-weighting the stage
#: mostly throws data away) or systematic flips (y -> y+1: above ~50% the stage teaches a wrong
#: mapping and should lose weight). Which stages, how much and which kind are drawn per episode, so the
#: right weighting differs between episodes and only the learner's state tells them apart.
#: Distortion strength is randomised too.
_MNIST1D_DIFFICULTY = {
    "label_noise": {"per_stage": [0.0, 0.7], "p": 0.5},
    "noise_kind": {"choice": ["uniform", "systematic"]},
    "noise_max": [0.1, 0.4],
    "translation_max": [24, 48],
}

#: The class-imbalance axis: each stage long-tailed with probability 0.5, head/tail ratio 2-8 (which
#: classes are rare is drawn per task seed); the held-out imbalance set goes to 10-20.
_IMBALANCE = {"imbalance": {"per_stage": [2.0, 8.0], "p": 0.5, "off": 1.0}}


def _mnist1d(name: str, archs: list[str], n_stages: tuple[int, ...] = (3,), extra: dict | None = None) -> TaskDistribution:
    params = {**_MNIST1D_DIFFICULTY, **(extra or {})}
    return TaskDistribution(name=name, families={"mnist1d": {"archs": archs, "params": params}}, n_stages=n_stages)


DISTRIBUTIONS: dict[str, TaskDistribution] = {
    "default": _mnist1d("default", ["mlp", "cnn"]),
    # The default distribution's MLP half: one architecture, so the batched env (one arch per batch)
    # trains on all of it. The shipped policy, the main job's agent and the design ablations use it.
    "default-mlp": _mnist1d("default-mlp", ["mlp"]),
    "mixed": _mnist1d("mixed", ["mlp", "cnn"], (2, 3, 4, 5)),
    # The MLP half of "mixed": stage counts 2-5 for one architecture.
    "mixed-mlp": _mnist1d("mixed-mlp", ["mlp"], (2, 3, 4, 5)),
    # The same with class-imbalanced stages as a further difficulty axis.
    "mixed-mlp-imbalance": _mnist1d("mixed-mlp-imbalance", ["mlp"], (2, 3, 4, 5), _IMBALANCE),
    "mixed-imbalance": _mnist1d("mixed-imbalance", ["mlp", "cnn"], (2, 3, 4, 5), _IMBALANCE),
    "fixed": TaskDistribution(name="fixed", families={"mnist1d": {"archs": ["mlp"], "params": {}}}, n_stages=(3,)),
}


def get_distribution(name: str) -> TaskDistribution:
    if name not in DISTRIBUTIONS:
        raise choices_error("task distribution", name, list(DISTRIBUTIONS))
    return DISTRIBUTIONS[name]


def task_key(spec: TaskSpec) -> tuple:
    """What identifies a task apart from its seed and budget: family, arch, stage count."""
    return (spec.family, spec.arch, spec.n_stages)


def in_support(dist: TaskDistribution, spec: TaskSpec) -> bool:
    """Could ``spec`` (ignoring its seed and budget) be drawn from ``dist``? Unset parameters are the family defaults."""
    entry = dist.families.get(spec.family)
    if entry is None or spec.arch not in entry["archs"] or spec.n_stages not in dist.n_stages:
        return False
    params = check_params(spec.family, spec.params)
    defaults = check_params(spec.family, {})
    drawn = entry.get("params", {})
    for k, v in params.items():
        rule = drawn.get(k)
        if rule is None:
            if v != defaults[k]:  # not drawn: only the family default can occur
                return False
        elif isinstance(rule, dict) and "per_stage" in rule:
            lo, hi = rule["per_stage"]
            off = rule.get("off", 0.0)
            rates = _per_stage_values(k, v, spec.n_stages)
            if len(rates) != spec.n_stages or not all(r == off or lo <= r <= hi for r in rates):
                return False
        elif isinstance(rule, dict) and "choice" in rule:
            if v not in rule["choice"]:
                return False
        elif isinstance(rule, (list, tuple)) and len(rule) == 2:
            if not (rule[0] <= v <= rule[1]):
                return False
        elif v != rule:
            return False
    return True


def _per_stage_values(param: str, value, n_stages: int) -> list[float]:
    """A per-stage parameter as its list of stage values: a number is the value at the hardest stage,
    reached geometrically from 1 for ``imbalance`` and linearly from 0 otherwise (label noise)."""
    if isinstance(value, (list, tuple)):
        return [float(r) for r in value]
    if param == "imbalance":
        return stage_imbalance(value, n_stages)
    return list(np.linspace(0.0, float(value), n_stages))


def check_disjoint(dist: TaskDistribution, heldout: list[TaskSpec]) -> None:
    """Raise ConfigError if a held-out task could be drawn from ``dist`` or uses a training seed."""
    for spec in heldout:
        if spec.seed <= TRAIN_SEED_MAX:
            raise ConfigError(f"held-out task {spec.family}/{spec.arch} uses training seed {spec.seed}")
        if in_support(dist, spec):
            raise ConfigError(f"held-out task {spec.family}/{spec.arch} {spec.params} lies in the training distribution {dist.name!r}")
