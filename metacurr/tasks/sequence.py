"""Synthetic sequence curriculum: first-token recall, graded by sequence length.

Vocabulary: token 0 is padding, tokens 1..K are symbols (K = ``n_symbols``). A sequence of length L
is L random symbols, left-padded to ``max_len``; its label is its *first* symbol (class = symbol - 1),
the other L - 1 symbols are distractors. A model reading left to right has to carry the first
symbol across L - 1 steps, so longer sequences are harder (longer memory distance, more
distractors). Inputs are one-hot, shape (max_len, K + 1), not standardised.

Difficulty axes (interpolated linearly over the stages, easy -> hard):

* sequence length: uniform in [a_s, b_s], from ``easy_len`` to ``hard_len`` (both ``[a, b]``);
* label noise: flip rate 0 -> ``label_noise`` (or a list of per-stage rates); training stages only;
* class imbalance: the first symbols of a stage follow a long-tailed class distribution, ratio 1
  (uniform symbols) -> ``imbalance`` in equal multiplicative steps (training stages only; the
  distractors stay uniform and every evaluation set keeps uniform first symbols).

Sets: training stages (``n_per_stage`` each, a fraction ``overlap`` drawn at the neighbouring
stages' length ranges); ``val`` = an equal mix of every stage's length range (so the whole training
range), clean labels; ``stage_tests`` = clean sets at each stage's own range; ``shift`` = lengths
in ``shift_len``, longer than any training sequence.

Parameters (``DEFAULTS``): ``n_per_stage`` 700, ``n_val`` 800, ``n_test`` 250, ``n_shift`` 800,
``overlap`` 0.15 (in [0, 0.5]), ``noise_kind`` uniform | systematic (how a flipped label is chosen, `_common.NOISE_KINDS`), ``label_noise`` 0.0 (rate at the hardest stage, linear from 0, or a
list of per-stage rates in [0, 1)), ``imbalance`` 1.0 (class imbalance ratio at the hardest stage, rising
geometrically from 1, or a list of per-stage ratios in [1, 100]; `metacurr.tasks.imbalance`), ``n_symbols`` 4 (in [2, 16]; also the number of classes),
``easy_len`` [3, 6], ``hard_len`` [14, 20], ``shift_len`` [24, 30], ``max_len`` 32 (in [2, 256];
all lengths must fit, ``easy_len`` must not exceed ``hard_len`` and ``shift_len`` must start above
``hard_len``).
"""

from __future__ import annotations

import numpy as np

from metacurr.errors import ConfigError
from metacurr.tasks._common import (
    Draft,
    assemble,
    check_common,
    check_int,
    check_int_range,
    check_stages_and_seed,
    child_rng,
    lerp,
    mixed_levels,
    noisy_stages,
    resolve_params,
    stage_levels,
)
from metacurr.tasks.curriculum import Curriculum
from metacurr.tasks.imbalance import class_order, is_imbalanced, long_tail_labels, stage_imbalance

ARCHS = ("gru", "transformer")
LAYOUT = "sequence"

DEFAULTS: dict[str, object] = {
    "n_per_stage": 700,
    "n_val": 800,
    "n_test": 250,
    "n_shift": 800,
    "overlap": 0.15,
    "label_noise": 0.0,
    "noise_kind": "uniform",
    "imbalance": 1.0,
    "n_symbols": 4,
    "easy_len": [3, 6],
    "hard_len": [14, 20],
    "shift_len": [24, 30],
    "max_len": 32,
}

MAX_LEN_LIMIT = 256


