"""MNIST-1D curriculum: 10 one-dimensional digit templates under increasing distortion.

Examples are the `mnist1d` package's templates (``get_templates``) put through the package's own
transformation pipeline (pad + dilate, scale, translate, correlated background noise, iid noise,
shear, subsample to 40 points; see ``mnist1d.transform.transform``). The pipeline is re-implemented
here in vectorised numpy with a local ``numpy.random.Generator``: the package version loops in
Python over examples (about 0.15 ms each, over 1 s for an 8-stage curriculum) and seeds the global
``np.random`` / ``random`` state. ``tests/tasks/test_families.py`` checks that, fed the same random
draws, this implementation reproduces ``mnist1d.transform.transform`` output.

Difficulty axes (interpolated linearly over the stages, easy -> hard):

* noise: ``corr_noise_scale`` 0 -> ``noise_max``, with ``iid_noise_scale`` = 0.08 x that (the
  package's default ratio 0.02 / 0.25);
* translation: ``max_translation`` 1 (none) -> ``translation_max`` (circular shift in [0, max));
* shear: ``shear_scale`` 0 -> ``shear_max``;
* scale: ``scale_coeff`` 0 -> ``scale_max``;
* class imbalance: the clean labels of a stage follow a long-tailed class distribution, ratio 1
  (balanced) -> ``imbalance`` in equal multiplicative steps (training stages only; every evaluation
  set stays balanced).

The hard end defaults to the package's own defaults (0.25, 48, 0.75, 0.4); the easy end is the bare
template (still padded / dilated by a random amount, as in the package).

Sets: training stages (``n_per_stage`` each, a fraction ``overlap`` drawn at the neighbouring
stages' settings, labels flipped at the per-stage ``label_noise`` rates); ``val`` = an equal mix of
every stage's setting with clean labels; ``stage_tests`` = clean held-out sets at each stage's own
setting; ``shift`` = noise, shear and scale ``shift_factor`` times those of the hardest stage and
translation up to ``min(72, shift_factor * translation_max)``, i.e. outside every training stage.

Parameters (``DEFAULTS``): ``n_per_stage`` 700, ``n_val`` 800, ``n_test`` 250, ``n_shift`` 800,
``overlap`` 0.15 (in [0, 0.5]), ``noise_kind`` uniform | systematic (how a flipped label is chosen, `_common.NOISE_KINDS`), ``label_noise`` 0.0 (rate at the hardest stage, linear from 0, or a
list of per-stage rates in [0, 1)), ``imbalance`` 1.0 (class imbalance ratio at the hardest stage, rising
geometrically from 1, or a list of per-stage ratios in [1, 100]; `metacurr.tasks.imbalance`), ``noise_max`` 0.25 (in [0, 2]), ``translation_max`` 48 (in
[1, 72]), ``shear_max`` 0.75 (in [0, 5]), ``scale_max`` 0.4 (in [0, 1.5]), ``shift_factor`` 1.5
(in (1, 5]).
"""

