"""Class imbalance as a difficulty axis: per-stage long-tailed class distributions.

A stage with imbalance ratio ``rho`` (>= 1) has class counts falling geometrically from the most
frequent (*head*) class to the rarest (*tail*) class: the class at rank ``r`` (0 = head) gets a share
proportional to ``rho ** (-r / (C - 1))``, so head count / tail count = ``rho`` (the exponential
long-tail profile of CIFAR-LT). ``rho = 1`` is the balanced stage. Which classes are the tail is a
permutation of the classes drawn per task seed (`class_order`), the same for every stage of a task.

The target sets (``val``, ``stage_tests``, ``shift``) are never imbalanced: they stay the balanced
target distribution, so a model that neglects the rare classes of the training stages is measured on
them (`metacurr.error_distribution`).

Built-in families take the ``imbalance`` parameter (`stage_imbalance`); for your own tensors,
`imbalance_stages` subsamples stages to the asked ratios (``Curriculum.from_tensors(imbalance=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch

from metacurr.errors import ConfigError
from metacurr.tasks._common import check_float, child_rng

#: Largest accepted imbalance ratio (head count / tail count).
MAX_RATIO = 100.0


def geometric_ramp(rho: float, n_stages: int) -> list[float]:
    """``n_stages`` ratios from 1 (stage 0) to ``rho`` (last stage) in equal multiplicative steps."""
    if n_stages == 1:
        return [float(rho)]
    return [float(rho ** (s / (n_stages - 1))) for s in range(n_stages)]


def stage_imbalance(value: object, n_stages: int) -> list[float]:
    """Per-stage imbalance ratios.

    Args:
        value: a number ``rho`` (the ratio at the hardest stage, rising geometrically from 1 at the
            easiest) or a list of ``n_stages`` per-stage ratios; every ratio in [1, `MAX_RATIO`].
        n_stages: number of stages.

    Raises:
        ConfigError: wrong type, wrong list length or a ratio outside [1, MAX_RATIO].
    """
    if isinstance(value, (list, tuple)):
        if len(value) != n_stages:
            raise ConfigError(f"imbalance has {len(value)} ratios but there are {n_stages} stages")
        return [check_float(f"imbalance[{i}]", v, 1.0, MAX_RATIO) for i, v in enumerate(value)]
    if isinstance(value, Real) and not isinstance(value, bool):
        return geometric_ramp(check_float("imbalance", value, 1.0, MAX_RATIO), n_stages)
    raise ConfigError(
        f"imbalance must be a number in [1, {MAX_RATIO:g}] or a list of {n_stages} such numbers, got {value!r}"
    )


def is_imbalanced(ratios: Sequence[float]) -> bool:
    """Whether any stage is imbalanced (a ratio above 1)."""
    return any(r > 1.0 for r in ratios)


def class_order(seed: int, n_classes: int) -> np.ndarray:
    """Classes from head (index 0) to tail (last) for a task seed; its own random stream."""
    return child_rng(seed, "imbalance").permutation(n_classes).astype(np.int64)


def class_shares(ratio: float, order: np.ndarray) -> np.ndarray:
    """Share of each class (indexed by class) in a stage with imbalance ``ratio``; sums to 1."""
    n_classes = len(order)
    rank_share = float(ratio) ** (-np.arange(n_classes) / max(n_classes - 1, 1))
    shares = np.empty(n_classes, dtype=np.float64)
    shares[order] = rank_share / rank_share.sum()
    return shares


def class_counts(n: int, ratio: float, order: np.ndarray) -> np.ndarray:
    """Class counts (indexed by class) of ``n`` examples under imbalance ``ratio``.

    Largest-remainder rounding of ``n * class_shares``: the counts sum to ``n`` exactly, and the head
    / tail count is ``ratio`` up to that rounding.

    Raises:
        ConfigError: a class would get no example (``ratio`` too large for ``n``).
    """
    exact = n * class_shares(ratio, order)
    counts = np.floor(exact).astype(np.int64)
    rest = int(n - counts.sum())
    # Ties go to the more frequent class (lower rank), so the profile stays monotone.
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    by_remainder = np.lexsort((rank, -(exact - counts)))
    counts[by_remainder[:rest]] += 1
    if counts.min() < 1:
        raise ConfigError(
            f"imbalance ratio {ratio:g} leaves a class with no example in a stage of {n}; "
            f"use a smaller ratio or more examples per stage"
        )
    return counts


def long_tail_labels(n: int, ratio: float, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with `class_counts` per class, in random order.

    Draws one permutation of ``n`` items from ``rng``, exactly as
    `metacurr.tasks._common.balanced_labels` does, so the generator's later draws are the same
    whatever the ratio.
    """
    return rng.permutation(np.repeat(np.arange(len(order)), class_counts(n, ratio, order))).astype(np.int64)


