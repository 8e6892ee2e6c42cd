"""``model.zip`` (the SB3 archive ``stable_baselines3.PPO.load`` reads) rebuilt from a bundle's weights.

A bundle's inference files are ``policy.pt`` + ``normalizer.npz``; ``model.zip`` is for continued training
and plain SB3 use. When only the weights exist, `rebuild_model_zip` makes an equivalent archive: the same
spaces, architecture, PPO settings and actor-critic weights. What it cannot restore is the optimiser's
Adam moments and the rollout counters of the original run (fresh ones are saved), so continued training
from it starts with a fresh optimiser; its predictions equal the bundle's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from metacurr.agents.config import AgentConfig, ppo_kwargs
from metacurr.agents.policy_controller import ACTIVATIONS
from metacurr.config import from_dict
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.errors import ConfigError


def rebuild_model_zip(bundle: str | Path, dest: str | Path, manifest: dict) -> Path:
    """Write ``dest`` (a PPO zip) from ``bundle/policy.pt`` and the training config in ``manifest``."""
    cfg = from_dict(AgentConfig, manifest["training_config"], "training_config")
    kw = ppo_kwargs(cfg)
    pk = dict(kw.pop("policy_kwargs", {}) or {})
    act = pk.pop("activation_fn", "tanh")
    env_kw = cfg.env.env_kwargs()
    venv = DummyVecEnv([lambda: RebalanceEnv(**env_kw)] * cfg.train.n_envs)  # the rollout size it trained with
    try:
        model = PPO("MlpPolicy", venv, seed=cfg.train.seed, device="cpu", verbose=0,
                    policy_kwargs={**pk, "activation_fn": ACTIVATIONS[act]}, **kw)
        state = torch.load(Path(bundle) / "policy.pt", map_location="cpu", weights_only=True)
        try:
            model.policy.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(f"{bundle}: policy.pt does not fit the recorded architecture ({str(e).splitlines()[0]})") from None
        model.num_timesteps = int(manifest.get("timesteps") or 0)
        model.save(dest)
    finally:
        venv.close()
    return Path(dest)