from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from metacurr.errors import ConfigError
from metacurr.tasks._common import (
    Draft,
    assemble,
    balanced_labels,
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
from metacurr.tasks.imbalance import class_order, is_imbalanced, long_tail_labels, stage_imbalance

ARCHS = ("mlp", "cnn", "gru", "transformer")
LAYOUT = "signal"

DEFAULTS: dict[str, object] = {
    "n_per_stage": 700,
    "n_val": 800,
    "n_test": 250,
    "n_shift": 800,
    "overlap": 0.15,
    "label_noise": 0.0,
    "noise_kind": "uniform",
    "imbalance": 1.0,
    "noise_max": 0.25,
    "translation_max": 48,
    "shear_max": 0.75,
    "scale_max": 0.4,
    "shift_factor": 1.5,
}

N_CLASSES = 10
# Package constants (``get_dataset_args``) that are not difficulty axes here.
TEMPLATE_LEN = 12
PADDING = (36, 60)
FINAL_LEN = 40
PADDED_LEN = TEMPLATE_LEN + PADDING[1]
# Keeps iid noise at the package's default ratio to the correlated noise (0.02 / 0.25).
IID_RATIO = 0.08
# `transform` adds this to the template so template points stay non-zero for its background mask.
EPS = 1e-8


@lru_cache(maxsize=1)
def _templates() -> np.ndarray:
    return np.asarray(_package_templates()["x"], dtype=np.float64)


def _package_templates() -> dict:
    """``mnist1d.data.get_templates()``, run from the package's own source without importing the package:
    importing `mnist1d` pulls in matplotlib.pyplot and requests (1 s or more), which generating data does
    not need. Tested equal to the package's function."""
    spec = importlib.util.find_spec("mnist1d")  # a top-level package: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the mnist1d package is not installed (pip install mnist1d)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_templates"), None)
    if fn is None:  # a future mnist1d without it in data.py: the package's own (slower) import
        from mnist1d.data import get_templates

        return get_templates()
    namespace: dict = {"np": np}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace["get_templates"]()


def _interp_rows(x: np.ndarray, src_len: np.ndarray, out_len: int) -> np.ndarray:
    """Row-wise linear resampling of the first ``src_len[i]`` points of row i onto ``out_len`` points.

    Same grid as ``mnist1d.transform.interpolate`` (``linspace(0, 1, ...)`` at both ends).
    """
    pos = np.linspace(0.0, 1.0, out_len)[None, :] * (src_len[:, None] - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, src_len[:, None] - 2)
    frac = pos - lo
    a = np.take_along_axis(x, lo, axis=1)
    b = np.take_along_axis(x, lo + 1, axis=1)
    return a + (b - a) * frac


def render(
    labels: np.ndarray,
    *,
    pad: np.ndarray,
    u_scale: np.ndarray,
    shift: np.ndarray,
    z_corr: np.ndarray,
    z_iid: np.ndarray,
    u_shear: np.ndarray,
    scale_coeff: np.ndarray,
    corr_noise: np.ndarray,
    iid_noise: np.ndarray,
    shear_scale: np.ndarray,
) -> np.ndarray:
    """Vectorised ``mnist1d.transform.transform`` for given random draws and per-example settings.

    Args:
        labels: (N,) digit classes (template index).
        pad: (N,) padding length in [36, 60].
        u_scale, u_shear: (N,) uniform [0, 1) draws of the scale and shear steps.
        shift: (N,) circular translation in [0, max_translation).
        z_corr, z_iid: (N, 72) standard normal draws of the two noise steps.
        scale_coeff, corr_noise, iid_noise, shear_scale: (N,) per-example settings.

    Returns:
        (N, 40) float64 signals, not standardised.
    """
    n = len(labels)
    tmpl = _templates()[labels] + EPS
    x = np.zeros((n, PADDED_LEN), dtype=np.float64)
    x[:, :TEMPLATE_LEN] = tmpl
    x = _interp_rows(x, TEMPLATE_LEN + pad, PADDED_LEN)
    x *= (1.0 + scale_coeff * (u_scale - 0.5))[:, None]
    cols = (np.arange(PADDED_LEN)[None, :] - shift[:, None]) % PADDED_LEN
    x = np.take_along_axis(x, cols, axis=1)
    # As in the package, correlated noise fills only the background (points outside the template).
    corr = corr_noise[:, None] * gaussian_filter1d(z_corr, 2.0, axis=1)
    x = np.where(x != 0, x, corr)
    x = x + iid_noise[:, None] * z_iid
    coeff = shear_scale * (u_shear - 0.5)
    x = x - coeff[:, None] * np.linspace(-0.5, 0.5, PADDED_LEN)[None, :]
    return _interp_rows(x, np.full(n, PADDED_LEN), FINAL_LEN)


def _generate(
    labels: np.ndarray,
    settings: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the randomness of the pipeline from ``rng`` and render ``labels`` under ``settings``."""
    n = len(labels)
    pad = PADDING[0] + np.floor(rng.random(n) * (PADDING[1] - PADDING[0] + 1)).astype(np.int64)
    u_scale = rng.random(n)
    shift = np.floor(rng.random(n) * settings["max_translation"]).astype(np.int64)
    z_corr = rng.standard_normal((n, PADDED_LEN))
    z_iid = rng.standard_normal((n, PADDED_LEN))
    u_shear = rng.random(n)
    return render(
        labels,
        pad=pad,
        u_scale=u_scale,
        shift=shift,
        z_corr=z_corr,
        z_iid=z_iid,
        u_shear=u_shear,
        scale_coeff=settings["scale_coeff"],
        corr_noise=settings["corr_noise"],
        iid_noise=settings["iid_noise"],
        shear_scale=settings["shear_scale"],
    )


def _settings_for(levels: np.ndarray, table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[levels] for k, v in table.items()}


def _check(params: dict, n_stages: int) -> dict:
    p = check_common(params, n_stages)
    p["imbalance"] = stage_imbalance(params["imbalance"], n_stages)
    p["noise_max"] = check_float("noise_max", params["noise_max"], 0.0, 2.0)
    p["translation_max"] = check_int("translation_max", params["translation_max"], 1, PADDED_LEN)
    p["shear_max"] = check_float("shear_max", params["shear_max"], 0.0, 5.0)
    p["scale_max"] = check_float("scale_max", params["scale_max"], 0.0, 1.5)
    p["shift_factor"] = check_float("shift_factor", params["shift_factor"], 1.0, 5.0, lo_open=True)
    return p


def _build(n_stages: int, seed: int, params: dict) -> tuple[Curriculum, Draft]:
    n_stages, seed = check_stages_and_seed(n_stages, seed)
    p = _check(resolve_params("mnist1d", DEFAULTS, params), n_stages)

    noise = lerp(0.0, p["noise_max"], n_stages)
    translation = [int(round(t)) for t in lerp(1.0, float(p["translation_max"]), n_stages)]
    shear = lerp(0.0, p["shear_max"], n_stages)
    scale = lerp(0.0, p["scale_max"], n_stages)
    f = p["shift_factor"]
    shift_setting = {
        "corr_noise": p["noise_max"] * f,
        "iid_noise": p["noise_max"] * f * IID_RATIO,
        "max_translation": min(PADDED_LEN, int(round(p["translation_max"] * f))),
        "shear_scale": p["shear_max"] * f,
        # Capped below 2 so the scale factor 1 + c (u - 0.5) stays positive.
        "scale_coeff": min(p["scale_max"] * f, 1.9),
    }
    table = {
        "corr_noise": np.asarray(noise),
        "iid_noise": np.asarray(noise) * IID_RATIO,
        "max_translation": np.asarray(translation, dtype=np.int64),
        "shear_scale": np.asarray(shear),
        "scale_coeff": np.asarray(scale),
    }

    lv_rng = child_rng(seed, "levels")
    y_rng = child_rng(seed, "labels")
    x_rng = child_rng(seed, "inputs")

    ratios = p["imbalance"]
    order = class_order(seed, N_CLASSES) if is_imbalanced(ratios) else None
    levels, xs, ys = [], [], []
    for s in range(n_stages):
        lv = stage_levels(s, n_stages, p["n_per_stage"], p["overlap"], lv_rng)
        if ratios[s] > 1.0:  # same y_rng draws as balanced: the later sets get the same raw examples
            y = long_tail_labels(p["n_per_stage"], ratios[s], order, y_rng)
        else:
            y = balanced_labels(p["n_per_stage"], N_CLASSES, y_rng)
        xs.append(_generate(y, _settings_for(lv, table), x_rng))
        ys.append(y)
        levels.append(lv)
    stages, flipped = noisy_stages(xs, ys, levels, p["label_noise"], N_CLASSES, seed, p["noise_kind"])

    val_lv = mixed_levels(p["n_val"], n_stages, lv_rng)
    val_y = balanced_labels(p["n_val"], N_CLASSES, y_rng)
    val = (_generate(val_y, _settings_for(val_lv, table), x_rng), val_y)

    tests = []
    for s in range(n_stages):
        ty = balanced_labels(p["n_test"], N_CLASSES, y_rng)
        tlv = np.full(p["n_test"], s, dtype=np.int64)
        tests.append((_generate(ty, _settings_for(tlv, table), x_rng), ty))

    sy = balanced_labels(p["n_shift"], N_CLASSES, y_rng)
    s_settings = {k: np.full(p["n_shift"], v) for k, v in shift_setting.items()}
    s_settings["max_translation"] = s_settings["max_translation"].astype(np.int64)
    shift = (_generate(sy, s_settings, x_rng), sy)

    draft = Draft(
        stages=stages, levels=levels, clean=ys, flipped=flipped, val=val, stage_tests=tests, shift=shift
    )
    names = [
        f"noise={noise[s]:.3g},trans={translation[s]},shear={shear[s]:.3g},scale={scale[s]:.3g}"
        + (f",flip={p['label_noise'][s]:.3g}" if p["label_noise"][s] > 0 else "")
        + (f",imb={ratios[s]:.3g}" if ratios[s] > 1.0 else "")
        for s in range(n_stages)
    ]
    meta = {
        "levels": {
            "corr_noise_scale": noise,
            "iid_noise_scale": [v * IID_RATIO for v in noise],
            "max_translation": translation,
            "shear_scale": shear,
            "scale_coeff": scale,
            "label_noise": p["label_noise"],
        },
        "overlap": p["overlap"],
        "shift_setting": {k: float(v) for k, v in shift_setting.items()},
        "sizes": {k: p[k] for k in ("n_per_stage", "n_val", "n_test", "n_shift")},
    }
    if order is not None:
        meta["levels"]["imbalance"] = ratios
        meta["class_order"] = [int(c) for c in order]
    cur = assemble(draft, name="mnist1d", layout=LAYOUT, n_classes=N_CLASSES, stage_names=names, meta=meta)
    return cur, draft


def build(n_stages: int, seed: int, **params: object) -> Curriculum:
    """Build the MNIST-1D curriculum.

    Args:
        n_stages: number of stages, in [2, 8].
        seed: non-negative integer; the same (n_stages, seed, params) gives identical tensors.
        **params: difficulty and size parameters, see ``DEFAULTS`` and the module docstring.

    Returns:
        A `Curriculum` with layout ``"signal"``, inputs of shape (40,), 10 classes.

    Raises:
        ConfigError: unknown parameter, wrong type or value out of range.
    """
    return _build(n_stages, seed, params)[0]