def render(
    lengths: np.ndarray,
    n_symbols: int,
    max_len: int,
    rng: np.random.Generator,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw first-token-recall sequences of the given lengths.

    Args:
        lengths: (N,) sequence lengths, each in [1, max_len].
        n_symbols: number of symbols K (tokens 1..K; 0 is padding).
        max_len: padded length T.
        rng: source of the symbols.
        labels: (N,) classes to put as the first symbols (class c -> symbol c + 1) instead of the
            drawn ones; ``rng`` is drawn from the same way either way.

    Returns:
        (X, y): X of shape (N, T, K + 1) one-hot float32, y = first symbol - 1 (int64).
    """
    n = len(lengths)
    tokens = rng.integers(1, n_symbols + 1, size=(n, max_len))
    start = max_len - lengths
    tokens[np.arange(max_len)[None, :] < start[:, None]] = 0
    if labels is not None:
        tokens[np.arange(n), start] = labels + 1
    y = tokens[np.arange(n), start] - 1
    x = np.zeros((n, max_len, n_symbols + 1), dtype=np.float32)
    np.put_along_axis(x, tokens[:, :, None], 1.0, axis=2)
    return x, y.astype(np.int64)


def _lengths(levels: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(lo[levels], hi[levels] + 1)


def _check(params: dict, n_stages: int) -> dict:
    p = check_common(params, n_stages)
    p["imbalance"] = stage_imbalance(params["imbalance"], n_stages)
    p["n_symbols"] = check_int("n_symbols", params["n_symbols"], 2, 16)
    p["max_len"] = check_int("max_len", params["max_len"], 2, MAX_LEN_LIMIT)
    for k in ("easy_len", "hard_len", "shift_len"):
        p[k] = check_int_range(k, params[k], 1, p["max_len"])
    (ea, eb), (ha, hb), (sa, _) = p["easy_len"], p["hard_len"], p["shift_len"]
    if ea > ha or eb > hb:
        raise ConfigError(f"easy_len {list(p['easy_len'])} must not exceed hard_len {list(p['hard_len'])}")
    if sa <= hb:
        raise ConfigError(
            f"shift_len must start above hard_len's end ({hb}) so training never covers it, got {list(p['shift_len'])}"
        )
    return p


def _build(n_stages: int, seed: int, params: dict) -> tuple[Curriculum, Draft]:
    n_stages, seed = check_stages_and_seed(n_stages, seed)
    p = _check(resolve_params("sequence", DEFAULTS, params), n_stages)
    k, t = p["n_symbols"], p["max_len"]
    lo = np.asarray([int(round(v)) for v in lerp(p["easy_len"][0], p["hard_len"][0], n_stages)])
    hi = np.asarray([int(round(v)) for v in lerp(p["easy_len"][1], p["hard_len"][1], n_stages)])

    lv_rng = child_rng(seed, "levels")
    len_rng = child_rng(seed, "lengths")
    x_rng = child_rng(seed, "inputs")

    ratios = p["imbalance"]
    order = class_order(seed, k) if is_imbalanced(ratios) else None
    imb_rng = child_rng(seed, "imbalance_labels")
    levels, xs, ys = [], [], []
    for s in range(n_stages):
        lv = stage_levels(s, n_stages, p["n_per_stage"], p["overlap"], lv_rng)
        first = long_tail_labels(p["n_per_stage"], ratios[s], order, imb_rng) if ratios[s] > 1.0 else None
        x, y = render(_lengths(lv, lo, hi, len_rng), k, t, x_rng, first)
        xs.append(x)
        ys.append(y)
        levels.append(lv)
    stages, flipped = noisy_stages(xs, ys, levels, p["label_noise"], k, seed, p["noise_kind"])

    val = render(_lengths(mixed_levels(p["n_val"], n_stages, lv_rng), lo, hi, len_rng), k, t, x_rng)
    tests = [render(_lengths(np.full(p["n_test"], s), lo, hi, len_rng), k, t, x_rng) for s in range(n_stages)]
    sa, sb = p["shift_len"]
    shift = render(len_rng.integers(sa, sb + 1, size=p["n_shift"]), k, t, x_rng)

    draft = Draft(
        stages=stages, levels=levels, clean=ys, flipped=flipped, val=val, stage_tests=tests, shift=shift
    )
    names = [
        f"len={lo[s]}-{hi[s]}"
        + (f",flip={p['label_noise'][s]:.3g}" if p["label_noise"][s] > 0 else "")
        + (f",imb={ratios[s]:.3g}" if ratios[s] > 1.0 else "")
        for s in range(n_stages)
    ]
    meta = {
        "levels": {
            "length_min": [int(v) for v in lo],
            "length_max": [int(v) for v in hi],
            "label_noise": p["label_noise"],
        },
        "overlap": p["overlap"],
        "shift_setting": {"length_min": sa, "length_max": sb},
        "vocab": {"pad": 0, "n_symbols": k, "max_len": t},
        "sizes": {kk: p[kk] for kk in ("n_per_stage", "n_val", "n_test", "n_shift")},
    }
    if order is not None:
        meta["levels"]["imbalance"] = ratios
        meta["class_order"] = [int(c) for c in order]
    cur = assemble(
        draft,
        name="sequence",
        layout="sequence",
        n_classes=k,
        stage_names=names,
        meta=meta,
        standardise=False,
    )
    return cur, draft


def build(n_stages: int, seed: int, **params: object) -> Curriculum:
    """Build the first-token-recall sequence curriculum.

    Args:
        n_stages: number of stages, in [2, 8].
        seed: non-negative integer; the same (n_stages, seed, params) gives identical tensors.
        **params: difficulty and size parameters, see ``DEFAULTS`` and the module docstring.

    Returns:
        A `Curriculum` with layout ``"sequence"``, inputs of shape (max_len, n_symbols + 1) one-hot,
        ``n_symbols`` classes.

    Raises:
        ConfigError: unknown parameter, wrong type, value out of range or inconsistent lengths.
    """
    return _build(n_stages, seed, params)[0]
