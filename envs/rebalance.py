"""``metacurr/Rebalance-v0``: one episode = one inner training run; one step = one control step.

* Observation: the learner's `LearningState`, padded to ``max_stages`` with a mask (`ObservationSpec`;
  layout ``observation_version`` 2 = absolute indicators, 3 = relative to the run itself);
  ``env.feature_names`` names every entry.
* Action: ``Box(-1, 1, (max_stages,))``, mapped to stage weights by the shared `WeightMapping`
  (multiplicative log-space move, EMA smoothing, step bound, floor). Entries beyond the curriculum's
  stage count are ignored. ``max_stages`` defaults to the task's stage count.
* Reward: potential-based improvement of the target objective on ``val``: with ``reward="val_loss"``
  r_t = L_val(t-1) - L_val(t), so the undiscounted return equals L_val(0) - L_val(T), the end-to-end
  improvement (``"val_acc"``: accuracy gain). The ``shift`` set never enters the reward.
* Divergence (NaN / inf loss, exploding gradients): the episode terminates with reward
  ``-divergence_penalty`` and ``info["diverged"] = True``, never an exception.
* Episodes are truncated at the task's control-step budget (progress is in the observation).
* ``reset(seed=..., options={"task": ...})``: the task is built deterministically from the env's
  ``np_random``: sampled from the training distribution, or the given task (a TaskSpec, a mapping of
  TaskSpec fields or a family name) with its own seed if it names one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metacurr.config import MonitorConfig, TaskSpec, check_device, from_dict
from metacurr.envs.observation import ObservationSpec
from metacurr.envs.task_distribution import TRAIN_SEED_MAX, TaskDistribution, get_distribution
from metacurr.envs.worker import guard_forked_torch
from metacurr.errors import ConfigError, choices_error
from metacurr.inner_run import InnerRun
from metacurr.validation import check_action, check_env_kwargs, check_reset_options
from metacurr.weights import WeightMapping, normalize

REWARDS = ("val_loss", "val_acc")


def step_info(max_stages: int, weights: np.ndarray, diverged: bool, val_loss: float, val_acc: float, t: int) -> dict:
    """The ``info`` dict of a step or reset (weights padded to ``max_stages``)."""
    w = np.zeros(max_stages, dtype=np.float32)
    w[: len(weights)] = weights
    return {
        "diverged": bool(diverged),
        "val_loss": float(val_loss),
        "val_acc": float(val_acc),
        "weights": w,
        "n_stages": len(weights),
        "control_step": int(t),
    }


def as_task_spec(task: Any) -> TaskSpec:
    """TaskSpec from a TaskSpec, a mapping of its fields, or a family name."""
    if isinstance(task, TaskSpec):
        return task
    if isinstance(task, str):
        return from_dict(TaskSpec, {"family": task}, "task")
    if isinstance(task, dict):
        return from_dict(TaskSpec, task, "task")
    raise ConfigError(f"task must be a TaskSpec, a mapping or a family name, got {type(task).__name__}")


class RebalanceEnv(gym.Env):
    """Gymnasium environment wrapping one inner training run.

    Args:
        task: a fixed task (TaskSpec, mapping or family name); its seed is redrawn from ``np_random``
            at each reset unless ``fixed_seed`` is set. Mutually exclusive with ``distribution``.
        distribution: name of a training task distribution (`envs.task_distribution.DISTRIBUTIONS`)
            or a `TaskDistribution`; default ``"default"`` when ``task`` is None.
        max_stages: observation / action stage slots (default: the task's or distribution's largest
            stage count).
        control_steps, inner_steps: budget overrides applied to every task.
        monitor: `MonitorConfig` fields.
        mapping: `WeightMapping` fields (eta, smoothing, max_step, floor).
        reward: ``"val_loss"`` or ``"val_acc"``.
        divergence_penalty: reward on the step where the learner diverges.
        fixed_seed: keep the task's own seed at every reset (evaluation on a given (task, seed)).
        device: torch device of the inner run.
        hide_features: indicator names the observation always reports as 0 (`ObservationSpec.hidden`).
        render_mode: Gymnasium's render mode; the env draws nothing, so only None.
        observation_version: observation layout (`ObservationSpec.version`: 2 or 3).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        task: Any = None,
        distribution: str | TaskDistribution | None = None,
        max_stages: int | None = None,
        control_steps: int | None = None,
        inner_steps: int | None = None,
        monitor: dict | None = None,
        mapping: dict | None = None,
        reward: str = "val_loss",
        divergence_penalty: float = 1.0,
        fixed_seed: bool = False,
        device: str = "cpu",
        hide_features: list[str] | tuple[str, ...] = (),
        render_mode: str | None = None,
        observation_version: int = 2,
    ):
        super().__init__()
        guard_forked_torch()
        check_env_kwargs(control_steps, inner_steps, divergence_penalty, render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        if task is not None and distribution is not None:
            raise ConfigError("give either task or distribution, not both")
        if reward not in REWARDS:
            raise choices_error("reward", reward, REWARDS)
        self.budget = {"control_steps": control_steps, "inner_steps": inner_steps}
        self.fixed_task = None if task is None else self._with_budget(as_task_spec(task))
        if self.fixed_task is None:
            dist = distribution if isinstance(distribution, TaskDistribution) else get_distribution(distribution or "default")
            self.distribution = dist.with_budget(**self.budget)
            stage_counts = self.distribution.n_stages
        else:
            self.distribution = None
            stage_counts = (self.fixed_task.n_stages,)
        if isinstance(hide_features, str) or not isinstance(hide_features, (list, tuple)):
            raise ConfigError(f"hide_features must be a list of indicator names, got {hide_features!r}")
        self.obs_spec = ObservationSpec(max_stages=max(stage_counts) if max_stages is None else max_stages,
                                        hidden=tuple(hide_features), version=observation_version)
        self.obs_tracker = self.obs_spec.tracker()
        for n in stage_counts:
            self.obs_spec.check_stages(n)
        self.monitor_cfg = from_dict(MonitorConfig, monitor or {}, "monitor")
        self.mapping = WeightMapping(**(mapping or {}))
        self.reward_kind = reward
        self.divergence_penalty = float(divergence_penalty)
        self.fixed_seed = bool(fixed_seed)
        self.device = check_device(device)
        m = self.obs_spec.max_stages
        self.observation_space = spaces.Box(-self.obs_spec.clip, self.obs_spec.clip, (self.obs_spec.size,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (m,), np.float32)
        self.feature_names = self.obs_spec.feature_names()
        self.run: InnerRun | None = None

    def _with_budget(self, spec: TaskSpec) -> TaskSpec:
        return dataclasses.replace(spec, **{k: v for k, v in self.budget.items() if v is not None})

    def potential(self, val_loss, val_acc):
        """The reward's potential (floats or arrays): r_t = potential_t - potential_{t-1}."""
        return -val_loss if self.reward_kind == "val_loss" else val_acc

    def _potential(self, state) -> float:
        return self.potential(state.glob["val_loss"], state.glob["val_acc"])

    def sample_task(
        self, rng: np.random.Generator, options: dict | None = None, distribution: TaskDistribution | None = None
    ) -> TaskSpec:
        """The task of the next episode, drawn from ``rng`` (the env's ``np_random``; the batched vector
        env passes each slot's): ``options["task"]`` if given (its own seed if it names one), else the
        fixed task with a fresh seed (unless ``fixed_seed``), else a draw from ``distribution`` (default:
        the env's)."""
        options = check_reset_options(options, ("task",))
        if "task" in options:
            spec = self._with_budget(as_task_spec(options["task"]))
            if isinstance(options["task"], dict) and "seed" not in options["task"]:
                spec = dataclasses.replace(spec, seed=int(rng.integers(0, TRAIN_SEED_MAX + 1)))
        elif self.fixed_task is not None:
            spec = self.fixed_task
            if not self.fixed_seed:
                spec = dataclasses.replace(spec, seed=int(rng.integers(0, TRAIN_SEED_MAX + 1)))
        else:
            spec = (distribution or self.distribution).sample(rng)
        self.obs_spec.check_stages(spec.n_stages)
        return spec

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        guard_forked_torch()  # an env built before a fork, reset in the child
        spec = self.task_spec = self.sample_task(self.np_random, options)
        self.run = InnerRun(spec, self.monitor_cfg, device=self.device)
        state = self.run.reset()  # uniform weights
        self._phi = self._potential(state)
        self.start_val_loss = state.glob["val_loss"]
        self.obs_tracker.reset()
        return self.obs_tracker.build(state), self._info(state)

    def _info(self, state) -> dict:
        return step_info(self.obs_spec.max_stages, self.run.weights, self.run.diverged, state.glob["val_loss"],
                         state.glob["val_acc"], self.run.t)

    @property
    def weights(self) -> np.ndarray | None:
        """The stage weights in force (the run's; None before the first reset)."""
        return None if self.run is None else self.run.weights

    def step(self, action):
        if self.run is None:
            raise RuntimeError("call reset() before step()")
        n = self.run.n_stages
        action = check_action(action, self.obs_spec.max_stages)  # slots beyond the curriculum's stages are ignored
        state = self.run.step(self.mapping.apply(self.run.weights, action[:n]))
        if self.run.diverged:
            reward = -self.divergence_penalty
            terminated, truncated = True, False
        else:
            phi = self._potential(state)
            reward = phi - self._phi
            self._phi = phi
            terminated, truncated = False, self.run.done
        info = self._info(state)
        if terminated or truncated:
            info["episode_improvement"] = float(self.start_val_loss - state.glob["val_loss"]) if not self.run.diverged else None
        return self.obs_tracker.build(state), float(reward), terminated, truncated, info

    def current_weights(self) -> np.ndarray:
        return normalize(self.weights) if self.weights is not None else None