def subsample_long_tail(
    y: np.ndarray, ratio: float, order: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices (ascending) of the largest subset of ``y`` whose class counts follow ``ratio``.

    The head count is the largest ``h`` with ``floor(h * share_c / share_head) <= available_c`` for
    every class; each class keeps that many of its examples, chosen at random.

    Raises:
        ConfigError: a class is missing, or the ratio leaves a class with no example.
    """
    n_classes = len(order)
    avail = np.bincount(y, minlength=n_classes)
    if (avail == 0).any():
        missing = int(np.flatnonzero(avail == 0)[0])
        raise ConfigError(f"class {missing} has no example; an imbalanced stage needs every class")
    rel = class_shares(ratio, order) / class_shares(ratio, order).max()  # head = 1
    head = float(np.min(avail / rel))
    counts = np.minimum(np.floor(head * rel + 1e-9).astype(np.int64), avail)
    if counts.min() < 1:
        raise ConfigError(
            f"imbalance ratio {ratio:g} leaves a class with no example ({int(avail.min())} examples of the "
            f"rarest class); use a smaller ratio"
        )
    keep = [rng.permutation(np.flatnonzero(y == c))[: counts[c]] for c in range(n_classes)]
    return np.sort(np.concatenate(keep))


def imbalance_stages(
    stages: Sequence[tuple[torch.Tensor, torch.Tensor]],
    imbalance: float | Sequence[float],
    *,
    seed: int = 0,
    n_classes: int | None = None,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
    """Subsample your own stages to long-tailed class distributions (see the module docstring).

    Args:
        stages: (X, y) per stage, easiest first; every class present in every imbalanced stage.
        imbalance: a ratio ``rho`` (1 at the first stage rising geometrically to ``rho`` at the last)
            or one ratio per stage, each in [1, MAX_RATIO]; stages at ratio 1 are returned unchanged.
        seed: chooses the tail classes and the examples kept.
        n_classes: defaults to 1 + the largest label in ``stages``.

    Returns:
        (the new stages, a JSON-serialisable description: ``ratios``, ``class_order`` head to tail).

    Raises:
        ConfigError: bad ratios, a missing class, or a ratio the data cannot meet.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    ratios = stage_imbalance(imbalance, len(stages))
    if n_classes is None:
        n_classes = 1 + max(int(torch.as_tensor(p[1]).max()) for p in stages)
    order = class_order(seed, n_classes)
    rng = child_rng(seed, "imbalance_subsample")
    out = []
    for i, (pair, r) in enumerate(zip(stages, ratios, strict=True)):
        x, y = torch.as_tensor(pair[0]), torch.as_tensor(pair[1])
        if r == 1.0:
            out.append((x, y))
            continue
        try:
            idx = subsample_long_tail(y.cpu().numpy().astype(np.int64), r, order, rng)
        except ConfigError as e:
            raise ConfigError(f"stage {i}: {e}") from None
        t = torch.from_numpy(idx)
        out.append((x[t.to(x.device)], y[t.to(y.device)]))
    return out, {"ratios": ratios, "class_order": [int(c) for c in order]}
