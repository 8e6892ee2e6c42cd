"""The weight mapping's formula, checked against values derived by hand from its definition:

    target  = normalize(w * exp(eta a))  (relative)  |  softmax(eta a)  (absolute)
    floored = f + (1 - S f) target,  f = min(floor, 0.5 / S)
    delta   = beta (floored - w)
    w'      = w + delta min(1, max_step / max|delta|)

in the single form (`WeightMapping.apply`, used by RebalanceEnv and the controllers) and the batched one
(`BatchedRebalanceVecEnv`). Equivalence tests between the two cannot see a change made to both; these can.
"""

from __future__ import annotations

import numpy as np
import pytest

from metacurr.controllers import WeightMapping
from metacurr.envs.batched import BatchedRebalanceVecEnv
from metacurr.envs.rebalance import RebalanceEnv

U3 = np.full(3, 1.0 / 3.0)
A = np.array([1.0, -0.5, 0.0])


def by_hand(prev, a, eta=1.0, beta=0.5, max_step=0.15, floor=0.02, mode="relative"):
    prev = np.asarray(prev, dtype=np.float64)
    prev = prev / prev.sum()
    n = len(prev)
    e = np.exp(eta * np.asarray(a, dtype=np.float64))
    target = (prev * e if mode == "relative" else e)
    target = target / target.sum()
    f = min(floor, 0.5 / n)
    floored = f + (1 - n * f) * target
    delta = beta * (floored - prev)
    scale = min(1.0, max_step / np.abs(delta).max()) if np.abs(delta).max() > 0 else 1.0
    return prev + delta * scale


