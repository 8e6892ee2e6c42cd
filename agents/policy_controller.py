"""`PolicyController`: a saved PPO policy (plus its observation normaliser) acting as a controller.

It builds observations with the same `ObservationSpec` and moves weights with the same `WeightMapping`
as the environment it was trained in, so it acts identically inside and outside the env — in
`metacurr train`, `metacurr evaluate`, or a user's own PyTorch loop (feed it `LearningState`s).

References: ``policy:PATH`` (a bundle folder), ``policy:default`` (the bundle shipped in the package),
``wandb:ENTITY/PROJECT/NAME:VERSION`` (a bundle logged as a W&B artifact; needs W&B online).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

import metacurr
from metacurr.agents.bundle import load_bundle
from metacurr.controllers.base import Controller
from metacurr.envs.observation import ObservationSpec
from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState
from metacurr.tracking import fetch_artifact
from metacurr.validation import check_observation
from metacurr.weights import WeightMapping

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


def default_bundle_path() -> Path:
    """The shipped default policy (package data under metacurr/pretrained/default)."""
    return Path(metacurr.__file__).resolve().parent / "pretrained" / "default"


def build_policy(obs_size: int, act_size: int, policy_kwargs: dict):
    """Rebuild the SB3 actor-critic with the architecture the bundle records (no pickle involved)."""
    kw = dict(policy_kwargs)
    act = kw.pop("activation_fn", "tanh")
    if act not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {act!r} in bundle; valid choices: {', '.join(ACTIVATIONS)}")
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_size,), np.float32)
    return ActorCriticPolicy(obs_space, act_space, lambda _: 0.0, activation_fn=ACTIVATIONS[act], **kw)


class PolicyController(Controller):
    """A learned rebalancing policy as a controller.

    Args:
        policy: an SB3 ``ActorCriticPolicy``.
        obs_spec: the observation layout it was trained on.
        mapping: the action -> weight mapping it was trained with.
        obs_mean, obs_var, clip_obs, epsilon: the observation normaliser (VecNormalize statistics).
        name: label in reports.

    For the open-loop ablation (indicators frozen, only progress and weights move) wrap it:
    ``--controllers open-loop:policy:PATH`` (`metacurr.evaluation.masking`).
    """

    name = "policy"

    def __init__(
        self,
        policy,
        obs_spec: ObservationSpec,
        mapping: WeightMapping,
        obs_mean: np.ndarray,
        obs_var: np.ndarray,
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
        name: str = "policy",
    ):
        self.policy = policy.eval()
        self.obs_spec = obs_spec
        self.mapping = mapping
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.sqrt(np.asarray(obs_var, dtype=np.float64) + epsilon)
        self.clip_obs = float(clip_obs)
        self.name = name
        if self.obs_mean.shape != (obs_spec.size,):
            raise ConfigError(f"normaliser has {self.obs_mean.shape[0]} entries but the observation layout has {obs_spec.size}")

    def check_stages(self, n_stages: int) -> None:
        self.obs_spec.check_stages(n_stages)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        self.obs_spec.check_stages(n_stages)
        return super().reset(n_stages, rng)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        layout = f"{self.obs_spec.max_stages} stage slots, v{self.obs_spec.version}"
        z = (check_observation(obs, self.obs_spec.size, layout) - self.obs_mean) / self.obs_std
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for a raw (unnormalised) observation."""
        action, _ = self.policy.predict(self.normalize_obs(obs), deterministic=True)
        return np.asarray(action, dtype=np.float64)

    def update(self, state: LearningState) -> np.ndarray:
        if state.n_stages != self.n_stages:
            raise ConfigError(f"state has {state.n_stages} stages, controller was reset for {self.n_stages}")
        a = self.act(self.obs_spec.build(state))
        self.weights = self.mapping.apply(self.weights, a[: self.n_stages])
        return self.weights.copy()

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-shaped: a raw env observation (padded layout) -> (action, None)."""
        return self.act(observation), None


def load_bundle_controller(path: str | Path, name: str | None = None) -> PolicyController:
    """Load a bundle folder as a PolicyController (checks manifest, layout and checksums)."""
    path = Path(path)
    man, state_dict, norm = load_bundle(path)
    try:
        obs = man.get("observation", {})
        spec = ObservationSpec(max_stages=int(obs.get("max_stages", 0)), clip=float(obs.get("clip", 1e4)),
                               version=int(obs.get("version", 0)), hidden=tuple(obs.get("hidden") or ()))
    except ConfigError:
        raise
    except (AttributeError, TypeError, ValueError) as e:
        raise ConfigError(f"policy bundle {path}: malformed observation entry in manifest.json ({e})") from None
    if spec.version != ObservationSpec().version or obs.get("feature_names") != spec.feature_names():
        raise ConfigError(
            f"policy bundle {path}: its observation layout (v{obs.get('version')}) does not match this metacurr's "
            f"(v{ObservationSpec().version}, globals {list(GLOBAL_FEATURES)}, per-stage {list(STAGE_FEATURES)}); retrain it"
        )
    try:
        policy = build_policy(spec.size, spec.max_stages, dict(man.get("policy_kwargs") or {}))
        mapping = WeightMapping(**dict(man.get("mapping") or {}))
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"policy bundle {path}: malformed policy_kwargs or mapping in manifest.json ({e})") from None
    try:
        policy.load_state_dict(state_dict)
    except RuntimeError as e:
        raise ConfigError(f"policy bundle {path}: weights do not fit the recorded architecture ({str(e).splitlines()[0]})") from None
    return PolicyController(
        policy,
        spec,
        mapping,
        norm["mean"],
        norm["var"],
        float(norm["clip"]),
        float(norm["epsilon"]),
        name=name or f"policy:{path}",
    )


def load_policy_controller(ref: str) -> PolicyController:
    """Resolve ``policy:PATH`` / ``policy:default`` / ``wandb:...`` and load it."""
    if ref.startswith("wandb:"):
        return load_bundle_controller(fetch_artifact(ref), name=ref)
    target = ref.split(":", 1)[1]
    if not target:
        raise ConfigError("policy: needs a path, e.g. policy:runs/agent/policy or policy:default")
    if target == "default":
        path = default_bundle_path()
        if not (path / "manifest.json").is_file():
            raise ConfigError("no default policy is shipped in this install; run experiments/train_default_policy.py")
        return load_bundle_controller(path, name="policy:default")
    return load_bundle_controller(Path(target), name=ref)
