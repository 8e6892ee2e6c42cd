"""The stage-equivariant policy: equivariance, any stage count, normaliser per feature, fallback,
training, save / load, bundles of both formats, determinism."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch

import metacurr
from metacurr.agents.equivariant_policy import StageEquivariantPolicy
from metacurr.agents.policy_controller import load_bundle_controller
from metacurr.cli import main
from metacurr.config import RunConfig, TaskSpec
from metacurr.errors import ConfigError
from metacurr.run import run_episode

G, F = 5, 7


def _policy(max_stages: int = 8, seed: int = 0, **kw) -> StageEquivariantPolicy:
    torch.manual_seed(seed)
    obs = gym.spaces.Box(-np.inf, np.inf, (G + max_stages * (F + 1),), np.float32)
    act = gym.spaces.Box(-1.0, 1.0, (max_stages,), np.float32)
    pol = StageEquivariantPolicy(obs, act, lambda _: 3e-4, n_globals=G, n_stage_features=F, hidden=16, **kw)
    with torch.no_grad():  # SB3 initialises the action head near 0: give it a visible output
        for p in pol.psi.parameters():
            p.normal_(0.0, 0.5)
    return pol


def _obs(rng, n_stages: int, slots: int, glob=None, stage=None) -> np.ndarray:
    g = rng.normal(size=G) if glob is None else glob
    s = np.zeros((slots, F))
    s[:n_stages] = rng.normal(size=(n_stages, F)) if stage is None else stage
    mask = np.zeros(slots)
    mask[:n_stages] = 1.0
    return np.concatenate([g, s.ravel(), mask]).astype(np.float32)


def test_permuting_stages_and_positions_permutes_the_actions():
    pol = _policy()
    rng = np.random.default_rng(1)
    glob, stage = rng.normal(size=G), rng.normal(size=(5, F))
    pos = np.linspace(0.0, 1.0, 5)
    perm = rng.permutation(5)
    a, _ = pol.deterministic_action(_obs(rng, 5, 5, glob, stage)[None], np.concatenate([pos])[None])
    b, _ = pol.deterministic_action(_obs(rng, 5, 5, glob, stage[perm])[None], pos[perm][None])
    assert np.allclose(b[0], a[0][perm], atol=1e-6)
    assert np.ptp(a[0]) > 1e-3  # the actions differ between stages: the check is not vacuous


def test_one_set_of_weights_serves_every_stage_count_and_padding_changes_nothing():
    pol = _policy(max_stages=8)
    rng = np.random.default_rng(2)
    for n in range(1, 9):
        glob, stage = rng.normal(size=G), rng.normal(size=(n, F))
        tight, _ = pol.deterministic_action(_obs(rng, n, n, glob, stage)[None])
        padded, _ = pol.deterministic_action(_obs(rng, n, 8, glob, stage)[None])
        wide, _ = pol.deterministic_action(_obs(rng, n, 12, glob, stage)[None])  # more slots than trained
        assert tight.shape == (1, n) and np.all(np.isfinite(tight)) and np.all(np.abs(tight) <= 1)
        assert np.allclose(padded[0, :n], tight[0], atol=1e-6) and np.all(padded[0, n:] == 0)
        assert np.allclose(wide[0, :n], tight[0], atol=1e-6)


def test_normaliser_statistics_are_per_feature_over_real_stages_only():
    pol = _policy(max_stages=4)
    rng = np.random.default_rng(3)
    rows = [_obs(rng, 2, 4), _obs(rng, 3, 4)]
    pol.update_normalizer(np.stack(rows))
    real = np.concatenate([r[G:G + 4 * F].reshape(4, F)[:n] for r, n in zip(rows, (2, 3))])
    assert np.allclose(pol.stage_mean.numpy(), real.mean(0), atol=1e-5)
    assert np.allclose(pol.stage_var.numpy(), real.var(0), rtol=1e-3, atol=1e-6)
    assert np.isclose(float(pol.stage_count), 5, atol=1e-3) and np.isclose(float(pol.count), 2, atol=1e-3)
    state = pol.normalizer_state()
    other = _policy(max_stages=4, seed=5)
    other.load_normalizer_state(state)
    assert all(np.array_equal(other.normalizer_state()[k], v) for k, v in state.items())
    with pytest.raises(ConfigError, match="lacks"):
        other.load_normalizer_state({k: v for k, v in state.items() if k != "count"})


def test_fallback_returns_toward_uniform_out_of_support_and_stays_out_of_the_way_inside():
    rng = np.random.default_rng(4)
    train = np.stack([_obs(rng, 3, 4) for _ in range(400)])
    plain, shrink = _policy(max_stages=4), _policy(max_stages=4, fallback="shrink", weight_index=0, weight_kind="log_ratio")
    for p in (plain, shrink):
        p.update_normalizer(train)
    inside = train.mean(0, keepdims=True)  # the centre of the training states
    a_plain, lam_in = plain.deterministic_action(inside)
    a_shrink, lam = shrink.deterministic_action(inside)
    assert lam[0] == 0.0 and np.allclose(a_plain, a_shrink) and lam_in[0] == 0.0
    far = inside.copy()
    far[0, G:G + 3 * F] *= 50.0  # every stage feature far outside the training states
    a_far, lam_far = shrink.deterministic_action(far)
    assert lam_far[0] == 1.0
    log_w = far[0, G:G + 4 * F].reshape(4, F)[:3, 0]
    assert np.allclose(a_far[0, :3], np.clip(-log_w, -1, 1), atol=1e-6)  # relative mapping: w * exp(-log(S w)) = 1/S


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="fallback"):
        _policy(fallback="sometimes")
    with pytest.raises(ConfigError, match="fallback_z"):
        _policy(fallback_z=[3.0, 1.0])
    from metacurr.agents.config import load_agent_config

    with pytest.raises(ConfigError, match="policy"):
        load_agent_config(overrides={"policy": "transformer"})
    with pytest.raises(ConfigError, match="multiple of the 4"):
        load_agent_config(overrides={"env": {"distribution": "mixed-mlp"}, "train": {"vec_env": "grouped", "n_envs": 6}})


TINY = ("name: tiny-eq\npolicy: equivariant\n"
        "env: {distribution: mixed-mlp, max_stages: 6, control_steps: 3, inner_steps: 2, observation_version: 3}\n"
        "train: {total_timesteps: 48, n_envs: 2, vec_env: dummy, checkpoint_every: 24, seed: 7}\n"
        "ppo: {n_steps: 12, batch_size: 12, n_epochs: 2, policy_kwargs: {hidden: 16}}\n")


def _train(folder, text: str = TINY):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.yaml").write_text(text)
    rc = main(["train-agent", "--config", str(folder / "agent.yaml"), "--out", str(folder / "run"), "--wandb", "disabled",
               "--no-progress"])
    assert rc == 0
    return folder / "run"


@pytest.fixture(scope="module")
def eq_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("eq"))


def test_bundle_is_format_2_and_ppo_load_round_trips(eq_run):
    from stable_baselines3 import PPO

    man = json.loads((eq_run / "policy" / "manifest.json").read_text())
    assert man["format_version"] == 2 and man["policy_class"] == "equivariant" and man["observation"]["version"] == 3
    ctrl = load_bundle_controller(eq_run / "policy")
    full = PPO.load(eq_run / "policy" / "model.zip", device="cpu")
    assert isinstance(full.policy, StageEquivariantPolicy) and float(full.policy.count) > 1  # the normaliser trained
    obs = np.random.default_rng(0).normal(size=(3, ctrl.obs_spec.size)).astype(np.float32)
    obs[:, -6:] = [1, 1, 1, 1, 0, 0]
    ref, _ = full.policy.predict(obs, deterministic=True)
    assert np.allclose(np.stack([ctrl.act(o) for o in obs]), ref, atol=1e-6)


def test_equivariant_policy_acts_identically_inside_and_outside_the_env(eq_run):
    spec = TaskSpec(seed=10_001, n_stages=4, control_steps=4, inner_steps=2)
    ctrl = load_bundle_controller(eq_run / "policy")
    env = gym.make("metacurr/Rebalance-v0", task=spec, fixed_seed=True, max_stages=6, observation_version=3)
    obs, _ = env.reset(seed=0)
    inside = []
    for _ in range(4):
        obs, *_, info = env.step(ctrl.predict(obs)[0])
        inside.append(info["weights"][:4])
    _, rows = run_episode(RunConfig(task=spec, controller="policy"), load_bundle_controller(eq_run / "policy"))
    outside = [[r[f"curriculum/w_stage{s}"] for s in range(4)] for r in rows[1:]]
    assert np.allclose(np.array(inside), np.array(outside), atol=1e-6)


def test_bundle_serves_stage_counts_it_never_saw(eq_run):
    for n in (2, 8):  # trained on 2-5 stages with 6 slots
        res = metacurr.train("mnist1d", controller=f"policy:{eq_run / 'policy'}", n_stages=n, control_steps=2, inner_steps=1)
        w = np.asarray(res["final_weights"])
        assert w.shape == (n,) and np.isclose(w.sum(), 1.0)


def test_mlp_bundle_loads_and_old_or_unknown_formats_fail_in_one_line(eq_run, tmp_path):
    from metacurr.agents.bundle import MANIFEST_SUM, manifest_digest
    from metacurr.agents.policy_controller import default_bundle_path

    assert json.loads((default_bundle_path() / "manifest.json").read_text())["format_version"] == 2
    mlp = _train(tmp_path / "mlp", "name: tiny-mlp\nenv: {max_stages: 4, control_steps: 3, inner_steps: 2}\n"
                 "train: {total_timesteps: 24, n_envs: 2, vec_env: dummy, checkpoint_every: 24}\n"
                 "ppo: {n_steps: 12, batch_size: 12, n_epochs: 1}\n")
    old = load_bundle_controller(mlp / "policy")  # an MlpPolicy bundle loads beside the equivariant ones
    assert not old.equivariant and old.act(np.zeros(old.obs_spec.size, np.float32)).shape == (4,)
    for key, value, msg in (("format_version", 99, "format_version 99, this metacurr reads 2;"),
                            ("format_version", 1, "format_version 1, this metacurr reads 2 .format 1 carries no "
                                                  "manifest checksum.; retrain it"),
                            ("policy_class", "transformer", "unknown policy_class 'transformer'")):
        bad = tmp_path / f"{key}-{value}"
        shutil.copytree(eq_run / "policy", bad)
        man = json.loads((bad / "manifest.json").read_text())
        man[key] = value
        man[MANIFEST_SUM] = manifest_digest(man)  # re-signed: the edit itself is what is refused
        (bad / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(ConfigError, match=msg) as e:
            load_bundle_controller(bad)
        assert "\n" not in str(e.value)


def test_derived_bundle_switches_the_fallback_on_with_the_same_weights(eq_run, tmp_path):
    from metacurr.agents.bundle import derive_bundle

    dst = derive_bundle(eq_run / "policy", tmp_path / "fb", {"fallback": "shrink"})
    a, b = load_bundle_controller(eq_run / "policy"), load_bundle_controller(dst)
    assert a.policy.fallback == "none" and b.policy.fallback == "shrink"
    assert all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values()))
    # model.zip carries the derived kwargs too: a plain PPO.load acts as the derived controller does
    from stable_baselines3 import PPO

    model = PPO.load(dst / "model.zip", device="cpu")
    assert model.policy.fallback == "shrink"
    b.reset(3, np.random.default_rng(0))
    obs = np.random.default_rng(1).normal(size=(16, model.observation_space.shape[0])) * 5  # far out of support
    sb3, _ = model.predict(obs.astype(np.float32), deterministic=True)
    _, lam = b.policy.deterministic_action(obs)
    assert lam.max() > 0  # the fallback acts on these states
    np.testing.assert_allclose(sb3, np.stack([b.act(o) for o in obs]), rtol=0, atol=1e-6)
    # deriving again with the same kwargs leaves the bundle (and the identity evaluations resume by) as it is
    before = (dst / "manifest.json").read_bytes(), (dst / "model.zip").stat().st_mtime_ns
    assert derive_bundle(eq_run / "policy", dst, {"fallback": "shrink"}) == dst
    assert ((dst / "manifest.json").read_bytes(), (dst / "model.zip").stat().st_mtime_ns) == before
    assert load_bundle_controller(dst).identity == b.identity
    derive_bundle(eq_run / "policy", dst, {"fallback": "shrink", "fallback_z": [0.0, 1.0]})  # other kwargs: derived anew
    assert load_bundle_controller(dst).identity != b.identity


def test_same_seed_same_policy(eq_run, tmp_path):
    again = _train(tmp_path / "again")
    a = torch.load(eq_run / "policy" / "policy.pt", weights_only=True)
    b = torch.load(again / "policy" / "policy.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
