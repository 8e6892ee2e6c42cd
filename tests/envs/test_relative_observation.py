"""Observation layout 3 (the run relative to itself), its vec-env wrapper, and the grouped vec env."""

import numpy as np
import pytest

from metacurr.envs.observation import ObservationSpec
from metacurr.envs.relative_observation import GLOBAL_FEATURES_V3, STAGE_FEATURES_V3
from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState


def _state(rng, n: int, step: int, scale: float = 1.0) -> LearningState:
    """A plausible state; ``scale`` multiplies every scale-carrying indicator (losses, gradients)."""
    stage = {k: rng.uniform(0.1, 0.9, n) for k in STAGE_FEATURES}
    for k in ("train_loss", "loss", "grad_norm"):
        stage[k] = stage[k] * scale
    stage["grad_var"] = stage["grad_var"] * scale**2
    stage["weight"] = np.full(n, 1.0 / n)
    glob = {k: float(rng.uniform(0.1, 0.9)) for k in GLOBAL_FEATURES}
    glob["val_loss"] *= scale
    glob["total_grad_norm"] *= scale
    return LearningState(step=step, n_stages=n, stage=stage, glob=glob)


def test_layout_3_names_sizes_and_errors():
    spec = ObservationSpec(max_stages=4, version=3)
    assert spec.size == len(GLOBAL_FEATURES_V3) + 4 * (len(STAGE_FEATURES_V3) + 1) == len(spec.feature_names())
    assert ObservationSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="valid choices: 2, 3"):
        ObservationSpec(version=4)
    with pytest.raises(ConfigError, match=r"to hide; valid choices: progress, val_loss_vs_start.*\(layout v3\)"):
        ObservationSpec(version=3, hidden=("entropy",))  # a layout-2 name
    with pytest.raises(ConfigError, match="tracker"):
        spec.build(_state(np.random.default_rng(0), 3, 0))


def test_layout_3_does_not_see_the_scale_of_losses_and_gradients():
    rows = {}
    for scale in (1.0, 37.0):
        rng = np.random.default_rng(0)
        tracker = ObservationSpec(max_stages=5, version=3).tracker()
        rows[scale] = [tracker.build(_state(rng, 4, t, scale)) for t in range(5)]
    for a, b in zip(rows[1.0], rows[37.0]):
        assert np.allclose(a, b, atol=2e-4)
    v2 = [ObservationSpec(max_stages=5).build(_state(np.random.default_rng(0), 4, 0, s)) for s in (1.0, 37.0)]
    assert not np.allclose(v2[0], v2[1], atol=1e-2)  # layout 2 does see it


def test_layout_3_first_row_has_no_history_and_trends_look_back_window_steps():
    spec = ObservationSpec(max_stages=3, version=3, window=2)
    tracker = spec.tracker()
    rng = np.random.default_rng(1)
    states = [_state(rng, 3, t) for t in range(4)]
    rows = [spec.unpad(tracker.build(s)) for s in states]
    i = STAGE_FEATURES_V3.index("loss_trend")
    j = STAGE_FEATURES_V3.index("loss_vs_start")
    assert np.all(rows[0][0][:, [i, j]] == 0)
    expect = np.log(states[3].stage["loss"]) - np.log(states[1].stage["loss"])
    assert np.allclose(rows[3][0][:, i], expect, atol=1e-5)
    assert np.allclose(rows[3][0][:, STAGE_FEATURES_V3.index("loss_vs_stages")].sum(), 0.0, atol=1e-5)
    tracker.reset()
    assert np.all(spec.unpad(tracker.build(states[3]))[0][:, j] == 0)  # a reset starts a new run


def test_wrapper_over_layout_2_envs_equals_the_layout_3_env():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from metacurr.envs.rebalance import RebalanceEnv
    from metacurr.envs.vec import RelativeObservationVecEnv

    kw = {"distribution": "mixed-mlp", "control_steps": 3, "inner_steps": 1, "max_stages": 5}
    plain = DummyVecEnv([lambda: RebalanceEnv(**kw, observation_version=3)] * 2)
    wrapped = RelativeObservationVecEnv(DummyVecEnv([lambda: RebalanceEnv(**kw)] * 2), ObservationSpec(max_stages=5),
                                        ObservationSpec(max_stages=5, version=3))
    for v in (plain, wrapped):
        v.seed(3)
    a, b = plain.reset(), wrapped.reset()
    assert np.array_equal(a, b)
    rng = np.random.default_rng(0)
    for _ in range(4):  # crosses an episode end: the trackers restart with the auto-reset
        act = rng.uniform(-1, 1, (2, 5)).astype(np.float32)
        (a, _, da, ia), (b, _, db, ib) = plain.step(act), wrapped.step(act)
        assert np.array_equal(a, b) and np.array_equal(da, db)
        for x, y in zip(ia, ib):
            if "terminal_observation" in x:
                assert np.array_equal(x["terminal_observation"], y["terminal_observation"])


def test_grouped_env_trains_every_stage_count_and_repeats_for_a_seed_in_process_and_in_workers():
    from metacurr.envs.task_distribution import get_distribution
    from metacurr.envs.vec import grouped_batched_env, task_groups

    dist = get_distribution("mixed-mlp")
    assert [g.n_stages for g in task_groups(dist)] == [(2,), (3,), (4,), (5,)]
    with pytest.raises(ConfigError, match="multiple"):
        grouped_batched_env(6, dist)
    runs = []
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4, 5)).astype(np.float32)
    for processes in (False, False, True):  # twice in this process, then each group in a worker process
        env = grouped_batched_env(4, dist, processes=processes, control_steps=2, inner_steps=1, max_stages=5)
        env.seed(11)
        obs, rewards = [env.reset()], []
        for a in actions:  # the third step starts new episodes (auto-reset)
            o, r, d, _ = env.step(a)
            obs.append(o)
            rewards.append(r)
        assert [int(m.sum()) for m in obs[0][:, -5:]] == [2, 3, 4, 5]
        assert env.get_attr("n_stages") == [2, 3, 4, 5]
        env.close()
        runs.append((np.stack(obs), np.stack(rewards)))
    for other in runs[1:]:
        assert np.array_equal(runs[0][0], other[0]) and np.array_equal(runs[0][1], other[1])
