import json
import shutil

import gymnasium as gym
import numpy as np
import pytest

import metacurr
from metacurr.agents.policy_controller import default_bundle_path, load_bundle_controller
from metacurr.cli import main
from metacurr.config import RunConfig, TaskSpec
from metacurr.errors import ConfigError
from metacurr.run import run_episode


def _train_agent(folder, config_text: str):
    """Run ``train-agent`` on a config written into ``folder``; returns the run folder."""
    cfg = folder / "agent.yaml"
    cfg.write_text(config_text)
    rc = main(["train-agent", "--config", str(cfg), "--out", str(folder / "run"), "--wandb", "disabled", "--no-progress"])
    assert rc == 0
    return folder / "run"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return _train_agent(
        tmp_path_factory.mktemp("agent"),
        "name: tiny\nenv: {max_stages: 4, control_steps: 3, inner_steps: 2}\n"
        "train: {total_timesteps: 48, n_envs: 2, vec_env: dummy, checkpoint_every: 16}\n"
        "ppo: {n_steps: 12, batch_size: 12, n_epochs: 1}\n",
    )


def test_train_agent_writes_bundle_and_checkpoints(bundle):
    man = json.loads((bundle / "policy" / "manifest.json").read_text())
    assert man["observation"]["max_stages"] == 4 and len(man["observation"]["feature_names"]) == 5 + 4 * (13 + 1)
    assert {"policy.pt", "normalizer.npz", "model.zip"} <= set(man["files"]) and man["versions"]["metacurr"]
    assert (bundle / "checkpoints" / "latest.json").is_file()
    s = json.loads((bundle / "summary.json").read_text())
    assert s["status"] == "finished" and s["timesteps"] >= 48


def test_bundle_round_trip_identical_actions(bundle):
    a = load_bundle_controller(bundle / "policy")
    b = load_bundle_controller(bundle / "policy")
    obs = np.random.default_rng(0).normal(size=a.obs_spec.size).astype(np.float32)
    assert np.array_equal(a.act(obs), b.act(obs))
    from stable_baselines3 import PPO

    full = PPO.load(bundle / "policy" / "model.zip", device="cpu")
    ref, _ = full.policy.predict(a.normalize_obs(obs), deterministic=True)
    assert np.allclose(a.act(obs), ref)


def test_policy_acts_identically_inside_and_outside_the_env(bundle):
    spec = TaskSpec(seed=10_001, control_steps=4, inner_steps=2)
    ctrl = load_bundle_controller(bundle / "policy")
    env = gym.make("metacurr/Rebalance-v0", task=spec, fixed_seed=True, max_stages=4)
    obs, _ = env.reset(seed=0)
    inside = []
    for _ in range(4):
        obs, *_, info = env.step(ctrl.predict(obs)[0])
        inside.append(info["weights"][:3])
    _, rows = run_episode(RunConfig(task=spec, controller="policy"), load_bundle_controller(bundle / "policy"))
    outside = [[r[f"curriculum/w_stage{s}"] for s in range(3)] for r in rows[1:]]
    assert np.allclose(np.array(inside), np.array(outside), atol=1e-6)


def test_reuse_in_new_run_and_other_stage_counts(bundle, tmp_path):
    rc = main(["train", "--task", "digits", "--controller", f"policy:{bundle / 'policy'}", "--out", str(tmp_path / "r"),
               "--control-steps", "2", "--inner-steps", "2", "--no-progress"])
    assert rc == 0
    s = metacurr.train("mnist1d", controller=f"policy:{bundle / 'policy'}", n_stages=2, control_steps=2, inner_steps=2)
    assert s["n_stages"] == 2
    with pytest.raises(ConfigError, match="at most 4"):
        metacurr.train("mnist1d", controller=f"policy:{bundle / 'policy'}", n_stages=6, control_steps=2, inner_steps=2)


