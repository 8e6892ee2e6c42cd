"""Property tests: random small curricula train without error; any in-range action is sanitised, any other refused."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metacurr
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.errors import ConfigError


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_stages=st.integers(2, 5),
    n=st.integers(4, 40),
    d=st.integers(1, 9),
    classes=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    arch=st.sampled_from(["mlp", "cnn", "gru", "transformer"]),
    controller=st.sampled_from(["uniform", "heuristic", "sequential", "linear-pacing"]),
)
def test_random_small_curricula_train(n_stages, n, d, classes, seed, arch, controller):
    g = torch.Generator().manual_seed(seed)
    stages = [(torch.randn(n, d, generator=g) * 10, torch.randint(0, classes, (n,), generator=g)) for _ in range(n_stages)]
    val = (torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g))
    cur = metacurr.Curriculum.from_tensors(stages, val=val, n_classes=classes)
    s = metacurr.train(cur, arch=arch, controller=controller, seed=seed % 1000, control_steps=2, inner_steps=2, batch_size=8)
    assert s["control_steps_done"] == 2 and isinstance(s["diverged"], bool)
    assert np.isclose(sum(s["final_weights"]), 1.0)


@settings(max_examples=25, deadline=None)
@given(action=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=3, max_size=3))
def test_env_takes_any_in_range_action_and_refuses_the_rest(action):
    """In [-1, 1]: valid weights and finite numbers. NaN, inf or out of range: one-line ConfigError, state intact."""
    env = _ENV
    if env.run is None or env.run.done:
        env.reset(seed=0)
    a = np.array(action, dtype=np.float32)
    if not (np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0 + 1e-6)):  # the env allows float rounding
        t = env.run.t
        with pytest.raises(ConfigError, match=r"outside \[-1.0, 1.0\]"):
            env.step(a)
        assert env.run.t == t  # refused before the inner run moved
        return
    obs, r, term, trunc, info = env.step(a)
    assert np.all(np.isfinite(obs)) and np.isfinite(r)
    w = info["weights"][:3]
    assert np.all(w > 0) and np.isclose(w.sum(), 1.0, atol=1e-6)


_ENV = RebalanceEnv(control_steps=50, inner_steps=1)
