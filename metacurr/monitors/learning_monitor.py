"""Reads the learner's state at control-step boundaries: one forward pass over fixed probe sets.

All stage indicators come from the same forward pass over a fixed probe subset of each stage (plus a
fixed slice of `val`): loss, accuracy, entropy, confidence, calibration, head-gradient norm and variance,
and representation drift against the previous snapshot. The time spent here is accumulated in
``seconds`` so runs can report it as a fraction of their wall time.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import MonitorConfig
from metacurr.models import StagedModel
from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.entropy import entropy_and_confidence
from metacurr.monitors.gradient_variance import head_gradient_stats
from metacurr.monitors.representation_drift import representation_drift
from metacurr.monitors.state import LearningState
from metacurr.tasks.curriculum import Curriculum


class LearningMonitor:
    """Computes a `LearningState` for a model on a curriculum.

    Args:
        curriculum: the curriculum (tensors already on the run's device).
        cfg: monitor settings.
        generator: torch generator fixing the probe subsets.
    """

    def __init__(self, curriculum: Curriculum, cfg: MonitorConfig, generator: torch.Generator):
        self.cfg = cfg
        self.n_stages = curriculum.n_stages
        dev = curriculum.val[0].device
        p = min(cfg.probe_size, min(len(y) for _, y in curriculum.stages))
        xs, ys = [], []
        for x, y in curriculum.stages:
            idx = torch.randperm(len(y), generator=generator)[:p].to(dev)
            xs.append(x[idx])
            ys.append(y[idx])
        nv = min(cfg.val_size, len(curriculum.val[1]))
        vidx = torch.randperm(len(curriculum.val[1]), generator=generator)[:nv].to(dev)
        self.probe_size = p
        # One concatenated batch: every stage's probe then the val slice, so one forward pass serves all.
        self.x = torch.cat(xs + [curriculum.val[0][vidx]])
        self.y_stage = torch.stack(ys)  # (S, P)
        self.y_val = curriculum.val[1][vidx]
        self.prev_feats: torch.Tensor | None = None
        self.prev: LearningState | None = None
        self.seconds = 0.0

    @torch.no_grad()
    def measure(
        self,
        model: StagedModel,
        step: int,
        progress: float,
        weights: np.ndarray,
        train_loss: np.ndarray,
        total_grad_norm: float,
    ) -> LearningState:
        """Run the probe forward pass and assemble the state."""
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        logits, feats = model.forward_with_features(self.x)
        model.train(was_training)
        s, p = self.n_stages, self.probe_size
        n = s * p
        sl = logits[:n].reshape(s, p, -1).float()
        sf = feats[:n].reshape(s, p, -1).float()
        logp = torch.log_softmax(sl, -1)
        probs = logp.exp()
        loss = -logp.gather(2, self.y_stage[..., None]).squeeze(-1).mean(1)
        acc = (sl.argmax(-1) == self.y_stage).float().mean(1)
        ent, conf = entropy_and_confidence(sl)
        ece = expected_calibration_error(probs, self.y_stage, self.cfg.ece_bins)
        gnorm, gvar = head_gradient_stats(probs, self.y_stage, sf, self.cfg.micro_batches)
        drift = representation_drift(self.prev_feats, sf)
        self.prev_feats = sf
        vl = logits[n:].float()
        val_loss = F.cross_entropy(vl, self.y_val)
        val_acc = (vl.argmax(-1) == self.y_val).float().mean()
        # One device -> host transfer for everything.
        packed = torch.cat([torch.stack([loss, acc, ent, conf, gnorm, gvar, drift, ece]).flatten(), torch.stack([val_loss, val_acc])])
        packed = packed.cpu().double().numpy()
        vals = packed[8 * s :]
        packed = packed[: 8 * s].reshape(8, s)
        loss_n, acc_n, ent_n, conf_n, gnorm_n, gvar_n, drift_n, ece_n = packed
        prev = self.prev
        state = LearningState(
            step=step,
            n_stages=s,
            stage={
                "weight": np.asarray(weights, dtype=np.float64).copy(),
                "train_loss": np.asarray(train_loss, dtype=np.float64),
                "loss": loss_n,
                "acc": acc_n,
                "entropy": ent_n,
                "confidence": conf_n,
                "grad_norm": gnorm_n,
                "grad_var": gvar_n,
                "drift": drift_n,
                "ece": ece_n,
                "d_loss": np.zeros(s) if prev is None else loss_n - prev.stage["loss"],
                "d_entropy": np.zeros(s) if prev is None else ent_n - prev.stage["entropy"],
            },
            glob={
                "progress": float(progress),
                "val_loss": float(vals[0]),
                "val_acc": float(vals[1]),
                "d_val_loss": 0.0 if prev is None else float(vals[0]) - prev.glob["val_loss"],
                "total_grad_norm": float(total_grad_norm),
            },
        )
        _sanitize(state)
        self.prev = state
        self.seconds += time.perf_counter() - t0
        return state


def _sanitize(state: LearningState) -> None:
    """Replace non-finite indicators (a diverged model) by large finite values so observers stay finite."""
    for k, v in state.stage.items():
        state.stage[k] = np.nan_to_num(v, nan=0.0, posinf=1e6, neginf=-1e6)
    for k, v in state.glob.items():
        state.glob[k] = float(np.nan_to_num(v, nan=1e6 if "loss" in k else 0.0, posinf=1e6, neginf=-1e6))