def test_corrupted_or_incompatible_bundle_is_a_clear_error(bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(bundle / "policy", bad)
    (bad / "policy.pt").write_bytes((bad / "policy.pt").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ConfigError, match="checksum mismatch"):
        load_bundle_controller(bad)
    shutil.rmtree(bad)
    shutil.copytree(bundle / "policy", bad)
    man = json.loads((bad / "manifest.json").read_text())
    man["observation"]["feature_names"][1] = "something_else"
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ConfigError, match="checksum mismatch for manifest.json"):  # an edited manifest
        load_bundle_controller(bad)
    from metacurr.agents.bundle import MANIFEST_SUM, manifest_digest

    man[MANIFEST_SUM] = manifest_digest(man)  # a consistent manifest for another observation layout
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ConfigError, match="observation layout"):
        load_bundle_controller(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_bundle_controller(tmp_path / "missing")


def test_resume_continues_from_checkpoint(bundle, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(bundle, out)
    cfg = out / "config.yaml"
    rc = main(["train-agent", "--config", str(cfg), "--out", str(out), "--resume", "--timesteps", "72", "--wandb", "disabled",
               "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_from"] >= 48 and s["timesteps"] >= 72


def test_resume_restores_the_observation_normaliser(bundle, tmp_path):
    """The normaliser is part of the policy: a resumed run continues from the checkpoint's statistics."""
    out = tmp_path / "resumed"
    shutil.copytree(bundle, out)
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    with np.load(out / "checkpoints" / latest["zip"].replace(".zip", ".norm.npz")) as z:
        saved = {k: z[k] for k in z.files}
    assert saved["count"] > 10 and np.abs(saved["mean"]).max() > 0.01  # real statistics, not the initial ones
    # nothing left to train: the bundle written on resume carries the checkpoint's normaliser exactly
    rc = main(["train-agent", "--config", str(out / "config.yaml"), "--out", str(out), "--resume",
               "--timesteps", str(latest["timesteps"]), "--wandb", "disabled", "--no-progress"])
    assert rc == 0
    with np.load(out / "policy" / "normalizer.npz") as z:
        assert np.array_equal(z["mean"], saved["mean"]) and np.array_equal(z["var"], saved["var"])
    again = json.loads((out / "checkpoints" / "latest.json").read_text())
    with np.load(out / "checkpoints" / again["zip"].replace(".zip", ".norm.npz")) as z:
        assert all(np.array_equal(z[k], saved[k]) for k in saved)  # return normaliser and counts too


def test_custom_loop_example(bundle):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "custom_loop.py"
    spec = importlib.util.spec_from_file_location("custom_loop", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--controller", f"policy:{bundle / 'policy'}", "--steps", "3", "--inner", "2"])
    assert 0 <= res["val_acc"] <= 1 and np.isclose(sum(res["final_weights"]), 1.0, atol=1e-3)


def test_bad_agent_config(tmp_path, capsys):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("ppo: {learning_rat: 0.1}\n")
    assert main(["train-agent", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key ppo.learning_rat" in capsys.readouterr().err
    cfg.write_text("train: {seed: 10000}\n")
    assert main(["train-agent", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "evaluation seeds" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shipped_default_policy_loads_and_runs_any_stage_count():
    # The bundle in metacurr/pretrained/default must match this metacurr's observation layout and mapping:
    # changing either without rerunning experiments/train_default_policy.py fails here, not in a user's run.
    man = json.loads((default_bundle_path() / "manifest.json").read_text())
    assert man["policy_class"] == "equivariant" and man["policy_kwargs"]["fallback"] == "shrink"
    for n in (3, 8):  # the agent trained on 2-5 stages; one network scores any number
        res = metacurr.train("mnist1d", arch="mlp", controller="policy:default", seed=3, control_steps=3, inner_steps=2,
                             n_stages=n)
        w = np.asarray(res["final_weights"])
        assert w.shape == (n,) and np.isclose(w.sum(), 1.0) and np.all(w > 0)


def test_periodic_eval_runs_on_validation_tasks_with_training_seeds(tmp_path, monkeypatch):
    from metacurr.agents import train as train_mod
    from metacurr.run import run_episode as real_run_episode
    from metacurr.seeds import TRAIN_SEED_MAX

    seen = []

    def spy(cfg, ctrl):
        seen.append((cfg.task.family, cfg.task.params.get("noise_kind"), cfg.task.seed))
        return real_run_episode(cfg, ctrl)

    monkeypatch.setattr(train_mod, "run_episode", spy)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        "name: tiny\nenv: {max_stages: 4, control_steps: 2, inner_steps: 1}\n"
        "train: {total_timesteps: 24, n_envs: 2, vec_env: dummy, checkpoint_every: 24, eval_every: 24, eval_seeds: 1}\n"
        "ppo: {n_steps: 12, batch_size: 12, n_epochs: 1}\n"
    )
    from metacurr.agents.config import load_agent_config

    c = load_agent_config(str(cfg))
    assert c.train.eval_tasks == "validation"
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(train_mod.make_vec_env(c, kind="dummy"))
    model = PPO("MlpPolicy", venv, n_steps=12, batch_size=12, n_epochs=1, device="cpu")
    m = train_mod.periodic_eval(model, venv, c)
    venv.close()
    assert set(m) == {"eval/policy_val_loss", "eval/heuristic_val_loss", "eval/policy_minus_heuristic"}
    assert all(np.isfinite(v) for v in m.values())
    # every validation task, policy and heuristic, on a training seed only
    assert len(seen) == 2 * 7 and {s for *_, s in seen} == {TRAIN_SEED_MAX}
    assert "systematic" in {k for _, k, _ in seen}  # the validation set's harmful-noise tasks are among them


def test_train_agent_on_sharded_batched_env(tmp_path):
    """vec_env: batched with batched_processes: 2 trains through ShardedBatchedVecEnv and writes a bundle."""
    run = _train_agent(
        tmp_path,
        "name: sharded\nenv: {distribution: default-mlp, max_stages: 4, control_steps: 3, inner_steps: 2}\n"
        "train: {total_timesteps: 16, n_envs: 4, vec_env: batched, batched_processes: 2, checkpoint_every: 16}\n"
        "ppo: {n_steps: 4, batch_size: 16, n_epochs: 1}\n",
    )
    man = json.loads((run / "policy" / "manifest.json").read_text())
    assert man["training_config"]["train"]["batched_processes"] == 2
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "finished" and s["timesteps"] >= 16
