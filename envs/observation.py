"""The environment's observation layout, shared by the env and the `PolicyController`.

A policy must serve curricula of 2-8 stages, so observations are **padded to ``max_stages`` with a
mask**: ``[globals, stage_0 features, ..., stage_{max-1} features, mask]``. Stage slots beyond the
curriculum's stage count are zeros with mask 0, and the matching action entries are ignored. Stage
slots keep curriculum order (slot 0 = easiest), which is what a stage's position means to a policy.

Indicators whose scale spans orders of magnitude across tasks (gradient norms and variances) enter as
``log1p``; everything is clipped to ``[-clip, clip]`` so a diverging learner never produces inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState

#: Indicators that enter the observation as log1p(x).
LOG_FEATURES = ("grad_norm", "grad_var", "total_grad_norm")


@dataclass(frozen=True)
class ObservationSpec:
    """Observation layout.

    Attributes:
        max_stages: stage slots (a policy serves curricula with up to this many stages).
        clip: observations are clipped to [-clip, clip].
        version: bump when the meaning of the vector changes (bundles record it).
        hidden: indicator names (per-stage or global) whose entries are always 0: the policy is blind
            to them (feature ablations, e.g. ``["grad_align"]``); the layout keeps its size.
    """

    max_stages: int = 8
    clip: float = 1e4
    version: int = 2
    hidden: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.max_stages, int) and 1 <= self.max_stages <= 64):
            raise ConfigError(f"max_stages must be an integer in [1, 64], got {self.max_stages!r}")
        if isinstance(self.hidden, str) or not all(isinstance(h, str) for h in self.hidden):
            raise ConfigError(f"hidden features must be a list of names, got {self.hidden!r}")
        valid = list(GLOBAL_FEATURES) + [f for f in STAGE_FEATURES if f not in GLOBAL_FEATURES]
        for h in self.hidden:
            if h not in valid:
                raise ConfigError(f"unknown observation feature {h!r} to hide; valid choices: {', '.join(valid)}")
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def size(self) -> int:
        return len(GLOBAL_FEATURES) + self.max_stages * (len(STAGE_FEATURES) + 1)

    def feature_names(self) -> list[str]:
        """Names of every observation entry, in order."""
        names = list(GLOBAL_FEATURES)
        names += [f"stage{s}/{f}" for s in range(self.max_stages) for f in STAGE_FEATURES]
        names += [f"stage{s}/mask" for s in range(self.max_stages)]
        return names

    def check_stages(self, n_stages: int) -> None:
        if n_stages > self.max_stages:
            raise ConfigError(
                f"curriculum has {n_stages} stages but the observation layout holds at most {self.max_stages}; "
                f"valid choices: 1..{self.max_stages} stages"
            )

    def build(self, state: LearningState) -> np.ndarray:
        """LearningState -> padded float32 observation (one row of `build_batch`)."""
        stage = np.stack([np.asarray(state.stage[k], dtype=np.float64) for k in STAGE_FEATURES], axis=1)
        glob = np.array([state.glob[k] for k in GLOBAL_FEATURES], dtype=np.float64)
        return self.build_batch(stage[None], glob[None])[0]

    def build_batch(self, stage: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Observations for N states at once, from arrays: ``stage`` (N, n_stages, len(STAGE_FEATURES))
        and ``glob`` (N, len(GLOBAL_FEATURES)), both in feature order and already sanitised as
        `LearningState` holds them."""
        stage = np.asarray(stage, dtype=np.float64)
        glob = np.asarray(glob, dtype=np.float64)
        n_rows, n, _ = stage.shape
        self.check_stages(n)
        g = glob.copy()
        for i, k in enumerate(GLOBAL_FEATURES):
            if k in LOG_FEATURES:
                g[:, i] = np.log1p(np.maximum(glob[:, i], 0.0))
        per = np.zeros((n_rows, self.max_stages, len(STAGE_FEATURES)))
        per[:, :n] = stage
        for i, k in enumerate(STAGE_FEATURES):
            if k in LOG_FEATURES:
                per[:, :n, i] = np.log1p(np.maximum(stage[:, :, i], 0.0))
        for i, k in enumerate(GLOBAL_FEATURES):
            if k in self.hidden:
                g[:, i] = 0.0
        for i, k in enumerate(STAGE_FEATURES):
            if k in self.hidden:
                per[:, :, i] = 0.0
        mask = np.zeros((n_rows, self.max_stages))
        mask[:, :n] = 1.0
        obs = np.concatenate([g, per.reshape(n_rows, -1), mask], axis=1)
        return np.clip(np.nan_to_num(obs, nan=0.0), -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden), "feature_names": self.feature_names()}
