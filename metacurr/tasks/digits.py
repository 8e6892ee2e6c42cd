"""Handwritten-digits curriculum: scikit-learn's bundled 8x8 digits under increasing corruption.

The 1797 images of ``sklearn.datasets.load_digits`` (real data shipped with scikit-learn, no
download) are split by seed into a *training pool* and a disjoint *held-out pool*
(``holdout_fraction`` of the images, stratified by class); training stages draw from the training
pool, ``val`` / ``stage_tests`` / ``shift`` from the held-out pool, so no evaluation image is ever
seen in training. Each set re-draws the corruption, so stages re-use pool images under new noise.
Pixels are scaled to [0, 1], corrupted, then standardised with the training stages' statistics.

Difficulty axes (interpolated linearly over the stages, easy -> hard):

* input noise: additive Gaussian pixel noise, sigma 0 -> ``noise_max`` (in [0, 1] pixel units);
* label noise: flip rate 0 -> ``label_noise`` (or a list of per-stage rates); training stages only;
* class imbalance: a stage's images are drawn class by class from the training pool in a long-tailed
  class distribution, ratio 1 (the pool's own near-balanced mix) -> ``imbalance`` in equal
  multiplicative steps (training stages only; every evaluation set keeps the held-out pool's mix).

Sets: training stages (``n_per_stage`` each, a fraction ``overlap`` drawn at the neighbouring
stages' noise level and flip rate); ``val`` = an equal mix of every stage's noise level, clean
labels; ``stage_tests`` = clean held-out sets at each stage's own noise level; ``shift`` = the same
mix of noise levels as ``val`` plus a corruption no stage has: a random ``occlusion`` x ``occlusion``
block set to the maximum intensity and, when ``shift_translation`` = t > 0, a random non-zero
translation by up to t pixels (zero fill). Translation is off by default because a single pixel
already drops a clean-trained MLP from ~0.97 to ~0.32 accuracy on 8x8 images, which leaves little
room to compare curricula; the 3x3 occluder alone takes it to ~0.6-0.7.

Parameters (``DEFAULTS``): ``n_per_stage`` 700, ``n_val`` 800, ``n_test`` 250, ``n_shift`` 800,
``overlap`` 0.15 (in [0, 0.5]), ``noise_kind`` uniform | systematic (how a flipped label is chosen, `_common.NOISE_KINDS`), ``label_noise`` 0.2 (rate at the hardest stage, linear from 0, or
a list of per-stage rates in [0, 1)), ``imbalance`` 1.0 (class imbalance ratio at the hardest stage, rising
geometrically from 1, or a list of per-stage ratios in [1, 100]; `metacurr.tasks.imbalance`), ``noise_max`` 0.5 (in [0, 2]), ``holdout_fraction`` 0.4 (in
[0.1, 0.6]), ``occlusion`` 3 (block side in pixels, in [0, 6]), ``shift_translation`` 0 (pixels, in
[0, 2]; ``occlusion`` and ``shift_translation`` must not both be 0).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from metacurr.errors import ConfigError
from metacurr.tasks._common import (
    Draft,
    assemble,
    check_common,
    check_float,
    check_int,
    check_stages_and_seed,
    child_rng,
    lerp,
    mixed_levels,
    noisy_stages,
    resolve_params,
    stage_levels,
)
from metacurr.tasks.curriculum import Curriculum
from metacurr.tasks.imbalance import class_counts, class_order, is_imbalanced, stage_imbalance

ARCHS = ("mlp", "cnn", "gru", "transformer")
LAYOUT = "image"

DEFAULTS: dict[str, object] = {
    "n_per_stage": 700,
    "n_val": 800,
    "n_test": 250,
    "n_shift": 800,
    "overlap": 0.15,
    "label_noise": 0.2,
    "noise_kind": "uniform",
    "imbalance": 1.0,
    "noise_max": 0.5,
    "holdout_fraction": 0.4,
    "occlusion": 3,
    "shift_translation": 0,
}

N_CLASSES = 10
SIDE = 8


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn is imported only when the digits family is built: its import is slow
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float64)
    images.setflags(write=False)
    target = d.target.astype(np.int64)
    target.setflags(write=False)
    return images, target


def _split(
    target: np.ndarray, holdout_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of image indices into (training pool, held-out pool)."""
    train, held = [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(target == c))
        k = int(round(holdout_fraction * len(idx)))
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _draw(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices from ``pool``: whole shuffled passes over the pool, so repeats are as even as possible."""
    reps = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


def _draw_long_tail(
    pool: np.ndarray, target: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``counts[c]`` indices of class ``c`` from ``pool`` for every class (`_draw` per class), shuffled."""
    per_class = [_draw(pool[target[pool] == c], int(k), rng) for c, k in enumerate(counts)]
    return rng.permutation(np.concatenate(per_class))


def _noisy(images: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images + sigma[:, None, None] * rng.standard_normal(images.shape)


def _shift_corrupt(
    images: np.ndarray, occlusion: int, translation: int, rng: np.random.Generator
) -> np.ndarray:
    """Occluding block at full intensity, then (if ``translation`` > 0) a non-zero translation, zero fill."""
    n = len(images)
    out = images
    if occlusion > 0:
        top = rng.integers(0, SIDE - occlusion + 1, size=n)
        left = rng.integers(0, SIDE - occlusion + 1, size=n)
        r = np.arange(SIDE)[None, :]
        in_rows = (r >= top[:, None]) & (r < top[:, None] + occlusion)
        in_cols = (r >= left[:, None]) & (r < left[:, None] + occlusion)
        out = np.where(in_rows[:, :, None] & in_cols[:, None, :], 1.0, out)
    if translation > 0:
        t = translation
        offsets = np.array(
            [(dy, dx) for dy in range(-t, t + 1) for dx in range(-t, t + 1) if (dy, dx) != (0, 0)]
        )
        off = offsets[rng.integers(0, len(offsets), size=n)]
        padded = np.pad(out, ((0, 0), (t, t), (t, t)))
        rows = np.arange(SIDE)[None, :] + t - off[:, :1]
        cols = np.arange(SIDE)[None, :] + t - off[:, 1:]
        out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out


def _check(params: dict, n_stages: int) -> dict:
    p = check_common(params, n_stages)
    p["imbalance"] = stage_imbalance(params["imbalance"], n_stages)
    p["noise_max"] = check_float("noise_max", params["noise_max"], 0.0, 2.0)
    p["holdout_fraction"] = check_float("holdout_fraction", params["holdout_fraction"], 0.1, 0.6)
    p["occlusion"] = check_int("occlusion", params["occlusion"], 0, 6)
    p["shift_translation"] = check_int("shift_translation", params["shift_translation"], 0, 2)
    if p["occlusion"] == 0 and p["shift_translation"] == 0:
        raise ConfigError(
            "occlusion and shift_translation are both 0: the shift set would not differ from val"
        )
    return p


def _build(n_stages: int, seed: int, params: dict) -> tuple[Curriculum, Draft]:
    n_stages, seed = check_stages_and_seed(n_stages, seed)
    p = _check(resolve_params("digits", DEFAULTS, params), n_stages)
    images, target = _digits()
    train_pool, held_pool = _split(target, p["holdout_fraction"], child_rng(seed, "split"))

    sigma = np.asarray(lerp(0.0, p["noise_max"], n_stages))
    lv_rng = child_rng(seed, "levels")
    idx_rng = child_rng(seed, "images")
    x_rng = child_rng(seed, "inputs")

    ratios = p["imbalance"]
    order = class_order(seed, N_CLASSES) if is_imbalanced(ratios) else None
    imb_rng = child_rng(seed, "imbalance_images")
    levels, xs, ys = [], [], []
    for s in range(n_stages):
        lv = stage_levels(s, n_stages, p["n_per_stage"], p["overlap"], lv_rng)
        idx = _draw(train_pool, p["n_per_stage"], idx_rng)
        if ratios[s] > 1.0:  # idx_rng advanced as if balanced: the later sets get the same raw examples
            idx = _draw_long_tail(train_pool, target, class_counts(p["n_per_stage"], ratios[s], order), imb_rng)
        xs.append(_noisy(images[idx], sigma[lv], x_rng))
        ys.append(target[idx].copy())
        levels.append(lv)
    stages, flipped = noisy_stages(xs, ys, levels, p["label_noise"], N_CLASSES, seed, p["noise_kind"])

    val_lv = mixed_levels(p["n_val"], n_stages, lv_rng)
    vi = _draw(held_pool, p["n_val"], idx_rng)
    val = (_noisy(images[vi], sigma[val_lv], x_rng), target[vi].copy())

    tests = []
    for s in range(n_stages):
        ti = _draw(held_pool, p["n_test"], idx_rng)
        tests.append((_noisy(images[ti], np.full(len(ti), sigma[s]), x_rng), target[ti].copy()))

    sh_lv = mixed_levels(p["n_shift"], n_stages, lv_rng)
    si = _draw(held_pool, p["n_shift"], idx_rng)
    # Corrupt first, then add the stage noise, so the occluder is as noisy as the rest of the image.
    corrupted = _shift_corrupt(images[si], p["occlusion"], p["shift_translation"], x_rng)
    shift = (_noisy(corrupted, sigma[sh_lv], x_rng), target[si].copy())

    draft = Draft(
        stages=stages, levels=levels, clean=ys, flipped=flipped, val=val, stage_tests=tests, shift=shift
    )
    names = [
        f"sigma={sigma[s]:.3g},flip={p['label_noise'][s]:.3g}" + (f",imb={ratios[s]:.3g}" if ratios[s] > 1.0 else "")
        for s in range(n_stages)
    ]
    meta = {
        "levels": {"input_noise_sigma": [float(v) for v in sigma], "label_noise": p["label_noise"]},
        "overlap": p["overlap"],
        "shift_setting": {
            "occlusion": p["occlusion"],
            "translation_px": p["shift_translation"],
            "noise": "val mix",
        },
        "pools": {"train_images": int(len(train_pool)), "heldout_images": int(len(held_pool))},
        "sizes": {k: p[k] for k in ("n_per_stage", "n_val", "n_test", "n_shift")},
    }
    if order is not None:
        meta["levels"]["imbalance"] = ratios
        meta["class_order"] = [int(c) for c in order]
    cur = assemble(draft, name="digits", layout=LAYOUT, n_classes=N_CLASSES, stage_names=names, meta=meta)
    return cur, draft


def build(n_stages: int, seed: int, **params: object) -> Curriculum:
    """Build the scikit-learn digits curriculum.

    Args:
        n_stages: number of stages, in [2, 8].
        seed: non-negative integer; the same (n_stages, seed, params) gives identical tensors.
        **params: difficulty and size parameters, see ``DEFAULTS`` and the module docstring.

    Returns:
        A `Curriculum` with layout ``"image"``, inputs of shape (8, 8), 10 classes.

    Raises:
        ConfigError: unknown parameter, wrong type or value out of range.
    """
    return _build(n_stages, seed, params)[0]
