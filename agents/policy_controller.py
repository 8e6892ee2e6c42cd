"""`PolicyController`: a saved PPO policy (plus its observation normaliser) acting as a controller.

It builds observations with the same `ObservationSpec` and moves weights with the same `WeightMapping`
as the environment it was trained in, so it acts identically inside and outside the env — in
`metacurr train`, `metacurr evaluate`, or a user's own PyTorch loop (feed it `LearningState`s).

Two policy classes: ``mlp`` (SB3's MlpPolicy over the padded vector, with VecNormalize statistics per
entry; serves up to the bundle's ``max_stages``) and ``equivariant``
(`metacurr.agents.equivariant_policy`: normaliser inside the policy; serves any stage count).

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
from metacurr.agents.bundle import MANIFEST_SUM, load_bundle, policy_class
from metacurr.agents.equivariant_policy import StageEquivariantPolicy
from metacurr.controllers.base import Controller
from metacurr.envs.observation import LAYOUTS, ObservationSpec
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState
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


def build_equivariant_policy(spec: ObservationSpec, policy_kwargs: dict):
    """Rebuild a `StageEquivariantPolicy` from a bundle's recorded kwargs (no pickle involved)."""
    kw = dict(policy_kwargs)
    act = kw.pop("activation_fn", "tanh")
    if act not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {act!r} in bundle; valid choices: {', '.join(ACTIVATIONS)}")
    obs_space = gym.spaces.Box(-np.inf, np.inf, (spec.size,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (spec.max_stages,), np.float32)
    return StageEquivariantPolicy(obs_space, act_space, lambda _: 0.0, activation_fn=ACTIVATIONS[act], **kw)


class PolicyController(Controller):
    """A learned rebalancing policy as a controller.

    Args:
        policy: an SB3 ``ActorCriticPolicy`` (MlpPolicy) or a `StageEquivariantPolicy`.
        obs_spec: the observation layout it was trained on.
        mapping: the action -> weight mapping it was trained with.
        obs_mean, obs_var, clip_obs, epsilon: the MlpPolicy's observation normaliser (VecNormalize
            statistics); the equivariant policy normalises inside itself and takes none.
        name: label in reports.

    ``last_fallback`` holds the equivariant policy's fallback blend of the last action (0 = its own
    action, 1 = the move back to uniform; always 0 without ``fallback: shrink``).

    For the open-loop ablation (indicators frozen, only progress and weights move) wrap it:
    ``--controllers open-loop:policy:PATH`` (`metacurr.evaluation.masking`).
    """

    name = "policy"

    def __init__(
        self,
        policy,
        obs_spec: ObservationSpec,
        mapping: WeightMapping,
        obs_mean: np.ndarray | None = None,
        obs_var: np.ndarray | None = None,
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
        name: str = "policy",
    ):
        self.policy = policy.eval()
        self.obs_spec = obs_spec
        self.mapping = mapping
        self.name = name
        self.equivariant = hasattr(policy, "deterministic_action")
        self.last_fallback = 0.0
        self.tracker = obs_spec.tracker()
        if self.equivariant:
            return
        if obs_mean is None or obs_var is None:
            raise ConfigError("an MlpPolicy needs its observation normaliser (obs_mean, obs_var)")
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.sqrt(np.asarray(obs_var, dtype=np.float64) + epsilon)
        self.clip_obs = float(clip_obs)
        if self.obs_mean.shape != (obs_spec.size,):
            raise ConfigError(f"normaliser has {self.obs_mean.shape[0]} entries but the observation layout has {obs_spec.size}")

    def check_stages(self, n_stages: int) -> None:
        if not self.equivariant:
            self.obs_spec.check_stages(n_stages)
        elif n_stages < 1:
            raise ConfigError(f"a curriculum needs at least 1 stage, got {n_stages}")

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        self.check_stages(n_stages)
        # The equivariant policy reads any slot count: beyond the trained layout the slots grow with the
        # curriculum; up to it they stay the env's layout, so it acts exactly as in training.
        spec = self.obs_spec.with_max_stages(max(n_stages, self.obs_spec.max_stages)) if self.equivariant else self.obs_spec
        self.tracker = spec.tracker()
        self.tracker.reset()
        self.last_fallback = 0.0
        return super().reset(n_stages, rng)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """The MlpPolicy's input (the equivariant policy normalises inside itself: returned unchanged)."""
        if self.equivariant:  # any stage count: the policy reads the stage slots from the vector's length
            return np.asarray(obs, dtype=np.float32)
        obs = check_observation(obs, self.obs_spec.size, f"{self.obs_spec.max_stages} stage slots, v{self.obs_spec.version}")
        z = (obs - self.obs_mean) / self.obs_std
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for a raw (unnormalised) observation."""
        if self.equivariant:
            action, lam = self.policy.deterministic_action(self.normalize_obs(obs)[None])
            self.last_fallback = float(lam[0])
            return action[0]
        action, _ = self.policy.predict(self.normalize_obs(obs), deterministic=True)
        return np.asarray(action, dtype=np.float64)

    def update(self, state: LearningState) -> np.ndarray:
        if state.n_stages != self.n_stages:
            raise ConfigError(f"state has {state.n_stages} stages, controller was reset for {self.n_stages}")
        a = self.act(self.tracker.build(state))
        self.weights = self.mapping.apply(self.weights, a[: self.n_stages])
        return self.weights.copy()

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-shaped: a raw env observation (padded layout) -> (action, None).

        The action is always the deterministic one (a controller's weights must be reproducible);
        ``deterministic`` is accepted for the SB3 signature only."""
        return self.act(observation), None


def load_bundle_controller(path: str | Path, name: str | None = None) -> PolicyController:
    """Load a bundle folder as a PolicyController (checks manifest, layout and checksums)."""
    path = Path(path)
    man, state_dict, norm = load_bundle(path)
    obs = man.get("observation", {})
    version = obs.get("version") if isinstance(obs, dict) else None
    if version not in LAYOUTS:
        raise ConfigError(f"policy bundle {path}: its observation layout (v{version}) is not one this metacurr builds "
                          f"(v{', v'.join(map(str, LAYOUTS))}); retrain it")
    try:
        spec = ObservationSpec.from_dict(obs)
    except ConfigError as e:
        raise ConfigError(f"policy bundle {path}: {e}") from None
    except (AttributeError, TypeError, ValueError) as e:
        raise ConfigError(f"policy bundle {path}: malformed observation entry in manifest.json ({e})") from None
    if obs.get("feature_names") != spec.feature_names():
        raise ConfigError(
            f"policy bundle {path}: its observation layout (v{version}) does not match this metacurr's layout v{version} "
            f"(globals {list(spec.global_features)}, per-stage {list(spec.stage_features)}); retrain it"
        )
    cls = policy_class(man)
    try:
        kw = dict(man.get("policy_kwargs") or {})
        policy = build_equivariant_policy(spec, kw) if cls == "equivariant" else build_policy(spec.size, spec.max_stages, kw)
        mapping = WeightMapping(**dict(man.get("mapping") or {}))
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"policy bundle {path}: malformed policy_kwargs or mapping in manifest.json ({e})") from None
    try:
        policy.load_state_dict(state_dict)
    except RuntimeError as e:
        raise ConfigError(f"policy bundle {path}: weights do not fit the recorded architecture ({str(e).splitlines()[0]})") from None
    if cls == "equivariant":
        try:
            policy.load_normalizer_state(norm)
        except ConfigError as e:
            raise ConfigError(f"policy bundle {path}: normalizer.npz: {e}") from None
        ctrl = PolicyController(policy, spec, mapping, name=name or f"policy:{path}")
    else:
        ctrl = PolicyController(policy, spec, mapping, norm["mean"], norm["var"], float(norm["clip"]),
                                float(norm["epsilon"]), name=name or f"policy:{path}")
    ctrl.identity = man.get(MANIFEST_SUM)  # which bundle this is: a retrained bundle at the same path differs
    return ctrl


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
