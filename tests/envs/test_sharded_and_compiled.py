"""The two throughput options of the batched env (issue 5): `ShardedBatchedVecEnv` (the N runs split
over worker processes) and ``compile=True`` (torch.compile of the inner step and the probe pass).

Sharding changes nothing but where the runs execute: slot i is bit for bit slot i of the in-process
batched env. Compiling fuses kernels, so its numbers equal the eager env's up to float rounding; same
seed, same numbers still holds within it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from metacurr.envs.batched import BatchedRebalanceVecEnv, StackedOptimizer, fused_update
from metacurr.envs.sharded import ShardedBatchedVecEnv
from metacurr.errors import ConfigError

FAST = {"control_steps": 3, "inner_steps": 2}
needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile (inductor) needs a C++ compiler"
)


def _kw(arch="mlp", **task):
    return {"task": {"family": "mnist1d", "arch": arch, **task}, **FAST}


def _roll(env, n, steps=4, seed=5, width=3):
    env.seed(seed)
    out = [env.reset()]
    rng = np.random.default_rng(2)
    infos = []
    for _ in range(steps):  # crosses an episode end (control_steps 3): auto-reset in the workers
        o, r, d, i = env.step(rng.uniform(-1, 1, (n, width)).astype(np.float32))
        out += [o, r, d]
        infos.append(i)
    return out, infos


def test_sharded_equals_in_process_batched_bit_for_bit():
    n = 5
    ref = BatchedRebalanceVecEnv(n_envs=n, threads=1, **_kw(optimizer="adamw", lr_schedule="cosine"))
    sh = ShardedBatchedVecEnv(n, processes=2, **_kw(optimizer="adamw", lr_schedule="cosine"))
    try:
        assert sh.observation_space == ref.observation_space and sh.action_space == ref.action_space
        assert sh.bounds == [(0, 2), (2, 5)] and sh.feature_names == ref.feature_names
        a, ia = _roll(ref, n)
        b, ib = _roll(sh, n)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        for xs, ys in zip(ia, ib):
            for x, y in zip(xs, ys):
                assert set(x) == set(y)
                if "terminal_observation" in x:
                    np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
        assert sh.get_attr("task_spec") == ref.get_attr("task_spec")
        assert [i["control_step"] for i in sh.reset_infos] == [i["control_step"] for i in ref.reset_infos]
        for i in (0, 4):
            for k, v in ref.run_params(i).items():
                torch.testing.assert_close(sh.run_params(i)[k], v, rtol=0, atol=0)
    finally:
        ref.close()
        sh.close()


def test_sharded_key_comes_from_slot_zero():
    """With a task distribution, shard 0's slot 0 draws (family, arch, n_stages) for every shard, and
    each slot samples what it would in one batched env."""
    ref = BatchedRebalanceVecEnv(n_envs=4, distribution="mixed", **FAST)
    sh = ShardedBatchedVecEnv(4, processes=2, distribution="mixed", **FAST)
    try:
        for e in (ref, sh):
            e.seed(3)
            e.reset()
        specs = sh.get_attr("task_spec")
        assert len({(s.family, s.arch, s.n_stages) for s in specs}) == 1
        assert specs == ref.get_attr("task_spec")
    finally:
        ref.close()
        sh.close()


def test_sharded_vec_env_api_and_errors():
    sh = ShardedBatchedVecEnv(4, processes=3, **_kw())
    try:
        sh.seed(0)
        sh.reset()
        sh.set_attr("note", 7, indices=[1, 3])
        assert sh.get_attr("note", indices=[3, 1]) == [7, 7]
        for i in range(4):  # distinct values: the global -> (shard, local) mapping and the order
            sh.set_attr("tag", f"slot{i}", indices=i)
        assert sh.get_attr("tag", indices=[3, 0, 2, 1]) == ["slot3", "slot0", "slot2", "slot1"]
        assert [s.seed for s in sh.get_attr("task_spec", indices=[2, 0])] == [s.seed for s in sh.get_attr("task_spec")][2::-2]
        w = sh.env_method("current_weights", indices=[0, 2, 3])
        assert len(w) == 3 and all(abs(x.sum() - 1) < 1e-9 for x in w)
        assert sh.env_is_wrapped(object) == [False] * 4
        assert sh.render_mode is None
        sh.step(np.zeros((4, 3), np.float32))
        assert sh.train_seconds > 0 and 0 < sh.monitor_time_fraction < 1
        sh.wait_prefetch()
        # An error raised in a worker is raised again here, as itself, naming the global slot; every
        # other shard's reply is still read, so the env stays usable.
        sh.set_options([{}, {}, {"task": {"family": "mnist1d", "arch": "cnn"}}, {}])
        with pytest.raises(ConfigError, match="slot 2 got"):
            sh.reset()
        with pytest.raises(ConfigError, match="action has 2 entries for 3 stages"):
            sh.step(np.zeros((4, 2), np.float32))
        sh.set_options({})  # a failed reset keeps its options, as in the in-process env
        sh.seed(1)
        obs = sh.reset()
        o, r, d, infos = sh.step(np.zeros((4, 3), np.float32))
        assert obs.shape == o.shape == (4, sh.observation_space.shape[0]) and [i["control_step"] for i in infos] == [1] * 4
    finally:
        sh.close()
    sh.close()  # idempotent
    with pytest.raises(ConfigError, match="processes must be an integer in \\[1, n_envs=2\\]"):
        ShardedBatchedVecEnv(2, processes=3, **_kw())
    with pytest.raises(ConfigError, match="norm"):  # validated here, before any worker starts
        ShardedBatchedVecEnv(2, processes=2, **_kw(norm=True))
    with pytest.raises(ConfigError, match="threads"):
        ShardedBatchedVecEnv(2, processes=2, threads=2, **_kw())


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_fused_update_is_the_per_run_optimizer(kind):
    """The update the compiled step fuses = StackedOptimizer's per-run branch (runs at different step
    counts and learning rates), here run eagerly; clipping coefficients scale the gradients first."""
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 5, 4), (3, 4)]
    p1 = [torch.randn(*s, generator=g) for s in shapes]
    p2 = [p.clone() for p in p1]
    ref, fused = StackedOptimizer(kind, p1), StackedOptimizer(kind, p2)
    for step in range(4):
        if step == 2:  # run 1 restarts: per-run step counts differ from here on
            ref.reset_runs([1])
            fused.reset_runs([1])
        grads = [torch.randn(*s, generator=g) for s in shapes]
        coef = torch.tensor([1.0, 0.5, 0.25])
        lr = np.array([1e-2, 3e-3, 5e-3]) * (1 + step)
        ref.step([gr * coef.view(-1, *([1] * (gr.dim() - 1))) for gr in grads], lr)
        scalars = fused.fused_scalars(lr[None, :])
        fused_update(kind, p2, fused.state, grads, coef, [sc[0] for sc in scalars])
        for a, b in zip(p1, p2):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert (fused.steps == ref.steps).all()


@needs_compiler
def test_compiled_matches_eager_and_is_deterministic():
    n = 3
    task = {"optimizer": "adamw", "lr_schedule": "cosine", "grad_clip": 0.5, "augment": 0.05}
    eager = BatchedRebalanceVecEnv(n_envs=n, **_kw(**task))
    outs = []
    for env in (eager, BatchedRebalanceVecEnv(n_envs=n, compile=True, **_kw(**task)),
                BatchedRebalanceVecEnv(n_envs=n, compile=True, **_kw(**task))):  # fmt: skip
        outs.append(_roll(env, n)[0])
        grp = env.groups[0]
        p = grp.probe_size
        # The compiled env keeps drift's Gram matrices as blocked_gram blocks (even probe size); eager, full.
        assert grp.blocked == (env is not eager) and p % 2 == 0
        assert grp.gram[0].shape[1:] == ((3, p // 2, p // 2) if grp.blocked else (p, p))
        env.close()
    for x, y in zip(outs[0], outs[1]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    for x, y in zip(outs[1], outs[2]):  # same seed, same numbers
        np.testing.assert_array_equal(x, y)


@needs_compiler
def test_compiled_steps_in_unrolled_chunks_match_eager(monkeypatch):
    """k = 5 inner steps as compiled chunks of 2, 2 and 1 (the shorter last chunk is a graph of its own):
    the eager env's numbers, with AdamW, a cosine schedule, clipping and augmentation, through an
    auto-reset (per-run step counts and learning rates carried across chunks)."""
    import metacurr.envs.batched as batched

    monkeypatch.setitem(batched.UNROLL, "mlp", 2)
    n = 2
    kw = {**_kw(optimizer="adamw", lr_schedule="cosine", grad_clip=0.5, augment=0.05), "inner_steps": 5}
    outs = []
    for compile in (False, True):
        env = BatchedRebalanceVecEnv(n_envs=n, compile=compile, **kw)
        outs.append(_roll(env, n)[0])
        env.close()
    for x, y in zip(outs[0], outs[1]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


@needs_compiler
@pytest.mark.expensive
@pytest.mark.parametrize(("arch", "task"), [("cnn", {"optimizer": "sgd"}), ("gru", {}), ("transformer", {})])
def test_compiled_matches_eager_other_archs(arch, task):
    n = 2
    a = _roll(BatchedRebalanceVecEnv(n_envs=n, **_kw(arch, **task)), n, steps=2)[0]
    b = _roll(BatchedRebalanceVecEnv(n_envs=n, compile=True, **_kw(arch, **task)), n, steps=2)[0]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_compile_flag_is_validated(monkeypatch):
    with pytest.raises(ConfigError, match="compile must be true or false"):
        BatchedRebalanceVecEnv(n_envs=2, compile="yes", **_kw())
    monkeypatch.setattr("metacurr.envs.batched.shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="compile: true needs a C\\+\\+ compiler on PATH"):
        BatchedRebalanceVecEnv(n_envs=2, compile=True, **_kw())
    BatchedRebalanceVecEnv(n_envs=2, compile=False, **_kw()).close()  # eager needs none


def test_a_dead_worker_is_a_clear_error():
    sh = ShardedBatchedVecEnv(2, processes=2, **_kw())
    try:
        sh.seed(0)
        sh.reset()
        sh.processes[1].kill()
        sh.processes[1].join(timeout=10)
        with pytest.raises(RuntimeError, match="worker 1 .* died with exit code -9"):
            sh.step(np.zeros((2, 3), np.float32))
    finally:
        sh.close()


@needs_compiler
def test_compiled_divergence_stays_in_its_run_and_graphs_compile():
    """A run whose parameters are NaN diverges alone in the compiled env: the other runs' numbers are
    exactly those of the same compiled env without the NaNs. And the compiled functions really are
    compiled graphs, without graph breaks."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # compile afresh (other tests compiled the same shapes), then count
    counters.clear()
    n = 3
    envs = [BatchedRebalanceVecEnv(n_envs=n, compile=True, **_kw()) for _ in range(2)]
    for e in envs:
        e.seed(4)
        e.reset()
    with torch.no_grad():
        for p in envs[1].groups[0].param_list:
            p[1].fill_(float("nan"))
    a = np.zeros((n, 3), np.float32)
    o1, r1, d1, _ = envs[0].step(a)
    o2, r2, d2, i2 = envs[1].step(a)
    assert d2.tolist() == [False, True, False] and not d1.any() and i2[1]["diverged"]
    for i in (0, 2):
        np.testing.assert_array_equal(o1[i], o2[i])
        assert r1[i] == r2[i]
    assert counters["stats"]["unique_graphs"] >= 2 and not counters["graph_break"]
    for e in envs:
        e.close()


@needs_compiler
def test_compiled_envs_keep_compiling_past_dynamos_default_limit():
    """All compiled envs of a process share dynamo's cache (every compiled partial runs through one
    wrapper code object): 2 entries per batch shape, step and probe pass. Five shapes still get
    compiled graphs, where dynamo's default limit of 8 entries made the fifth run eagerly; an env
    with a shape seen before, and a reset, compile nothing new."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    for n in (2, 3, 4, 5, 6, 2):
        e = BatchedRebalanceVecEnv(n_envs=n, compile=True, **{**_kw(), "inner_steps": 1})
        e.seed(n)
        e.reset()
        e.step(np.zeros((n, 3), np.float32))
        e.reset()
        e.step(np.zeros((n, 3), np.float32))
        e.close()
    assert counters["stats"]["unique_graphs"] == 10 and not counters["graph_break"]
