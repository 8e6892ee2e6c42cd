"""The inner trainer: each inner step draws a mini-batch from every stage with non-zero weight and
optimises ``sum_s w_s * L_s``. It knows nothing of controllers, monitors or Gymnasium.

Hot path: all active stages' batches are gathered from one concatenated pool with one index tensor and
go through the model in a single forward pass; per-stage losses are segment means of the per-example
losses. Indices and the gathered batches for a whole control step are drawn at once. Gradients come from
``torch.autograd.grad`` (no ``.grad`` bookkeeping) and the update from `metacurr.optim.FunctionalOptimizer`, which
applies torch.optim's update rules with the same kernels in the same order, so the numbers are the
ones ``torch.optim`` gives, bitwise (``tests/envs/test_batched.py`` checks), at a fraction of its Python
overhead.
Nothing synchronises with the host inside a control step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import TaskSpec
from metacurr.models import StagedModel
from metacurr.optim import (  # re-exported: the trainer's optimiser and its torch.optim defaults
    ADAM_BETAS,
    ADAM_EPS,
    ADAMW_WEIGHT_DECAY,
    SGD_MOMENTUM,
    FunctionalOptimizer,
    clip_grads,
    grad_of,
)
from metacurr.tasks.curriculum import Curriculum


@dataclass
class StepStats:
    """Result of one control step (k inner steps)."""

    train_loss: np.ndarray  # (S,) mean mini-batch loss per stage (NaN for inactive stages)
    total_grad_norm: float
    finite: bool
    params_finite: bool = True  # every parameter finite after the last update


def make_optimizer(spec: TaskSpec, params) -> torch.optim.Optimizer:
    """The torch.optim optimiser of ``spec`` (what `FunctionalOptimizer` reproduces)."""
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=SGD_MOMENTUM)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr)
    return torch.optim.Adam(params, lr=spec.lr)


def cosine_lr(spec: TaskSpec, steps_done: int) -> float:
    """Learning rate after ``steps_done`` inner steps (the spec's schedule)."""
    if spec.lr_schedule == "cosine":
        frac = steps_done / max(1, spec.total_inner_steps)
        return spec.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return spec.lr


__all__ = [
    "ADAM_BETAS", "ADAM_EPS", "ADAMW_WEIGHT_DECAY", "SGD_MOMENTUM", "FunctionalOptimizer", "InnerTrainer", "StepStats",
    "clip_grads", "cosine_lr", "make_optimizer",
]  # fmt: skip


class InnerTrainer:
    """Trains ``model`` on ``curriculum`` with per-stage loss weights.

    Args:
        model: the learner.
        curriculum: stages on the model's device.
        spec: budget, batch size, optimiser, lr, schedule, augmentation, clipping.
        generator: torch generator for mini-batch order and augmentation noise.
    """

    def __init__(self, model: StagedModel, curriculum: Curriculum, spec: TaskSpec, generator: torch.Generator):
        self.model = model
        self.spec = spec
        self.gen = generator
        self.pool_x = torch.cat([x for x, _ in curriculum.stages])
        self.pool_y = torch.cat([y for _, y in curriculum.stages])
        sizes = [len(y) for _, y in curriculum.stages]
        self.device = self.pool_x.device
        self.sizes = torch.tensor(sizes, dtype=torch.float64)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long)
        self.n_stages = len(sizes)
        self.steps_done = 0
        self._params = [p for p in model.parameters() if p.requires_grad]
        self.opt = FunctionalOptimizer(spec.optimizer, self._params, spec.lr)
        model.train()

    def _lr(self) -> float:
        return cosine_lr(self.spec, self.steps_done)

    def run(self, weights: np.ndarray, k: int) -> StepStats:
        """Run ``k`` inner steps with stage weights ``weights`` (shape (S,), non-negative)."""
        w = np.asarray(weights, dtype=np.float64)
        active = np.flatnonzero(w > 0)
        s_act, b = len(active), self.spec.batch_size
        act_t = torch.as_tensor(active, dtype=torch.long)
        w_t = torch.as_tensor(w[active], dtype=torch.float32, device=self.device)
        # Indices for all k steps at once: offset_s + floor(u * n_s), u ~ U[0, 1).
        u = torch.rand(k, s_act, b, generator=self.gen, dtype=torch.float64)
        idx = (self.offsets[act_t].view(1, -1, 1) + (u * self.sizes[act_t].view(1, -1, 1)).long()).to(self.device)
        noise = None
        if self.spec.augment > 0:
            noise = torch.randn((k, s_act * b, *self.pool_x.shape[1:]), generator=self.gen) * self.spec.augment
            noise = noise.to(self.device)
        # One gather for the whole control step: (k, s_act * b, ...).
        flat = idx.reshape(-1)
        xs = self.pool_x[flat].view(k, s_act * b, *self.pool_x.shape[1:])
        ys = self.pool_y[flat].view(k, s_act * b)
        loss_sum = torch.zeros(s_act, device=self.device)
        gnorm = torch.zeros((), device=self.device)
        clip = self.spec.grad_clip if self.spec.grad_clip > 0 else float("inf")
        constant_lr = self.spec.lr_schedule == "constant"
        params, model, opt = tuple(self._params), self.model, self.opt
        for i in range(k):
            x = xs[i]
            if noise is not None:
                x = x + noise[i]
            lr = None if constant_lr else self._lr()
            per_ex = F.cross_entropy(model(x), ys[i], reduction="none")
            per_stage = per_ex.view(s_act, b).mean(1)
            loss = (w_t * per_stage).sum()
            grads = list(grad_of(loss, params))
            if clip != float("inf") or i == k - 1:
                present = [j for j, g in enumerate(grads) if g is not None]
                clipped, gnorm = clip_grads([grads[j] for j in present], clip)
                for j, g in zip(present, clipped):
                    grads[j] = g
            opt.step(grads, lr)
            loss_sum += per_stage.detach()
            self.steps_done += 1
        out = np.full(self.n_stages, np.nan)
        # One device -> host transfer: stage losses, gradient norm, and the parameters' finiteness.
        pabs = torch.stack([p.detach().float().abs().sum() for p in model.parameters()]).sum()
        vals = torch.cat([loss_sum / k, gnorm.reshape(1), pabs.reshape(1)]).cpu().double().numpy()
        out[active] = vals[:-2]
        gn = float(vals[-2])
        finite = bool(np.isfinite(vals[:-1]).all()) and gn < 1e8
        return StepStats(train_loss=out, total_grad_norm=gn, finite=finite, params_finite=bool(np.isfinite(vals[-1])))