def test_smoothing_moves_a_fraction_beta_of_the_way_to_the_target():
    # No floor, no step bound: w' = w + beta (softmax-like target - w). Literal values: exp([1, -.5, 0]) / sum.
    target = np.array([0.628532, 0.140245, 0.231223])
    for beta in (0.5, 0.25, 1.0):
        w = WeightMapping(smoothing=beta, max_step=1.0, floor=0.0).apply(U3, A)
        np.testing.assert_allclose(w, U3 + beta * (target - U3), atol=2e-6)
        np.testing.assert_allclose(w, by_hand(U3, A, beta=beta, max_step=1.0, floor=0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["relative", "absolute"])
@pytest.mark.parametrize(("beta", "max_step", "floor", "eta"), [
    (0.5, 1.0, 0.0, 1.0),      # smoothing only
    (0.5, 0.05, 0.02, 1.0),    # the step bound binds
    (0.3, 1.0, 0.1, 2.0),      # the floor moves the target
    (1.0, 1.0, 0.4, 1.0),      # a floor above half of uniform is capped at 1/6
])
def test_single_form_matches_the_formula(mode, beta, max_step, floor, eta):
    m = WeightMapping(eta=eta, smoothing=beta, max_step=max_step, floor=floor, mode=mode)
    prev = np.array([0.5, 0.3, 0.2])
    for a in (A, np.array([-1.0, 1.0, 0.3]), np.zeros(3)):
        np.testing.assert_allclose(m.apply(prev, a), by_hand(prev, a, eta, beta, max_step, floor, mode), rtol=0, atol=1e-12)


def test_step_bound_scales_the_whole_move():
    m = WeightMapping(smoothing=0.5, max_step=0.05, floor=0.02)
    w = m.apply(U3, np.array([1.0, -1.0, 0.0]))
    free = WeightMapping(smoothing=0.5, max_step=1.0, floor=0.02).apply(U3, np.array([1.0, -1.0, 0.0]))
    assert np.abs(w - U3).max() == pytest.approx(0.05, abs=1e-12)
    np.testing.assert_allclose((w - U3) / np.abs(w - U3).max(), (free - U3) / np.abs(free - U3).max(), atol=1e-12)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_floor_is_kept_and_reached():
    m = WeightMapping(eta=5.0, smoothing=1.0, max_step=1.0, floor=0.02)
    w = U3.copy()
    for _ in range(40):
        w = m.apply(w, np.array([1.0, -1.0, -1.0]))
        assert w.min() >= 0.02 - 1e-12
    np.testing.assert_allclose(w, [0.96, 0.02, 0.02], atol=1e-5)  # at the floor; the rest on stage 0


def test_action_sanitising():
    m = WeightMapping(smoothing=1.0, max_step=1.0, floor=0.0)
    np.testing.assert_allclose(m.apply(U3, [np.nan, np.inf, -np.inf]), m.apply(U3, [0.0, 1.0, -1.0]), atol=0)
    np.testing.assert_allclose(m.apply(U3, [5.0, -7.0, 0.0]), m.apply(U3, [1.0, -1.0, 0.0]), atol=0)
    np.testing.assert_allclose(m.apply(U3, [0.2, 0.1, 0.0, 9.0]), by_hand(U3, [0.2, 0.1, 0.0], beta=1.0, max_step=1.0, floor=0.0),
                               atol=1e-12)  # extra action entries are ignored


MAPPINGS = [
    {"smoothing": 0.5, "max_step": 1.0, "floor": 0.0},
    {"smoothing": 0.3, "max_step": 0.05, "floor": 0.1, "eta": 2.0},
    {"smoothing": 0.5, "max_step": 1.0, "floor": 0.02, "mode": "absolute"},
    {"smoothing": 1.0, "max_step": 1.0, "floor": 0.4},  # the floor is capped at half of uniform (1/6)
]
ACTIONS = [np.array([[1.0, -0.5, 0.0], [0.0, 0.0, 0.0]]), np.array([[1.0, -1.0, 1.0], [-1.0, 0.7, np.nan]]),
           np.array([[-np.inf, 3.0, 0.0], [np.inf, -5.0, 0.2]])]


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_env_weights_follow_the_formula_in_both_forms(mapping):
    """Two control steps from uniform weights, in RebalanceEnv and BatchedRebalanceVecEnv, each against
    the hand-derived weights (not against each other)."""
    task = {"task": {"family": "mnist1d", "arch": "mlp"}, "control_steps": 3, "inner_steps": 1, "mapping": mapping}
    kw = {"eta": mapping.get("eta", 1.0), "beta": mapping["smoothing"], "max_step": mapping["max_step"],
          "floor": mapping["floor"], "mode": mapping.get("mode", "relative")}
    single = RebalanceEnv(**task)
    single.reset(seed=0)
    batched = BatchedRebalanceVecEnv(n_envs=2, prefetch=False, **task)
    batched.seed(0)
    batched.reset()
    expect = np.tile(U3, (2, 1))
    try:
        for acts in ACTIONS:
            clean = np.clip(np.nan_to_num(acts, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
            expect = np.stack([by_hand(expect[i], clean[i], **kw) for i in range(2)])
            # the envs refuse NaN / inf / out-of-range actions (one line); the mapping's own clean-up of
            # such values is checked on the mapping itself above
            _, _, _, infos = batched.step(clean.astype(np.float32))
            got = np.stack([info["weights"][:3] for info in infos])
            np.testing.assert_allclose(got, expect, atol=1e-6)  # info weights are float32
            _, _, _, _, info = single.step(clean[0].astype(np.float32))
            np.testing.assert_allclose(info["weights"][:3], expect[0], atol=1e-6)
    finally:
        batched.close()


def test_defaults_and_serialisation():
    assert WeightMapping().to_dict() == {"eta": 1.0, "smoothing": 0.5, "max_step": 0.15, "floor": 0.02, "mode": "relative"}
    m = WeightMapping(eta=2.0, mode="absolute")
    assert WeightMapping(**m.to_dict()) == m


@pytest.mark.parametrize("kw", [
    {"eta": 1e-9}, {"smoothing": 1.0}, {"smoothing": 1e-9}, {"max_step": 1e-9}, {"floor": 0.0}, {"floor": 0.99},
    {"eta": 3}, {"mode": "absolute"},
])
def test_valid_parameters_at_their_edges(kw):
    assert WeightMapping(**kw).to_dict()[next(iter(kw))] == next(iter(kw.values()))


@pytest.mark.parametrize(("kw", "message"), [
    ({"eta": 0.0}, "invalid weight mapping"),
    ({"eta": -1.0}, "invalid weight mapping"),
    ({"smoothing": 0.0}, "invalid weight mapping"),
    ({"smoothing": 1.0 + 1e-9}, "invalid weight mapping"),
    ({"max_step": 0.0}, "invalid weight mapping"),
    ({"floor": 1.0}, "invalid weight mapping"),
    ({"floor": -0.01}, "invalid weight mapping"),
    ({"eta": float("nan")}, "weight mapping eta must be a finite number, got nan"),
    ({"max_step": float("inf")}, "weight mapping max_step must be a finite number"),
    ({"smoothing": True}, "weight mapping smoothing must be a finite number, got True"),
    ({"floor": "0.1"}, "weight mapping floor must be a finite number"),
    ({"mode": "both"}, "unknown weight mapping mode 'both'; valid choices: relative, absolute"),
    ({"temperature": 1.0}, "unknown weight mapping key 'temperature'; valid choices: eta, smoothing, max_step, floor, mode"),
])
def test_invalid_parameters_are_a_config_error(kw, message):
    from metacurr.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        WeightMapping(**kw)


def test_too_short_an_action_is_a_config_error():
    from metacurr.errors import ConfigError

    with pytest.raises(ConfigError, match="action has 2 entries for 3 stages"):
        WeightMapping().apply(U3, [0.0, 0.0])


def test_absolute_mode_is_safe_from_overflow_at_large_eta():
    # softmax(eta a) is computed as exp(eta (a - max a)): no overflow however large eta is
    m = WeightMapping(eta=800.0, smoothing=0.5, max_step=1.0, floor=0.02, mode="absolute")
    w = m.apply(U3, np.array([1.0, -1.0, 0.0]))
    floored = 0.02 + (1 - 3 * 0.02) * np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(w, U3 + 0.5 * (floored - U3), atol=1e-12)


def test_degenerate_previous_weights_in_both_forms():
    """Non-finite, negative or all-zero previous weights are cleaned (negative / non-finite -> 0, then
    uniform if nothing is left) the same way by the single and the batched form."""
    from metacurr.envs.batched import map_weights

    m = WeightMapping(smoothing=1.0, max_step=1.0, floor=0.0)
    prev = np.array([[np.nan, 1.0, 1.0], [0.0, 0.0, 0.0], [np.inf, 1.0, 3.0], [-1.0, 2.0, 2.0], [-np.inf, 0.0, 0.0]])
    a = np.array([0.5, 0.0, -0.5])
    expect = np.stack([by_hand(p, a, beta=1.0, max_step=1.0, floor=0.0) for p in
                       ([0, 1, 1], U3, [0, 1, 3], [0, 1, 1], U3)])
    single = np.stack([m.apply(p, a) for p in prev])
    np.testing.assert_allclose(single, expect, atol=1e-12)
    np.testing.assert_array_equal(map_weights(m, prev, np.tile(a, (len(prev), 1))), single)
