import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacurr.controllers import make_controller
from metacurr.controllers.mapping import WeightMapping
from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState


def state(n=3, progress=0.5, **stage):
    base = {k: np.full(n, 0.5) for k in STAGE_FEATURES}
    base["weight"] = np.full(n, 1.0 / n)
    base["drift"] = np.zeros(n)
    base.update({k: np.asarray(v, dtype=float) for k, v in stage.items()})
    glob = {k: 0.0 for k in GLOBAL_FEATURES}
    glob["progress"] = progress
    return LearningState(step=1, n_stages=n, stage=base, glob=glob)


def test_heuristic_moves_weight_from_stable_stage_to_spiking_stage():
    h = make_controller("heuristic")
    w0 = h.reset(3, np.random.default_rng(0))
    calm = dict(entropy=[0.3, 0.5, 0.5], grad_var=[1.0, 1.0, 1.0], confidence=[0.9, 0.6, 0.6], drift=[0.0, 0.05, 0.05])
    h.update(state(**calm))
    # Stage 0 stays stable (same confidence, no drift); stage 2 shows an entropy spike and gradient instability.
    spike = dict(entropy=[0.3, 0.5, 0.9], grad_var=[1.0, 1.0, 8.0], confidence=[0.9, 0.55, 0.4], drift=[0.0, 0.05, 0.3])
    w = h.update(state(**spike))
    assert w[2] > w0[2] and w[0] < w0[0] and w[2] > w[1] >= w[0]
    assert np.isclose(w.sum(), 1.0) and (w > 0).all()


def test_heuristic_does_not_chase_flat_high_entropy_label_noise():
    # A noisy-label stage: entropy high but flat, confidence stable -> no spike, it must not gain weight.
    h = make_controller("heuristic")
    h.reset(2, np.random.default_rng(0))
    for _ in range(6):
        w = h.update(state(2, entropy=[0.2, 0.95], grad_var=[1.0, 3.0], confidence=[0.8, 0.2], drift=[0.3, 0.0]))
    assert w[1] <= 0.5


def test_heuristic_smoothing_bounds_each_step():
    """Smoothing moves the weights a fraction ``smoothing`` of the way to the rule's target, and the step
    bound then scales the whole move down to ``max_step``."""
    calm = state()
    spike = state(entropy=[0.1, 0.1, 5.0], grad_var=[1, 1, 100.0], drift=[0, 0, 1.0])

    def first_move(**kw):
        h = make_controller("heuristic", **kw)
        w0 = h.reset(3, np.random.default_rng(0))
        assert np.array_equal(h.update(calm), w0)  # no baseline yet: nothing moves
        return h.update(spike) - w0, h

    full, _ = first_move(smoothing=1.0, max_step=1.0)
    half, _ = first_move(smoothing=0.5, max_step=1.0)
    assert np.abs(full).max() > 0.1
    np.testing.assert_allclose(half, 0.5 * full, atol=1e-12)
    bounded, h = first_move(smoothing=0.5, max_step=0.05)
    assert np.abs(bounded).max() == pytest.approx(0.05, abs=1e-12)
    np.testing.assert_allclose(bounded, half * 0.05 / np.abs(half).max(), atol=1e-12)
    w_prev = h.weights.copy()
    for _ in range(3):
        w = h.update(spike)
        assert np.abs(w - w_prev).max() <= 0.05 + 1e-9
        w_prev = w


def test_sequential_and_linear_pacing_schedules():
    seq = make_controller("sequential")
    seq.reset(3, np.random.default_rng(0))
    assert np.argmax(seq.update(state(progress=0.0))) == 0 and np.argmax(seq.update(state(progress=0.7))) == 2
    lp = make_controller("linear-pacing", pace=0.5)
    lp.reset(4, np.random.default_rng(0))
    assert np.count_nonzero(lp.update(state(4, progress=0.0))) == 1
    assert np.count_nonzero(lp.update(state(4, progress=0.3))) == 3
    assert np.allclose(lp.update(state(4, progress=0.9)), 0.25)


def test_unknown_controller_and_kwargs():
    with pytest.raises(ConfigError, match="valid choices"):
        make_controller("nope")
    with pytest.raises(ConfigError, match="unknown parameter 'bogus'"):
        make_controller("heuristic", bogus=1)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 8), data=st.data())
def test_core_controllers_return_simplex_weights_for_any_finite_state(n, data):
    for name in ("uniform", "sequential", "linear-pacing", "heuristic"):
        c = make_controller(name)
        c.reset(n, np.random.default_rng(0))
        for _ in range(2):
            vals = {k: np.array(data.draw(st.lists(finite, min_size=n, max_size=n))) for k in STAGE_FEATURES}
            vals["entropy"] = np.abs(vals["entropy"])
            vals["grad_var"] = np.abs(vals["grad_var"])
            vals["drift"] = np.abs(vals["drift"])
            s = state(n, progress=data.draw(st.floats(0, 1)), **vals)
            w = c.update(s)
            assert w.shape == (n,) and np.all(np.isfinite(w)) and np.all(w >= 0) and np.isclose(w.sum(), 1.0)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 8), data=st.data())
def test_mapping_sanitises_any_float_action(n, data):
    m = WeightMapping(mode=data.draw(st.sampled_from(["relative", "absolute"])))
    prev = np.full(n, 1.0 / n)
    a = np.array(data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)))
    w = m.apply(prev, a)
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and np.isclose(w.sum(), 1.0)
    assert np.abs(w - prev).max() <= m.max_step + 1e-9 or n == 1


def test_mapping_rejects_short_action_and_bad_params():
    with pytest.raises(ConfigError, match="action has 2 entries for 3 stages"):
        WeightMapping().apply(np.full(3, 1 / 3), np.zeros(2))
    with pytest.raises(ConfigError, match="invalid weight mapping"):
        WeightMapping(smoothing=0.0)


def test_mapping_modes_relative_accumulates_absolute_names_the_mix():
    rel, ab = WeightMapping(), WeightMapping(mode="absolute")
    push = np.array([1.0, 0.0, 0.0])
    w_rel = w_abs = np.full(3, 1 / 3)
    for _ in range(60):  # a constant action keeps pushing in relative mode, holds a fixed mix in absolute mode
        w_rel, w_abs = rel.apply(w_rel, push), ab.apply(w_abs, push)
    assert w_rel[0] > 0.9 and np.all(w_rel[1:] < 0.035)  # driven toward the floor
    floor = rel.floor
    target = np.exp(push) / np.exp(push).sum()
    np.testing.assert_allclose(w_abs, floor + (1 - 3 * floor) * target, atol=1e-6)
    # A zero action leads back to uniform in absolute mode, and leaves the weights alone in relative mode.
    for _ in range(60):
        w_abs = ab.apply(w_abs, np.zeros(3))
    np.testing.assert_allclose(w_abs, np.full(3, 1 / 3), atol=1e-6)
    mid = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(WeightMapping(floor=0.0).apply(mid, np.zeros(3)), mid, atol=1e-12)
    with pytest.raises(ConfigError, match="unknown weight mapping mode 'both'; valid choices: relative, absolute"):
        WeightMapping(mode="both")
