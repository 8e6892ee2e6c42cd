"""`LearningState`: what the learner looks like at a control-step boundary, with a fixed named layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Per-stage indicators, in vector order.
STAGE_FEATURES: tuple[str, ...] = (
    "weight",  # weight the stage had during the last control step
    "train_loss",  # mean mini-batch loss of the stage during the last control step
    "loss",  # probe-set loss
    "acc",  # probe-set accuracy
    "entropy",  # mean normalised prediction entropy on the probe set (1 = uniform)
    "confidence",  # mean max-probability on the probe set
    "grad_norm",  # norm of the stage's mean head gradient
    "grad_var",  # variance of micro-batch head gradients
    "drift",  # 1 - linear CKA of probe features since the last control step
    "ece",  # expected calibration error on the probe set
    "grad_align",  # cosine of the stage's mean head gradient with the val set's (< 0: the stage works against val)
    "d_loss",  # change of probe loss since the last control step
    "d_entropy",  # change of entropy since the last control step
)

#: Global indicators, in vector order.
GLOBAL_FEATURES: tuple[str, ...] = (
    "progress",  # fraction of the control budget used, in [0, 1]
    "val_loss",
    "val_acc",
    "d_val_loss",  # change of val loss since the last control step
    "total_grad_norm",  # norm of the full-model gradient at the last inner step
)


def feature_names(n_stages: int) -> list[str]:
    """Names of `LearningState.to_vector` entries: globals first, then stage-major per-stage features."""
    return list(GLOBAL_FEATURES) + [f"stage{s}/{f}" for s in range(n_stages) for f in STAGE_FEATURES]


@dataclass
class LearningState:
    """Indicators at one control-step boundary.

    Attributes:
        step: control steps completed.
        n_stages: number of stages.
        stage: per-stage indicators, each an array of shape (n_stages,), keys = STAGE_FEATURES.
        glob: global indicators, keys = GLOBAL_FEATURES.
    """

    step: int
    n_stages: int
    stage: dict[str, np.ndarray] = field(default_factory=dict)
    glob: dict[str, float] = field(default_factory=dict)

    def to_vector(self) -> np.ndarray:
        """Float32 vector in `feature_names(n_stages)` order."""
        g = np.array([self.glob[k] for k in GLOBAL_FEATURES], dtype=np.float64)
        s = np.stack([np.asarray(self.stage[k], dtype=np.float64) for k in STAGE_FEATURES], axis=1)
        return np.concatenate([g, s.reshape(-1)]).astype(np.float32)

    @classmethod
    def from_vector(cls, vec: np.ndarray, n_stages: int, step: int = 0) -> LearningState:
        """Inverse of `to_vector` (used by tests and by controllers fed from recorded metrics)."""
        vec = np.asarray(vec, dtype=np.float64)
        ng = len(GLOBAL_FEATURES)
        if vec.shape != (ng + n_stages * len(STAGE_FEATURES),):
            raise ValueError(f"vector of shape {vec.shape} does not fit {n_stages} stages")
        per = vec[ng:].reshape(n_stages, len(STAGE_FEATURES))
        return cls(
            step=step,
            n_stages=n_stages,
            stage={k: per[:, i].copy() for i, k in enumerate(STAGE_FEATURES)},
            glob={k: float(vec[i]) for i, k in enumerate(GLOBAL_FEATURES)},
        )

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.stage["weight"], dtype=np.float64)

    def as_row(self) -> dict:
        """Flat, JSON-serialisable dict with metric prefixes (monitor/, inner/, curriculum/)."""
        row: dict = {"step": self.step}
        for k in GLOBAL_FEATURES:
            row[f"inner/{k}"] = float(self.glob[k])
        for k in STAGE_FEATURES:
            for s in range(self.n_stages):
                v = float(self.stage[k][s])
                key = f"curriculum/w_stage{s}" if k == "weight" else f"monitor/stage{s}/{k}"
                row[key] = v
        return row
