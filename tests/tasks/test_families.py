"""The built-in task families: shapes, determinism, overlap, label noise, shift, validation."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metacurr.errors import ConfigError
from metacurr.tasks import build_curriculum, compatible_archs, family_module
from metacurr.tasks import digits as digits_mod
from metacurr.tasks import mnist1d as mnist1d_mod
from metacurr.tasks import sequence as sequence_mod
from metacurr.tasks._common import lerp, stage_label_noise, stage_levels

# family -> (input shape, layout, n_classes)
SPECS = {
    "mnist1d": ((40,), "signal", 10),
    "digits": ((8, 8), "image", 10),
    "sequence": ((32, 5), "sequence", 4),
}
MODULES = {"mnist1d": mnist1d_mod, "digits": digits_mod, "sequence": sequence_mod}
FAMILIES = list(SPECS)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: intra-op threads only add contention on a busy machine (10x slower tests)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def all_tensors(cur):
    out = []
    for x, y in [*cur.stages, cur.val, cur.shift, *cur.stage_tests]:
        out += [x, y]
    return out


@pytest.mark.parametrize("n_stages", [2, 3, 8])
@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_dtypes_and_sizes(family, n_stages):
    shape, layout, n_classes = SPECS[family]
    defaults = MODULES[family].DEFAULTS
    cur = MODULES[family].build(n_stages, 0)
    assert cur.n_stages == n_stages and len(cur.stage_tests) == n_stages
    assert cur.layout == layout and cur.n_classes == n_classes and cur.input_shape == shape
    assert cur.name == family
    for x, y in [*cur.stages, cur.val, cur.shift, *cur.stage_tests]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape and torch.isfinite(x).all()
        assert 0 <= int(y.min()) and int(y.max()) < n_classes
    assert [len(y) for _, y in cur.stages] == [defaults["n_per_stage"]] * n_stages
    assert [len(y) for _, y in cur.stage_tests] == [defaults["n_test"]] * n_stages
    assert len(cur.val[1]) == defaults["n_val"] and len(cur.shift[1]) == defaults["n_shift"]
    assert set(cur.val[1].tolist()) == set(range(n_classes))
    assert len(set(cur.stage_names)) == n_stages
    json.dumps(cur.describe())  # meta must be JSON-serialisable


@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_standardised(family):
    cur = MODULES[family].build(3, 0)
    x = torch.cat([x for x, _ in cur.stages])
    if family == "sequence":
        # One-hot tokens: each position holds exactly one token (padding is token 0).
        assert torch.equal(x.sum(-1), torch.ones(x.shape[:2]))
    else:
        assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1.0) < 1e-3
        assert abs(float(cur.val[0].mean())) < 0.3 and 0.7 < float(cur.val[0].std()) < 1.3


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_per_seed(family):
    mod = MODULES[family]
    a, b, c = mod.build(3, 7), mod.build(3, 7), mod.build(3, 8)
    assert all(torch.equal(u, v) for u, v in zip(all_tensors(a), all_tensors(b), strict=True))
    assert a.meta == b.meta and a.stage_names == b.stage_names
    assert not torch.equal(a.stages[0][0], c.stages[0][0])
    assert not torch.equal(a.val[0], c.val[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_global_rng_untouched(family):
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    MODULES[family].build(2, 3, n_per_stage=50, n_val=50, n_test=20, n_shift=50)
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("family", FAMILIES)
def test_build_is_fast(family):
    mod = MODULES[family]
    mod.build(2, 0, n_per_stage=20, n_val=20, n_test=10, n_shift=20)  # one-off imports / caches
    t = time.perf_counter()
    mod.build(3, 1)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_registry(family):
    mod = family_module(family)
    assert compatible_archs(family) == mod.ARCHS
    cur = build_curriculum(family, 3, 0)
    assert cur.meta["family"] == family and cur.meta["n_stages"] == 3
    assert set(cur.meta["params"]) == set(mod.DEFAULTS)
    assert build_curriculum(family, 3, 0) is cur  # cached per process
    with pytest.raises(ConfigError, match="nope"):
        build_curriculum(family, 3, 0, {"nope": 1})


def test_registry_unknown_param_mnist1d():
    with pytest.raises(ConfigError, match="unknown parameter 'nope'"):
        build_curriculum("mnist1d", 3, 0, {"nope": 1})


# ---------------------------------------------------------------- overlap


def test_stage_levels_helper():
    rng = np.random.default_rng(0)
    first = stage_levels(0, 4, 100, 0.2, rng)
    inner = stage_levels(2, 4, 100, 0.2, rng)
    assert sorted(set(first.tolist())) == [0, 1] and (first == 1).sum() == 20
    assert sorted(set(inner.tolist())) == [1, 2, 3] and (inner == 1).sum() == 10 and (inner == 3).sum() == 10
    assert set(stage_levels(3, 4, 100, 0.0, rng).tolist()) == {3}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n_stages", [2, 8])
def test_overlap_levels(family, n_stages):
    _, draft = MODULES[family]._build(n_stages, 0, {"overlap": 0.2})
    for s, lv in enumerate(draft.levels):
        assert set(lv.tolist()) <= {s - 1, s, s + 1}
        assert abs(np.mean(lv != s) - 0.2) < 0.01
    _, draft = MODULES[family]._build(n_stages, 0, {"overlap": 0.0})
    assert all(set(lv.tolist()) == {s} for s, lv in enumerate(draft.levels))


def _seq_lengths(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 0] == 0).sum(1)  # non-padding positions


def test_overlap_sequence_lengths():
    cur, draft = sequence_mod._build(3, 0, {})
    lo, hi = cur.meta["levels"]["length_min"], cur.meta["levels"]["length_max"]
    for s, ((x, _), lv) in enumerate(zip(cur.stages, draft.levels, strict=True)):
        lengths = _seq_lengths(x).numpy()
        own = lengths[lv == s]
        assert own.min() >= lo[s] and own.max() <= hi[s]
        for nb in (s - 1, s + 1):
            if 0 <= nb < 3:
                got = lengths[lv == nb]
                assert len(got) > 0 and got.min() >= lo[nb] and got.max() <= hi[nb]
    # Neighbour examples really are longer (shorter) in the first (last) stage.
    assert _seq_lengths(cur.stages[0][0]).max() > hi[0]
    assert _seq_lengths(cur.stages[2][0]).min() < lo[2]


def test_overlap_digits_noise():
    # Stage 0 has no input noise: its own-level inputs are raw pixels on the 1/16 grid, the
    # neighbour-level ones carry stage 1's noise.
    _, draft = digits_mod._build(3, 0, {})
    x, _ = draft.stages[0]
    on_grid = np.all(np.isclose(x * 16, np.round(x * 16)), axis=(1, 2))
    assert np.array_equal(on_grid, draft.levels[0] == 0)


def _roughness(x: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(x, n=2, axis=-1)).mean(-1)


def test_overlap_mnist1d_noise():
    _, draft = mnist1d_mod._build(2, 0, {})
    r = _roughness(draft.stages[0][0])
    lv = draft.levels[0]
    assert r[lv == 1].mean() > 2 * r[lv == 0].mean()


# ---------------------------------------------------------------- label noise


def test_stage_label_noise_helper():
    assert stage_label_noise(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert stage_label_noise([0.1, 0.0], 2) == [0.1, 0.0]
    assert lerp(1.0, 3.0, 3) == [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match="label_noise has 2 rates but there are 3 stages"):
        stage_label_noise([0.1, 0.2], 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_label_noise_only_in_training_stages(family):
    mod = MODULES[family]
    params = {"n_per_stage": 2000, "overlap": 0.0}
    clean = mod.build(3, 0, **params, label_noise=0.0)
    noisy = mod.build(3, 0, **params, label_noise=[0.0, 0.1, 0.4])
    # Same inputs (independent random streams); evaluation labels untouched.
    for (xa, _), (xb, _) in zip(clean.stages, noisy.stages, strict=True):
        assert torch.equal(xa, xb)
    for a, b in [
        (clean.val, noisy.val),
        (clean.shift, noisy.shift),
        *zip(clean.stage_tests, noisy.stage_tests, strict=True),
    ]:
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    rates = [float((a[1] != b[1]).float().mean()) for a, b in zip(clean.stages, noisy.stages, strict=True)]
    assert rates[0] == 0.0
    assert rates[1] == pytest.approx(0.1, abs=0.03) and rates[2] == pytest.approx(0.4, abs=0.04)
    assert noisy.meta["levels"]["label_noise"] == [0.0, 0.1, 0.4]


@pytest.mark.parametrize("family", FAMILIES)
def test_systematic_label_noise_flips_to_the_next_class(family):
    mod = MODULES[family]
    params = {"n_per_stage": 1500, "overlap": 0.0, "label_noise": [0.0, 0.6, 0.0]}
    uni = mod.build(3, 0, **params)
    sys_ = mod.build(3, 0, **params, noise_kind="systematic")
    cur, draft = mod._build(3, 0, {**params, "noise_kind": "systematic"})
    n_classes = int(max(int(y.max()) for _, y in cur.stages)) + 1
    for (xa, ya), (xb, yb), clean, f in zip(uni.stages, sys_.stages, draft.clean, draft.flipped, strict=True):
        assert torch.equal(xa, xb)  # the kind changes which wrong class, nothing else
        assert np.array_equal((ya != yb).numpy(), f & ((ya.numpy() - clean) % n_classes != 1))
        assert np.array_equal(yb.numpy()[f], (clean[f] + 1) % n_classes)
    assert float(draft.flipped[1].mean()) == pytest.approx(0.6, abs=0.04)
    # 60% systematic flips make the wrong class the majority label of the stage; uniform flips do not.
    y1, c1 = sys_.stages[1][1].numpy(), draft.clean[1]
    assert np.mean(y1 == (c1 + 1) % n_classes) > 0.5
    assert np.mean(uni.stages[1][1].numpy() == c1) > np.mean(uni.stages[1][1].numpy() == (c1 + 1) % n_classes)
    with pytest.raises(ConfigError, match="unknown noise_kind 'sometimes'; valid choices: uniform, systematic"):
        mod.build(3, 0, noise_kind="sometimes")


def test_digits_default_label_noise_and_clean_eval_labels():
    cur, draft = digits_mod._build(3, 0, {"n_per_stage": 2000, "overlap": 0.0, "noise_max": 0.0})
    flip = [float(f.mean()) for f in draft.flipped]
    assert (
        flip[0] == 0.0 and flip[1] == pytest.approx(0.1, abs=0.03) and flip[2] == pytest.approx(0.2, abs=0.03)
    )
    for (_, y), clean, f in zip(cur.stages, draft.clean, draft.flipped, strict=True):
        assert np.array_equal(y.numpy() != clean, f)
    # Without input noise the evaluation images are raw digits: look up their true labels, and
    # check that no evaluation image is a training image.
    from sklearn.datasets import load_digits

    d = load_digits()
    label_of = {img.astype(np.int64).tobytes(): int(t) for img, t in zip(d.images, d.target, strict=True)}
    std = cur.meta["standardisation"]

    def keys(x: torch.Tensor) -> list[bytes]:
        raw = np.round((x.double().numpy() * std["std"] + std["mean"]) * 16).astype(np.int64)
        return [r.tobytes() for r in raw]

    train_keys = {k for x, _ in cur.stages for k in keys(x)}
    for x, y in [cur.val, *cur.stage_tests]:
        ks = keys(x)
        assert [label_of[k] for k in ks] == y.tolist()
        assert not train_keys & set(ks)


def test_sequence_eval_labels_are_first_symbol():
    cur = sequence_mod.build(3, 0, label_noise=0.3)
    for x, y in [cur.val, cur.shift, *cur.stage_tests]:
        tokens = x.argmax(-1)
        first = tokens.gather(1, (tokens == 0).sum(1, keepdim=True)).squeeze(1)
        assert torch.equal(first - 1, y)


# ---------------------------------------------------------------- shift


def test_shift_mnist1d_outside_training_range():
    cur = mnist1d_mod.build(3, 0)
    setting, levels = cur.meta["shift_setting"], cur.meta["levels"]
    assert setting["corr_noise"] > max(levels["corr_noise_scale"])
    assert setting["shear_scale"] > max(levels["shear_scale"])
    assert setting["max_translation"] > max(levels["max_translation"])
    # Stronger shear and noise -> larger spread than the target mix.
    assert float(cur.shift[0].std()) > 1.2 * float(cur.val[0].std())


def test_shift_digits_occluded():
    cur = digits_mod.build(3, 0)
    # The full-intensity occluder raises the mean pixel value above the target mix's.
    assert float(cur.shift[0].mean()) > float(cur.val[0].mean()) + 0.1
    trans = digits_mod.build(3, 0, occlusion=0, shift_translation=1)
    assert not torch.allclose(trans.shift[0].mean(0), trans.val[0].mean(0), atol=0.1)


def test_shift_sequence_longer():
    cur = sequence_mod.build(3, 0)
    train_max = max(int(_seq_lengths(x).max()) for x, _ in cur.stages)
    assert int(_seq_lengths(cur.val[0]).max()) <= train_max
    assert int(_seq_lengths(cur.shift[0]).min()) > train_max


# ---------------------------------------------------------------- mnist1d fidelity


def test_mnist1d_render_matches_package_transform():
    from mnist1d.data import get_dataset_args, get_templates
    from mnist1d.transform import transform

    args, tm, n = get_dataset_args(), get_templates(), 60
    labels = np.arange(n) % 10
    state = np.random.get_state()
    try:
        np.random.seed(11)
        ref = np.stack([transform(tm["x"][c], tm["t"], args)[0] for c in labels])
        # Replay the same global draws in the order `transform` makes them.
        np.random.seed(11)
        draws = {k: [] for k in ("pad", "u_scale", "shift", "z_corr", "z_iid", "u_shear")}
        lo, hi = args.padding
        for _ in range(n):
            draws["pad"].append(lo + int(np.random.rand() * (hi - lo + 1)))
            draws["u_scale"].append(np.random.rand())
            draws["shift"].append(np.random.choice(args.max_translation))
            draws["z_corr"].append(np.random.randn(hi + args.template_len))
            draws["z_iid"].append(np.random.randn(hi + args.template_len))
            draws["u_shear"].append(np.random.rand())
    finally:
        np.random.set_state(state)
    full = lambda v: np.full(n, float(v))  # noqa: E731
    ours = mnist1d_mod.render(
        labels,
        **{k: np.asarray(v) for k, v in draws.items()},
        scale_coeff=full(args.scale_coeff),
        corr_noise=full(args.corr_noise_scale),
        iid_noise=full(args.iid_noise_scale),
        shear_scale=full(args.shear_scale),
    )
    np.testing.assert_allclose(ours, ref, atol=1e-9)


# ---------------------------------------------------------------- validation

BAD_COMMON = [
    ({"overlap": 0.9}, "overlap"),
    ({"overlap": "a"}, "overlap"),
    ({"n_per_stage": 5}, "n_per_stage"),
    ({"n_per_stage": 100.5}, "n_per_stage"),
    ({"n_val": True}, "n_val"),
    ({"label_noise": [0.1]}, "label_noise"),
    ({"label_noise": 1.2}, "label_noise"),
    ({"label_noise": "high"}, "label_noise"),
    ({"label_noise": [0.1, float("nan"), 0.2]}, "label_noise"),
    ({"nope": 1}, "nope"),
]
BAD_SPECIFIC = {
    "mnist1d": [
        ({"noise_max": -0.1}, "noise_max"),
        ({"translation_max": 0}, "translation_max"),
        ({"translation_max": 100}, "translation_max"),
        ({"shear_max": "x"}, "shear_max"),
        ({"scale_max": 3.0}, "scale_max"),
        ({"shift_factor": 1.0}, "shift_factor"),
    ],
    "digits": [
        ({"noise_max": -1}, "noise_max"),
        ({"holdout_fraction": 0.9}, "holdout_fraction"),
        ({"occlusion": 7}, "occlusion"),
        ({"shift_translation": 3}, "shift_translation"),
        ({"occlusion": 0, "shift_translation": 0}, "shift_translation"),
    ],
    "sequence": [
        ({"n_symbols": 1}, "n_symbols"),
        ({"easy_len": [6, 3]}, "easy_len"),
        ({"easy_len": 3}, "easy_len"),
        ({"hard_len": [10, 40]}, "hard_len"),
        ({"easy_len": [15, 16]}, "easy_len"),
        ({"shift_len": [18, 30]}, "shift_len"),
        ({"max_len": 1000}, "max_len"),
    ],
}


@pytest.mark.parametrize(
    "family,params,name",
    [(f, p, n) for f in FAMILIES for p, n in BAD_COMMON + BAD_SPECIFIC[f]],
)
def test_bad_params_raise(family, params, name):
    with pytest.raises(ConfigError, match=name) as info:
        MODULES[family].build(3, 0, **params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n_stages,seed", [(1, 0), (9, 0), (3, -1), (3, 1.5), ("3", 0)])
def test_bad_stages_or_seed_raise(family, n_stages, seed):
    with pytest.raises(ConfigError, match="n_stages|seed"):
        MODULES[family].build(n_stages, seed)


@settings(max_examples=60, deadline=None)
@given(
    n_stages=st.integers(2, 8),
    n=st.integers(20, 400),
    overlap=st.floats(0.0, 0.5),
    data=st.data(),
)
def test_stage_levels_property(n_stages, n, overlap, data):
    stage = data.draw(st.integers(0, n_stages - 1))
    lv = stage_levels(stage, n_stages, n, overlap, np.random.default_rng(0))
    assert len(lv) == n
    assert set(lv.tolist()) <= {stage - 1, stage, stage + 1} & set(range(n_stages))
    assert int((lv != stage).sum()) == int(round(overlap * n))
