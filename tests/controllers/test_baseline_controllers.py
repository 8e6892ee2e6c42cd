"""The baseline controllers: simplex weights for any finite state, determinism, and each rule's behaviour."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacurr.controllers import REGISTRY, make_controller
from metacurr.controllers.mapping import WeightMapping
from metacurr.errors import ConfigError
from metacurr.evaluation import best_static_search
from metacurr.evaluation.best_static_search import candidate_grid, default_resolution, simplex_grid
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState

BASELINES = ["best-static", "dwa", "uncertainty", "gradnorm", "self-paced", "bandit", "random", "random-policy"]
VARIANTS = [(n, {}) for n in BASELINES] + [
    ("bandit", {"algorithm": "exp3"}), ("random", {"distribution": "dirichlet"}), ("best-static", {"weights": [1, 0, 2]}),
]


def state(n=3, step=1, progress=0.5, **stage):
    base = {k: np.full(n, 0.5) for k in STAGE_FEATURES}
    base["weight"] = np.full(n, 1.0 / n)
    base.update({k: np.asarray(v, dtype=float) for k, v in stage.items()})
    glob = {k: 0.0 for k in GLOBAL_FEATURES}
    glob["progress"] = progress
    return LearningState(step=step, n_stages=n, stage=base, glob=glob)


def test_all_baselines_registered():
    for name in BASELINES:
        assert name in REGISTRY
        assert make_controller(name).name == name


any_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def finite_states(draw, n):
    vec = st.lists(any_finite, min_size=n, max_size=n).map(np.array)
    return LearningState(step=draw(st.integers(0, 100)), n_stages=n,
                         stage={k: draw(vec) for k in STAGE_FEATURES}, glob={k: draw(any_finite) for k in GLOBAL_FEATURES})


@pytest.mark.parametrize("name,kw", VARIANTS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_simplex_weights_for_arbitrary_finite_states(name, kw, data):
    n = data.draw(st.integers(1, 8))
    if "weights" in kw:
        kw = {"weights": [1.0] * n}
    c = make_controller(name, **kw)
    w = c.reset(n, np.random.default_rng(0))
    assert w.shape == (n,) and np.isclose(w.sum(), 1.0)
    for _ in range(3):
        s = data.draw(finite_states(n))
        w = c.update(s)
        c.after_step(s)
        assert w.shape == (n,)
        assert np.isfinite(w).all() and (w >= 0).all() and np.isclose(w.sum(), 1.0), w


@pytest.mark.parametrize("name,kw", VARIANTS)
def test_deterministic_given_rng(name, kw):
    def trajectory(seed):
        c = make_controller(name, **kw)
        c.reset(3, np.random.default_rng(seed))
        out = []
        for t in range(5):
            s = state(step=t, train_loss=[2.0 - 0.1 * t, 2.0 - 0.3 * t, 2.0], loss=[1.5 - 0.2 * t, 1.5, 1.5 - 0.05 * t],
                      grad_norm=[1.0, 2.0, 0.5 + t])
            out.append(c.update(s))
            c.after_step(s)
        return np.array(out)

    assert np.array_equal(trajectory(3), trajectory(3))


def test_dwa_known_values():
    c = make_controller("dwa", temperature=2.0)
    c.reset(3, np.random.default_rng(0))
    assert np.allclose(c.update(state(train_loss=[1.0, 1.0, 1.0])), 1 / 3)  # first step: no ratio yet
    w = c.update(state(train_loss=[0.5, 1.0, 2.0]))
    e = np.exp(np.array([0.5, 1.0, 2.0]) / 2.0)
    assert np.allclose(w, e / e.sum())  # slower-falling loss -> more weight


def test_uncertainty_converges_to_inverse_loss():
    c = make_controller("uncertainty", lr=0.5)
    c.reset(3, np.random.default_rng(0))
    loss = np.array([0.5, 1.0, 2.0])
    for _ in range(200):
        w = c.update(state(train_loss=loss))
    assert np.allclose(c.log_var, np.log(loss), atol=1e-3)  # sigma^2 = L at the optimum
    assert np.allclose(w, (1 / loss) / (1 / loss).sum(), atol=1e-3)


def test_gradnorm_pushes_slow_stage_up():
    c = make_controller("gradnorm", alpha=1.5, lr=0.1)
    c.reset(3, np.random.default_rng(0))
    c.update(state(train_loss=[2.0, 2.0, 2.0], grad_norm=[1.0, 1.0, 1.0]))
    for _ in range(5):
        w = c.update(state(train_loss=[0.5, 1.0, 2.0], grad_norm=[1.0, 1.0, 1.0]))  # stage 2 does not learn
    assert w[2] > w[1] > w[0]


def test_self_paced_includes_stages_as_threshold_grows():
    c = make_controller("self-paced", growth=1.5, start_fraction=0.3)
    c.reset(3, np.random.default_rng(0))
    s = state(loss=[1.0, 1.4, 2.0])
    w = c.update(s)
    assert np.allclose(w, [1, 0, 0])
    w = c.update(s)  # lambda = 1.5
    assert np.allclose(w, [0.5, 0.5, 0])
    w = c.update(s)  # lambda = 2.25
    assert np.allclose(w, 1 / 3)


def test_bandit_window_favours_largest_progress():
    c = make_controller("bandit", window=3, explore=0.0)
    c.reset(3, np.random.default_rng(0))
    for t in range(4):
        s = state(step=t, loss=[1.0, 1.0 - 0.2 * t, 1.0 - 0.05 * t])
        w = c.update(s)
        c.after_step(s)
    assert w[1] > w[2] > w[0]


def test_bandit_exp3_trains_one_stage_and_credits_progress():
    c = make_controller("bandit", algorithm="exp3", explore=0.2)
    c.reset(2, np.random.default_rng(0))
    counts = np.zeros(2)
    loss = np.array([1.0, 1.0])
    for t in range(60):
        w = c.update(state(2, step=t, loss=loss.copy()))
        assert sorted(w.tolist()) == [0.0, 1.0]
        arm = int(np.argmax(w))
        counts[arm] += 1
        loss = loss.copy()
        if arm == 1:
            loss[1] -= 0.01  # only stage 1 makes progress
        c.after_step(state(2, step=t + 1, loss=loss.copy()))
    assert counts[1] > counts[0]


def test_random_policy_is_the_env_mapping_of_uniform_actions():
    c = make_controller("random-policy")
    c.reset(4, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    w = np.full(4, 0.25)
    for _ in range(3):
        w = WeightMapping().apply(w, rng.uniform(-1, 1, 4))
        assert np.allclose(c.update(state(4)), w)


def test_random_weights_are_fresh_each_step():
    c = make_controller("random")
    c.reset(3, np.random.default_rng(0))
    a, b = c.update(state()), c.update(state())
    assert not np.allclose(a, b)


def test_simplex_grid_and_resolution():
    g = simplex_grid(3, 3)
    assert len(g) == 10 and all(np.isclose(sum(w), 1) for w in g) and any(np.allclose(w, 1 / 3) for w in g)
    assert len({tuple(np.round(w, 9)) for w in g}) == 10
    assert default_resolution(3) == 3 and default_resolution(2) == 4 and default_resolution(8) == 1
    c8 = candidate_grid(8)
    assert len(c8) == 9 and any(np.allclose(w, 1 / 8) for w in c8)  # corners + uniform


def test_best_static_applies_weights_and_checks_stage_count():
    c = make_controller("best-static", weights=[2, 1, 1])
    assert np.allclose(c.reset(3, np.random.default_rng(0)), [0.5, 0.25, 0.25])
    assert np.allclose(c.update(state()), [0.5, 0.25, 0.25])
    with pytest.raises(ConfigError, match="3 weights for 2 stages"):
        c.reset(2, np.random.default_rng(0))
    with pytest.raises(ConfigError):
        make_controller("best-static", weights=[-1, 1])


def test_best_static_search_uses_training_seeds_only():
    from metacurr.run import resolve_config

    cfg = resolve_config("digits", arch="mlp", n_stages=2, seed=10_000, control_steps=1, inner_steps=1,
                         params={"n_per_stage": 100, "n_val": 100, "n_test": 50, "n_shift": 100})
    plan = best_static_search.search_plan(cfg, grid=1)
    assert all(p["config"]["task"]["seed"] < 10_000 for p in plan["payloads"])
    with pytest.raises(ConfigError, match="reserved for evaluation"):
        best_static_search.search(cfg, grid=1, seeds=[10_000])
    res = best_static_search.search(cfg, grid=1)
    assert res["weights"] in [c["weights"] for c in res["candidates"]] and len(res["candidates"]) == 3


@pytest.mark.parametrize("name,kw", [("dwa", {"temperature": 0}), ("uncertainty", {"lr": -1}), ("gradnorm", {"lr": 0}),
                                     ("self-paced", {"growth": 1.0}), ("bandit", {"algorithm": "ucb"}),
                                     ("bandit", {"window": 1}), ("random", {"distribution": "beta"}),
                                     ("random-policy", {"smoothing": 0})])
def test_bad_parameters_raise_config_error(name, kw):
    with pytest.raises(ConfigError):
        make_controller(name, **kw)
