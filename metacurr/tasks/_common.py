"""Helpers shared by the built-in task families.

Every family builds its curriculum the same way:

1. resolve and validate parameters (`resolve_params`, `check_int`, `check_float`, `stage_label_noise`);
2. interpolate each difficulty axis from an easy end to a hard end across the stages (`lerp`);
3. give every training example a *difficulty level* (the index of the stage whose input condition it
   is generated under): most examples of stage ``s`` are at level ``s``, a fraction ``overlap`` are at
   the neighbouring levels (`stage_levels`); evaluation sets use `mixed_levels` / `pure_levels`;
4. render inputs for a level array, flip training labels per level (`flip_labels`), standardise with
   the training statistics (`Standardiser`) and wrap the numpy arrays as tensors (`to_pair`).

All randomness comes from `child_rng(seed, purpose)`: independent streams per purpose, so changing
e.g. the label-noise rate does not change the inputs drawn for the same seed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch

from metacurr.errors import ConfigError
from metacurr.tasks import MAX_STAGES, MIN_STAGES
from metacurr.tasks.curriculum import Curriculum


def child_rng(seed: int, purpose: str) -> np.random.Generator:
    """Independent generator for one purpose ("inputs", "labels", ...) of one seed."""
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode())])


def resolve_params(family: str, defaults: Mapping[str, object], params: Mapping[str, object]) -> dict:
    """Merge ``params`` over ``defaults``; unknown names raise.

    Raises:
        ConfigError: a name not in ``defaults``.
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for task {family!r}; valid choices: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **params}


