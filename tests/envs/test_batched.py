"""BatchedRebalanceVecEnv: per-run equivalence with RebalanceEnv, SB3 VecEnv semantics, divergence
isolation, determinism, PPO on it, and the exactness of its vectorised pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from metacurr.config import TaskSpec
from metacurr.controllers.mapping import WeightMapping
from metacurr.envs.batched import BatchedRebalanceVecEnv, StackedOptimizer, map_weights
from metacurr.envs.observation import ObservationSpec
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.errors import ConfigError
from metacurr.monitors.learning_monitor import PACKED_STAGE, assemble_batch, assemble_state
from metacurr.trainer import FunctionalOptimizer, make_optimizer

FAST = {"control_steps": 3, "inner_steps": 2}


def _kw(arch="mlp", **task):
    return {"task": {"family": "mnist1d", "arch": arch, **task}, **FAST}


def _pair(n, kw, seed=11, **bkw):
    ref = DummyVecEnv([lambda: RebalanceEnv(**kw) for _ in range(n)])
    bat = BatchedRebalanceVecEnv(n_envs=n, **kw, **bkw)
    ref.seed(seed)
    bat.seed(seed)
    return ref, bat


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=what)


@pytest.mark.parametrize(
    ("arch", "n", "task", "bkw"),
    [
        ("mlp", 3, {}, {}),
        ("mlp", 4, {"optimizer": "adamw", "lr_schedule": "cosine", "grad_clip": 0.5, "augment": 0.05}, {"threads": 2}),
        ("cnn", 2, {"optimizer": "sgd"}, {}),
    ],
)
def test_matches_unbatched_env(arch, n, task, bkw):
    """Slot i = RebalanceEnv with the same seed and actions, through an episode end and auto-reset
    (all stage weights > 0: the WeightMapping floor guarantees it in the env)."""
    ref, bat = _pair(n, _kw(arch, **task), **bkw)
    _close(ref.reset(), bat.reset(), "reset")
    rng = np.random.default_rng(0)
    for t in range(4):
        a = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        o1, r1, d1, i1 = ref.step(a)
        o2, r2, d2, i2 = bat.step(a)
        _close(o1, o2, f"obs step {t}")
        _close(r1, r2, f"reward step {t}")
        assert (d1 == d2).all()
        for x, y in zip(i1, i2):
            assert set(x) == set(y)
            np.testing.assert_array_equal(x["weights"], y["weights"])
            if "terminal_observation" in x:
                _close(x["terminal_observation"], y["terminal_observation"], "terminal obs")
    assert [e.task_spec for e in ref.envs] == bat.get_attr("task_spec")
    bat.close()


def test_vec_env_api_shapes_and_auto_reset():
    n = 3
    bat = BatchedRebalanceVecEnv(n_envs=n, **_kw())
    env = RebalanceEnv(**_kw())
    assert bat.observation_space == env.observation_space and bat.action_space == env.action_space
    assert bat.num_envs == n and bat.feature_names == env.feature_names
    bat.seed(0)
    obs = bat.reset()
    assert obs.shape == (n, env.observation_space.shape[0]) and obs.dtype == np.float32
    assert all(bat.observation_space.contains(o) for o in obs)
    assert len(bat.reset_infos) == n and bat.reset_infos[0]["control_step"] == 0
    for _ in range(FAST["control_steps"]):
        obs, rew, done, infos = bat.step(np.stack([bat.action_space.sample() for _ in range(n)]))
        assert obs.shape == (n, env.observation_space.shape[0]) and obs.dtype == np.float32
        assert rew.shape == (n,) and rew.dtype == np.float32 and done.shape == (n,) and done.dtype == bool
        assert isinstance(infos, list) and len(infos) == n
    assert done.all()
    for o, info in zip(obs, infos):
        term = info["terminal_observation"]
        assert term.shape == o.shape and info["TimeLimit.truncated"] and info["episode_improvement"] is not None
        assert info["control_step"] == FAST["control_steps"]
        assert o[0] == 0.0 and term[0] == pytest.approx(1.0)  # progress: reset obs vs last obs
    assert [i["control_step"] for i in bat.reset_infos] == [0] * n
    # The other VecEnv methods.
    assert bat.env_is_wrapped(object) == [False] * n
    assert bat.get_attr("render_mode") == [None] * n
    bat.set_attr("note", 5, indices=[1])
    assert bat.get_attr("note", indices=1) == [5]
    w = bat.env_method("current_weights")
    assert len(w) == n and all(abs(x.sum() - 1) < 1e-9 for x in w)
    assert bat.get_attr("state")[0].to_vector().shape == (len(env.feature_names) - env.obs_spec.max_stages,)
    bat.close()


def test_divergence_is_isolated_per_run():
    n = 3
    ref = BatchedRebalanceVecEnv(n_envs=n, **_kw())
    bat = BatchedRebalanceVecEnv(n_envs=n, **_kw())
    for e in (ref, bat):
        e.seed(4)
        e.reset()
    grp = bat.groups[0]
    with torch.no_grad():
        for p in grp.param_list:
            p[1].fill_(float("nan"))
    a = np.zeros((n, 3), np.float32)
    o1, r1, d1, _ = ref.step(a)
    o2, r2, d2, i2 = bat.step(a)
    assert d2.tolist() == [False, True, False] and not d1.any()
    assert r2[1] == -1.0 and i2[1]["diverged"] and i2[1]["episode_improvement"] is None
    assert not i2[1]["TimeLimit.truncated"] and np.isfinite(i2[1]["terminal_observation"]).all()
    for i in (0, 2):  # untouched by run 1's NaNs: forward, backward, optimiser, monitors
        np.testing.assert_array_equal(o1[i], o2[i])
        assert r1[i] == r2[i]
    # Run 1 was reset on its own: fresh finite parameters and optimiser state, a normal next step.
    assert np.isfinite(o2[1]).all() and o2[1][0] == 0.0
    assert all(torch.isfinite(p[1]).all() for p in grp.param_list)
    assert all(torch.isfinite(s[1]).all() for s in grp.opt.exp_avgs + grp.opt.exp_avg_sqs)
    _, r, d, infos = bat.step(a)
    assert not d.any() and np.isfinite(r).all() and infos[1]["control_step"] == 1
    for e in (ref, bat):
        e.close()


def test_deterministic_and_prefetch_invariant():
    runs = []
    for prefetch, threads in ((True, 1), (False, 1), (True, 2)):
        e = BatchedRebalanceVecEnv(n_envs=4, prefetch=prefetch, threads=threads, **_kw())
        e.seed(7)
        out = [e.reset()]
        rng = np.random.default_rng(3)
        for _ in range(4):  # crosses an episode end: auto-reset with the prefetched curricula
            o, r, d, _ = e.step(rng.uniform(-1, 1, (4, 3)).astype(np.float32))
            out += [o, r, d]
        runs.append(out)
        e.close()
    for other in runs[1:2]:  # same threads: bitwise identical
        for x, y in zip(runs[0], other):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(runs[0], runs[2]):  # another group split: same numbers up to kernel rounding
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_ppo_runs_on_it():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    venv = VecNormalize(VecMonitor(BatchedRebalanceVecEnv(n_envs=2, distribution="default", **FAST)))
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    assert model.num_timesteps >= 16
    venv.close()


def test_config_errors():
    with pytest.raises(ConfigError, match="norm"):
        BatchedRebalanceVecEnv(n_envs=2, **_kw(norm=True))
    with pytest.raises(ConfigError, match="n_envs"):
        BatchedRebalanceVecEnv(n_envs=0, **_kw())
    bat = BatchedRebalanceVecEnv(n_envs=2, **_kw())
    bat.set_options([{}, {"task": {"family": "mnist1d", "arch": "cnn"}}])
    with pytest.raises(ConfigError, match="one \\(family, arch, n_stages\\)"):
        bat.reset()
    bat.close()


def test_mixed_distribution_forces_first_key():
    bat = BatchedRebalanceVecEnv(n_envs=4, distribution="mixed", **FAST)
    bat.seed(1)
    bat.reset()
    keys = {(s.family, s.arch, s.n_stages) for s in bat.get_attr("task_spec")}
    assert len(keys) == 1
    assert len({s.seed for s in bat.get_attr("task_spec")}) == 4
    bat.close()


def test_map_weights_and_build_batch_are_exact():
    rng = np.random.default_rng(0)
    for m in (WeightMapping(), WeightMapping(eta=2.0, smoothing=1.0, max_step=0.05, floor=0.0),
              WeightMapping(mode="absolute"), WeightMapping(eta=3.0, smoothing=1.0, max_step=1.0, mode="absolute")):
        for s in (2, 3, 5):
            prev = rng.dirichlet(np.ones(s), size=50)
            a = rng.uniform(-1.5, 1.5, (50, s))
            a[0, 0] = np.nan
            ref = np.stack([m.apply(prev[i], a[i]) for i in range(50)])
            np.testing.assert_array_equal(map_weights(m, prev, a), ref)
    spec = ObservationSpec(max_stages=5)
    s, n = 3, 6
    packed = rng.normal(size=(n, len(PACKED_STAGE) * s + 2))
    packed[0, 3] = np.nan
    packed[1, -2] = np.inf
    prev = [assemble_state(packed[i], s, None, 0, 0.0, np.full(s, 1 / s), np.full(s, np.nan), 0.0) for i in range(n)]
    packed2 = packed + rng.normal(size=packed.shape)
    w, tl, gn = rng.dirichlet(np.ones(s), size=n), rng.normal(size=(n, s)), rng.uniform(0, 5, n)
    states = [assemble_state(packed2[i], s, prev[i], 2, 0.5, w[i], tl[i], gn[i]) for i in range(n)]
    pstage = np.stack([np.stack([p.stage[k] for k in p.stage], 1) for p in prev])
    pval = np.array([p.glob["val_loss"] for p in prev])
    stage, glob = assemble_batch(packed2, s, pstage, pval, np.full(n, 0.5), w, tl, gn)
    np.testing.assert_array_equal(spec.build_batch(stage, glob), np.stack([spec.build(st) for st in states]))


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_stacked_and_functional_optimizers_match_torch_optim(kind):
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (6,), (3, 6)]
    n = 3
    init = [torch.randn(n, *sh, generator=g) for sh in shapes]
    grads = [[torch.randn(n, *sh, generator=g) for sh in shapes] for _ in range(5)]
    grads[2][0][1] = float("nan")  # a NaN in run 1 stays in run 1
    spec = TaskSpec(optimizer=kind)
    stacked = [p.clone() for p in init]
    sopt = StackedOptimizer(kind, stacked)
    for i in range(n):
        ps = [p[i].clone().requires_grad_() for p in init]
        fs = [p[i].clone() for p in init]
        opt, fopt = make_optimizer(spec, ps), FunctionalOptimizer(kind, fs, spec.lr)
        for step in grads:
            for p, gr in zip(ps, step):
                p.grad = gr[i].clone()
            opt.step()
            fopt.step([gr[i] for gr in step])
        for p, f in zip(ps, fs):
            torch.testing.assert_close(f, p.detach(), rtol=0, atol=0, equal_nan=True)  # FunctionalOptimizer: bitwise
    for step in grads:
        sopt.step(step, np.full(n, spec.lr))
    for i in range(n):
        ps = [p[i].clone().requires_grad_() for p in init]
        opt = make_optimizer(spec, ps)
        for step in grads:
            for p, gr in zip(ps, step):
                p.grad = gr[i].clone()
            opt.step()
        for p, sp in zip(ps, stacked):
            torch.testing.assert_close(sp[i], p.detach(), rtol=0, atol=0, equal_nan=True)  # uniform steps: bitwise
    assert all(torch.isfinite(sp[i]).all() for sp in stacked for i in (0, 2))
    # Per-run step counts and learning rates (a run reset on its own): same update up to rounding.
    sopt.reset_runs([0])
    before = [p.clone() for p in stacked]
    sopt.step(grads[0], np.array([1e-3, spec.lr, spec.lr]))
    p0 = [b[0].clone().requires_grad_() for b in before]
    opt0 = make_optimizer(TaskSpec(optimizer=kind, lr=1e-3), p0)  # a fresh optimiser: step 1
    for p, gr in zip(p0, grads[0]):
        p.grad = gr[0].clone()
    opt0.step()
    for r, sp in zip([p.detach() for p in p0], stacked):
        torch.testing.assert_close(sp[0], r, rtol=1e-6, atol=1e-7)


def test_gymnasium_vector_adapter():
    from metacurr.envs.batched import BatchedRebalanceVectorEnv

    env = BatchedRebalanceVectorEnv(2, **_kw())
    obs, infos = env.reset(seed=3)
    assert obs.shape == (2, env.single_observation_space.shape[0]) and infos["_control_step"].all()
    assert env.action_space.shape == (2, env.single_action_space.shape[0])
    for _ in range(FAST["control_steps"]):
        obs, rew, term, trunc, infos = env.step(env.action_space.sample())
    assert trunc.all() and not term.any() and rew.shape == (2,)
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == obs[0].shape
    assert (infos["final_info"]["control_step"] == FAST["control_steps"]).all() and (infos["control_step"] == 0).all()
    env.close()


# ---- the single-run hot path: faster, same numbers bit for bit ----


def _reference_run(spec, cur, steps):
    """The pre-optimisation InnerTrainer + LearningMonitor, inline: torch.optim, .backward(),
    clip_grad_norm_, per-stage gathers, and the monitor's original formulas."""
    import torch.nn.functional as F

    from metacurr.config import MonitorConfig
    from metacurr.inner_run import derive_seeds
    from metacurr.models import build_model
    from metacurr.monitors.calibration import expected_calibration_error
    from metacurr.monitors.entropy import entropy_and_confidence
    from metacurr.monitors.gradient_variance import gradient_alignment, head_gradient, head_gradient_stats
    from metacurr.monitors.learning_monitor import probe_sets
    from metacurr.monitors.representation_drift import representation_drift

    seeds = derive_seeds(spec.seed)
    model = build_model(spec.arch, layout=cur.layout, input_shape=cur.input_shape, n_classes=cur.n_classes, seed=seeds["model"])
    opt = make_optimizer(spec, model.parameters())
    gen = torch.Generator().manual_seed(seeds["order"])
    cfg = MonitorConfig()
    x_p, y_stage, y_val, p = probe_sets(cur, cfg, torch.Generator().manual_seed(seeds["probe"]))
    pool_x = torch.cat([x for x, _ in cur.stages])
    pool_y = torch.cat([y for _, y in cur.stages])
    sizes = torch.tensor([len(y) for _, y in cur.stages], dtype=torch.float64)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(y) for _, y in cur.stages])[:-1]]), dtype=torch.long)
    state = {"prev": None}

    @torch.no_grad()
    def measure():
        model.eval()
        logits, feats = model.forward_with_features(x_p)
        model.train()
        n = len(cur.stages) * p
        sl, sf = logits[:n].reshape(-1, p, logits.shape[-1]), feats[:n].reshape(-1, p, feats.shape[-1])
        logp = torch.log_softmax(sl, -1)
        probs = logp.exp()
        ent, conf = entropy_and_confidence(sl)
        gn, gv, gm = head_gradient_stats(probs, y_stage, sf, cfg.micro_batches)
        vl = logits[n:]
        gval = head_gradient(torch.log_softmax(vl, -1).exp()[None], y_val[None], feats[n:][None])
        vals = [
            -logp.gather(2, y_stage[..., None]).squeeze(-1).mean(1), (sl.argmax(-1) == y_stage).float().mean(1), ent,
            conf, gn, gv, representation_drift(state["prev"], sf), expected_calibration_error(probs, y_stage, cfg.ece_bins),
            gradient_alignment(gm[None], gval)[0],
        ]  # fmt: skip
        state["prev"] = sf
        return torch.cat([torch.stack(vals).flatten(), F.cross_entropy(vl, y_val).reshape(1),
                          (vl.argmax(-1) == y_val).float().mean().reshape(1)])  # fmt: skip

    out = [measure()]
    for w in steps:
        active = np.flatnonzero(w > 0)
        act = torch.as_tensor(active)
        w_t = torch.as_tensor(w[active], dtype=torch.float32)
        u = torch.rand(spec.inner_steps, len(active), spec.batch_size, generator=gen, dtype=torch.float64)
        idx = offsets[act].view(1, -1, 1) + (u * sizes[act].view(1, -1, 1)).long()
        for i in range(spec.inner_steps):
            flat = idx[i].reshape(-1)
            per = F.cross_entropy(model(pool_x[flat]), pool_y[flat], reduction="none").view(len(active), -1).mean(1)
            opt.zero_grad(set_to_none=True)
            (w_t * per).sum().backward()
            if i == spec.inner_steps - 1:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            opt.step()
        out.append(measure())
    return out, [t.detach() for t in model.parameters()]


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_inner_run_matches_reference_bitwise(kind):
    from metacurr.inner_run import InnerRun
    from metacurr.tasks import build_curriculum

    spec = TaskSpec(family="mnist1d", arch="mlp", seed=3, optimizer=kind, inner_steps=3, control_steps=4)
    cur = build_curriculum("mnist1d", 3, 3, {})
    steps = [np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.0, 0.5]), np.array([1 / 3] * 3)]
    ref, ref_params = _reference_run(spec, cur, steps)
    run = InnerRun(spec)
    states = [run.reset()] + [run.step(w) for w in steps]
    for st, r in zip(states, ref):
        got = np.concatenate([np.stack([st.stage[k] for k in ("loss", "acc", "entropy", "confidence", "grad_norm",
                                                               "grad_var", "drift", "ece", "grad_align")]).ravel(),
                              [st.glob["val_loss"], st.glob["val_acc"]]])  # fmt: skip
        np.testing.assert_array_equal(got, r.double().numpy())
    for a, b in zip(run.model.parameters(), ref_params):
        assert torch.equal(a.detach(), b)
