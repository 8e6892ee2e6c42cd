"""The environment's observation layout, shared by the env and the `PolicyController`.

A policy must serve curricula of 2-8 stages, so observations are **padded to ``max_stages`` with a
mask**: ``[globals, stage_0 features, ..., stage_{max-1} features, mask]``. Stage slots beyond the
curriculum's stage count are zeros with mask 0, and the matching action entries are ignored. Stage
slots keep curriculum order (slot 0 = easiest), which is what a stage's position means to a policy.

Two layouts exist (``version``):

* **2** (absolute indicators): the `LearningState` as it is; indicators whose scale spans orders of
  magnitude across tasks (gradient norms and variances) enter as ``log1p``.
* **3** (the run relative to itself, `metacurr.envs.relative_observation`): scale-free per-stage and
  global features (against the other stages, against the run's start, short trends), so architectures
  and data sets with different absolute scales look alike to a policy. Building a row needs the run's
  history: observations come from ``spec.tracker()``, one tracker per run.

Everything is clipped to ``[-clip, clip]`` so a diverging learner never produces inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from metacurr.envs.relative_observation import GLOBAL_FEATURES_V3, STAGE_FEATURES_V3, RelativeTracker
from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState

#: Indicators that enter the observation as log1p(x) (layout 2).
LOG_FEATURES = ("grad_norm", "grad_var", "total_grad_norm")

#: Layout versions this metacurr builds: version -> (global feature names, per-stage feature names).
LAYOUTS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    2: (GLOBAL_FEATURES, STAGE_FEATURES),
    3: (GLOBAL_FEATURES_V3, STAGE_FEATURES_V3),
}


@dataclass(frozen=True)
class ObservationSpec:
    """Observation layout.

    Attributes:
        max_stages: stage slots (a policy serves curricula with up to this many stages).
        clip: observations are clipped to [-clip, clip].
        version: the layout (2: absolute indicators, 3: relative to the run; see the module docstring).
            Bundles record it.
        hidden: indicator names (per-stage or global) whose entries are always 0: the policy is blind
            to them (feature ablations, e.g. ``["grad_align"]``); the layout keeps its size.
        window: layout 3 only: control steps its trends look back over.
    """

    max_stages: int = 8
    clip: float = 1e4
    version: int = 2
    hidden: tuple[str, ...] = ()
    window: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.max_stages, int) and 1 <= self.max_stages <= 64):
            raise ConfigError(f"max_stages must be an integer in [1, 64], got {self.max_stages!r}")
        if isinstance(self.version, bool) or self.version not in LAYOUTS:
            raise ConfigError(f"unknown observation layout version {self.version!r}; valid choices: {', '.join(map(str, LAYOUTS))}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"observation window must be a positive integer, got {self.window!r}")
        if isinstance(self.hidden, str) or not all(isinstance(h, str) for h in self.hidden):
            raise ConfigError(f"hidden features must be a list of names, got {self.hidden!r}")
        valid = list(self.global_features) + [f for f in self.stage_features if f not in self.global_features]
        for h in self.hidden:
            if h not in valid:
                raise ConfigError(f"unknown observation feature {h!r} to hide; valid choices: {', '.join(valid)} "
                                  f"(layout v{self.version})")
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def global_features(self) -> tuple[str, ...]:
        """Global feature names of this layout, in vector order."""
        return LAYOUTS[self.version][0]

    @property
    def stage_features(self) -> tuple[str, ...]:
        """Per-stage feature names of this layout, in vector order."""
        return LAYOUTS[self.version][1]

    @property
    def size(self) -> int:
        return len(self.global_features) + self.max_stages * (len(self.stage_features) + 1)

    def feature_names(self) -> list[str]:
        """Names of every observation entry, in order."""
        names = list(self.global_features)
        names += [f"stage{s}/{f}" for s in range(self.max_stages) for f in self.stage_features]
        names += [f"stage{s}/mask" for s in range(self.max_stages)]
        return names

    def with_max_stages(self, max_stages: int) -> ObservationSpec:
        """The same layout with another number of stage slots."""
        return replace(self, max_stages=max_stages)

    def with_version(self, version: int) -> ObservationSpec:
        """The same slots in another layout, with no hidden features."""
        return replace(self, version=version, hidden=())

    def tracker(self) -> ObservationTracker:
        """A per-run observation builder (layout 3 needs the run's history; layout 2 does not)."""
        return ObservationTracker(self)

    def check_stages(self, n_stages: int) -> None:
        if n_stages > self.max_stages:
            raise ConfigError(
                f"curriculum has {n_stages} stages but the observation layout holds at most {self.max_stages}; "
                f"valid choices: 1..{self.max_stages} stages"
            )

    def build(self, state: LearningState) -> np.ndarray:
        """LearningState -> padded float32 observation (one row of `build_batch`); layout 2 only."""
        if self.version != 2:
            raise ConfigError(f"observation layout v{self.version} needs the run's history: build rows with spec.tracker()")
        stage = np.stack([np.asarray(state.stage[k], dtype=np.float64) for k in STAGE_FEATURES], axis=1)
        glob = np.array([state.glob[k] for k in GLOBAL_FEATURES], dtype=np.float64)
        return self.build_batch(stage[None], glob[None])[0]

    def build_batch(self, stage: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Observations for N states at once, from arrays: ``stage`` (N, n_stages, len(STAGE_FEATURES))
        and ``glob`` (N, len(GLOBAL_FEATURES)), both in feature order and already sanitised as
        `LearningState` holds them. Layout 2 only (layout 3 rows come from `tracker`)."""
        if self.version != 2:
            raise ConfigError(f"observation layout v{self.version} needs the run's history: build rows with spec.tracker()")
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

    def unpad(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of `pad` for one row: (per-stage (n, F) of the real stages, globals (G,))."""
        g, f, m = len(self.global_features), len(self.stage_features), self.max_stages
        row = np.asarray(row, dtype=np.float64)
        n = int(round(row[g + m * f:].sum()))
        return row[g:g + m * f].reshape(m, f)[:n], row[:g]

    def pad(self, stage: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """Already-computed feature rows (n_stages, F) and (G,) -> one padded, masked, clipped row."""
        n = stage.shape[0]
        self.check_stages(n)
        per = np.zeros((self.max_stages, len(self.stage_features)))
        per[:n] = stage
        g = np.array(glob, dtype=np.float64)
        for i, k in enumerate(self.global_features):
            if k in self.hidden:
                g[i] = 0.0
        for i, k in enumerate(self.stage_features):
            if k in self.hidden:
                per[:, i] = 0.0
        mask = np.zeros(self.max_stages)
        mask[:n] = 1.0
        obs = np.concatenate([g, per.reshape(-1), mask])
        return np.clip(np.nan_to_num(obs, nan=0.0), -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden), "feature_names": self.feature_names()}

    @classmethod
    def from_dict(cls, data: dict) -> ObservationSpec:
        """Inverse of `to_dict` (``feature_names`` is derived, not read); bundles record layouts this way.
        ``window`` is absent from layout-2 records and defaults."""
        return cls(max_stages=int(data.get("max_stages", 0)), clip=float(data.get("clip", 1e4)),
                   version=int(data.get("version", 0)), hidden=tuple(data.get("hidden") or ()),
                   window=int(data.get("window", 3)))


class ObservationTracker:
    """Builds one run's observations with a layout; `reset` at the start of every run.

    Layout 2 rows depend on the current state alone; layout 3 rows on the run's history as well
    (`RelativeTracker`).
    """

    def __init__(self, spec: ObservationSpec):
        self.spec = spec
        self.relative = RelativeTracker(spec.window) if spec.version == 3 else None
        self.v2 = spec.with_version(2)

    def reset(self) -> None:
        if self.relative is not None:
            self.relative.reset()

    def build(self, state: LearningState) -> np.ndarray:
        """The observation of ``state`` (the first state after `reset` is the run's start)."""
        if self.relative is None:
            return self.spec.build(state)
        stage, glob = self.v2.unpad(self.v2.build(state))
        return self.spec.pad(*self.relative.features(stage, glob))