def check_stages_and_seed(n_stages: object, seed: object) -> tuple[int, int]:
    """Validate ``n_stages`` (in [2, 8]) and ``seed`` (a non-negative integer)."""
    if (
        isinstance(n_stages, bool)
        or not isinstance(n_stages, Integral)
        or not (MIN_STAGES <= n_stages <= MAX_STAGES)
    ):
        raise ConfigError(f"n_stages must be an integer in [{MIN_STAGES}, {MAX_STAGES}], got {n_stages!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n_stages), int(seed)


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """Return ``value`` as an int, raising unless it is an integer in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not (lo <= value <= hi):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_float(
    name: str, value: object, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> float:
    """Return ``value`` as a float, raising unless it is a finite number in the given interval."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_int_range(name: str, value: object, lo: int, hi: int) -> tuple[int, int]:
    """Validate an inclusive integer range ``[a, b]`` with ``lo <= a <= b <= hi``."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, Integral) for v in value)
        or not (lo <= value[0] <= value[1] <= hi)
    ):
        raise ConfigError(
            f"{name} must be a pair [a, b] of integers with {lo} <= a <= b <= {hi}, got {value!r}"
        )
    return int(value[0]), int(value[1])


def lerp(easy: float, hard: float, n_stages: int) -> list[float]:
    """Difficulty values for ``n_stages`` stages, linearly from ``easy`` (stage 0) to ``hard`` (last)."""
    return [float(easy + (hard - easy) * s / (n_stages - 1)) for s in range(n_stages)]


def stage_label_noise(value: object, n_stages: int) -> list[float]:
    """Per-stage label flip rates.

    Args:
        value: a number ``r`` (the rate at the hardest stage, interpolated linearly from 0 at the
            easiest) or a list of ``n_stages`` per-stage rates; every rate in [0, 1).
        n_stages: number of stages.

    Raises:
        ConfigError: wrong type, wrong list length or a rate outside [0, 1).
    """
    if isinstance(value, (list, tuple)):
        if len(value) != n_stages:
            raise ConfigError(f"label_noise has {len(value)} rates but there are {n_stages} stages")
        return [check_float(f"label_noise[{i}]", v, 0.0, 1.0, hi_open=True) for i, v in enumerate(value)]
    if isinstance(value, Real) and not isinstance(value, bool):
        return lerp(0.0, check_float("label_noise", value, 0.0, 1.0, hi_open=True), n_stages)
    raise ConfigError(
        f"label_noise must be a number in [0, 1) or a list of {n_stages} such numbers, got {value!r}"
    )


def split_counts(n: int, k: int) -> list[int]:
    """``n`` split into ``k`` near-equal non-negative parts (the first ones get the remainder)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def stage_levels(stage: int, n_stages: int, n: int, overlap: float, rng: np.random.Generator) -> np.ndarray:
    """Difficulty levels of the ``n`` training examples of one stage.

    ``round(overlap * n)`` examples are at the neighbouring levels (split evenly between both
    neighbours for an inner stage), the rest at the stage's own level. Shuffled, so a stage's
    neighbour examples are not clustered at its start.
    """
    n_ov = int(round(overlap * n))
    neighbours = [s for s in (stage - 1, stage + 1) if 0 <= s < n_stages]
    levels = [np.full(n - n_ov, stage, dtype=np.int64)]
    for s, c in zip(neighbours, split_counts(n_ov, len(neighbours)), strict=True):
        levels.append(np.full(c, s, dtype=np.int64))
    return rng.permutation(np.concatenate(levels))


def mixed_levels(n: int, n_stages: int, rng: np.random.Generator) -> np.ndarray:
    """Levels of a target-distribution set: an equal share of ``n`` at every stage's level, shuffled."""
    return rng.permutation(np.repeat(np.arange(n_stages), split_counts(n, n_stages)))


def balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with (near-)equal class counts, in random order."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


#: How a flipped label is chosen: ``uniform`` = a uniformly drawn different class (the clean class
#: stays the most frequent label up to very high rates, so such a stage still mostly teaches the
#: right answer); ``systematic`` = always the next class, ``(y + 1) mod C`` (a consistently confused
#: annotator: above ~50% the stage teaches a wrong mapping, and down-weighting it pays).
NOISE_KINDS = ("uniform", "systematic")


def flip_labels(
    y: np.ndarray, rates: np.ndarray, n_classes: int, rng: np.random.Generator, kind: str = "uniform"
) -> tuple[np.ndarray, np.ndarray]:
    """Flip each label with its own probability to a different class (``kind``: see `NOISE_KINDS`).

    Both kinds consume the generator identically, so a task's other draws do not depend on the kind.

    Returns:
        (noisy labels, boolean mask of the flipped examples).
    """
    flip = rng.random(len(y)) < rates
    offset = rng.integers(1, n_classes, size=len(y))
    if kind == "systematic":
        offset = np.ones_like(offset)
    noisy = np.where(flip, (y + offset) % n_classes, y).astype(np.int64)
    return noisy, flip


@dataclass(frozen=True)
class Standardiser:
    """Scalar standardisation fitted on the training stages and applied to every set.

    One scalar mean / std (not per feature) keeps the relative scale of features, as the
    mnist1d generator itself does, and avoids dividing by ~0 for always-blank image pixels.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, arrays: Sequence[np.ndarray]) -> Standardiser:
        flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float64)
        return cls(float(flat.mean()), float(max(flat.std(), 1e-8)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


def to_pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """numpy (X, y) as contiguous float32 / int64 tensors."""
    return (
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )


def check_common(params: Mapping[str, object], n_stages: int) -> dict:
    """Validate the size / overlap / label-noise parameters every family shares.

    Returns:
        dict with ``n_per_stage``, ``n_val``, ``n_test``, ``n_shift``, ``overlap`` and
        ``label_noise`` (the per-stage rates).
    """
    return {
        "n_per_stage": check_int("n_per_stage", params["n_per_stage"], 20, 100_000),
        "n_val": check_int("n_val", params["n_val"], 20, 100_000),
        "n_test": check_int("n_test", params["n_test"], 10, 100_000),
        "n_shift": check_int("n_shift", params["n_shift"], 20, 100_000),
        "overlap": check_float("overlap", params["overlap"], 0.0, 0.5),
        "label_noise": stage_label_noise(params["label_noise"], n_stages),
        "noise_kind": check_noise_kind(params.get("noise_kind", "uniform")),
    }


def check_noise_kind(value: object) -> str:
    if value not in NOISE_KINDS:
        raise ConfigError(f"unknown noise_kind {value!r}; valid choices: {', '.join(NOISE_KINDS)}")
    return str(value)


@dataclass
class Draft:
    """Raw numpy sets of a family before standardisation, with the ground truth tests need.

    ``levels`` / ``clean`` / ``flipped`` hold, per training stage, the difficulty level of each
    example, its clean label and whether its label was flipped.
    """

    stages: list[tuple[np.ndarray, np.ndarray]]
    levels: list[np.ndarray]
    clean: list[np.ndarray]
    flipped: list[np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    stage_tests: list[tuple[np.ndarray, np.ndarray]]
    shift: tuple[np.ndarray, np.ndarray]


def noisy_stages(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    levels: list[np.ndarray],
    rates: Sequence[float],
    n_classes: int,
    seed: int,
    kind: str = "uniform",
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    """Apply per-level label noise to the training stages.

    An example's flip rate is that of its difficulty level, so a neighbour-level example carries
    its neighbour's label noise as well as its input condition.
    """
    rng = child_rng(seed, "label_noise")
    rates_arr = np.asarray(rates, dtype=np.float64)
    pairs, flips = [], []
    for x, y, lv in zip(xs, ys, levels, strict=True):
        noisy, flip = flip_labels(y, rates_arr[lv], n_classes, rng, kind)
        pairs.append((x, noisy))
        flips.append(flip)
    return pairs, flips


def assemble(
    draft: Draft,
    *,
    name: str,
    layout: str,
    n_classes: int,
    stage_names: list[str],
    meta: dict,
    standardise: bool = True,
) -> Curriculum:
    """Turn a `Draft` into a `Curriculum`, standardising every set with the training statistics.

    Fitting the statistics on the training stages only (not per set) keeps val / stage_tests /
    shift on the scale the model was trained on, so a shift in input statistics stays visible.
    """
    scaler = Standardiser.fit([x for x, _ in draft.stages]) if standardise else Standardiser(0.0, 1.0)
    if standardise:
        meta = {**meta, "standardisation": {"mean": scaler.mean, "std": scaler.std}}

    def pair(p: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return to_pair(scaler(p[0]), p[1])

    return Curriculum(
        stages=[pair(p) for p in draft.stages],
        val=pair(draft.val),
        shift=pair(draft.shift),
        n_classes=n_classes,
        layout=layout,
        stage_names=stage_names,
        stage_tests=[pair(p) for p in draft.stage_tests],
        name=name,
        meta=meta,
    )
