"""The inner trainer: each inner step draws a mini-batch from every stage with non-zero weight and
optimises ``sum_s w_s * L_s``. It knows nothing of controllers, monitors or Gymnasium.

Hot path: all active stages' batches are gathered from one concatenated pool with one index tensor and
go through the model in a single forward pass; per-stage losses are segment means of the per-example
losses. Indices and the gathered batches for a whole control step are drawn at once. Gradients come from
``torch.autograd.grad`` (no ``.grad`` bookkeeping) and the update from `FunctionalOptimizer`, which
applies torch.optim's update rules with the same kernels in the same order, so the numbers are the
ones ``torch.optim`` gives, bitwise (``tests/envs/test_batched.py`` checks), at a fraction of its Python
overhead.
Nothing synchronises with the host inside a control step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import TaskSpec
from metacurr.models import StagedModel
from metacurr.tasks.curriculum import Curriculum

#: torch.optim defaults the trainer uses (Adam, AdamW and SGD with momentum 0.9).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
ADAMW_WEIGHT_DECAY = 1e-2
SGD_MOMENTUM = 0.9


@dataclass
class StepStats:
    """Result of one control step (k inner steps)."""

    train_loss: np.ndarray  # (S,) mean mini-batch loss per stage (NaN for inactive stages)
    total_grad_norm: float
    finite: bool
    params_finite: bool = True  # every parameter finite after the last update


#: Largest finite float32: torch refuses a Python scalar beyond it in a float32 op (a RuntimeError).
F32_MAX = 3.4028234663852886e38


def f32_scalar(x: float) -> float:
    """An optimiser scalar clamped to float32's finite range: an absurd lr (1e38 and up) then makes the
    parameters inf and the run diverge -- data, flagged by the monitors -- instead of raising. Values in
    range pass unchanged (same numbers as without the clamp)."""
    return max(-F32_MAX, min(F32_MAX, x))


def make_optimizer(spec: TaskSpec, params) -> torch.optim.Optimizer:
    """The torch.optim optimiser of ``spec`` (what `FunctionalOptimizer` reproduces)."""
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=SGD_MOMENTUM)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr)
    return torch.optim.Adam(params, lr=spec.lr)


class FunctionalOptimizer:
    """``torch.optim.Adam`` / ``AdamW`` / ``SGD(momentum=0.9)`` as plain tensor ops on a list of tensors.

    The update is torch.optim's, formula by formula and kernel by kernel (the ``foreach`` variant,
    which on CPU runs the single-tensor kernels per tensor): Adam's bias corrections are computed in
    Python double from the step count, the denominator is ``sqrt(v) / sqrt(1 - beta2^t) + eps`` and the
    step ``addcdiv`` with ``-lr / (1 - beta1^t)``; AdamW first multiplies by ``1 - lr * weight_decay``;
    SGD's momentum buffer starts as a copy of the first gradient. A ``None`` gradient skips that tensor
    (its step count does not advance), as in torch.optim.

    Args:
        kind: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        params: the tensors to update in place (leaves; updated under ``no_grad``).
        lr: default learning rate (``step`` can override it, e.g. for a schedule).
    """

    def __init__(self, kind: str, params: Sequence[torch.Tensor], lr: float):
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.params = list(params)
        self.lr = float(lr)
        self.steps = [0] * len(self.params)
        if kind == "sgd":
            self.bufs: list[torch.Tensor | None] = [None] * len(self.params)
        else:
            self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def step(self, grads: Sequence[torch.Tensor | None], lr: float | None = None) -> None:
        """One update with ``grads`` (aligned with ``params``; None = no gradient), under no_grad."""
        prev = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # torch.no_grad() without its per-call context object
        try:
            self._step(grads, self.lr if lr is None else float(lr))
        finally:
            torch._C._set_grad_enabled(prev)

    def _step(self, grads: Sequence[torch.Tensor | None], lr: float) -> None:
        if self.kind != "sgd" and all(g is not None for g in grads) and len(set(self.steps)) == 1:
            self._step_all(list(grads), lr)  # the common case, with less list building
            return
        idx = [i for i, g in enumerate(grads) if g is not None]
        if not idx:
            return
        params = [self.params[i] for i in idx]
        gs = [grads[i] for i in idx]
        for i in idx:
            self.steps[i] += 1
        if self.kind == "sgd":
            fresh = [i for i in idx if self.bufs[i] is None]
            old = [i for i in idx if self.bufs[i] is not None]
            for i in fresh:
                self.bufs[i] = grads[i].detach().clone()
            if old:
                bufs = [self.bufs[i] for i in old]
                torch._foreach_mul_(bufs, SGD_MOMENTUM)
                torch._foreach_add_(bufs, [grads[i] for i in old], alpha=1.0)
            torch._foreach_add_(params, [self.bufs[i] for i in idx], alpha=f32_scalar(-lr))
            return
        beta1, beta2 = ADAM_BETAS
        if self.kind == "adamw":
            torch._foreach_mul_(params, f32_scalar(1 - lr * ADAMW_WEIGHT_DECAY))
        exp_avgs = [self.exp_avgs[i] for i in idx]
        exp_avg_sqs = [self.exp_avg_sqs[i] for i in idx]
        torch._foreach_lerp_(exp_avgs, gs, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, gs, gs, 1 - beta2)
        steps = [float(self.steps[i]) for i in idx]
        step_size = [f32_scalar((lr / (1 - beta1**t)) * -1) for t in steps]
        bc2_sqrt = [(1 - beta2**t) ** 0.5 for t in steps]
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, ADAM_EPS)
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)

    def _step_all(self, gs: list[torch.Tensor], lr: float) -> None:
        """Adam / AdamW with every tensor at the same step count: the same calls as below."""
        beta1, beta2 = ADAM_BETAS
        params = self.params
        if self.kind == "adamw":
            torch._foreach_mul_(params, f32_scalar(1 - lr * ADAMW_WEIGHT_DECAY))
        torch._foreach_lerp_(self.exp_avgs, gs, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sqs, beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, gs, gs, 1 - beta2)
        t = self.steps[0] + 1
        self.steps = [t] * len(params)
        t = float(t)
        denom = torch._foreach_sqrt(self.exp_avg_sqs)
        torch._foreach_div_(denom, (1 - beta2**t) ** 0.5)
        torch._foreach_add_(denom, ADAM_EPS)
        torch._foreach_addcdiv_(params, self.exp_avgs, denom, f32_scalar((lr / (1 - beta1**t)) * -1))


def clip_grads(grads: Sequence[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``torch.nn.utils.clip_grad_norm_`` on a list of gradients, out of place: (clipped grads, total norm).

    Same computation as torch's (foreach norms, the norm of their stack, coefficient
    ``min(max_norm / (norm + 1e-6), 1)`` as a tensor); ``max_norm=inf`` only measures the norm.
    Out of place because gradients returned by ``autograd.grad`` may alias one another.
    """
    norms = torch._foreach_norm(list(grads), 2.0)
    total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    clip_coef = float(max_norm) / (total + 1e-6)
    coef = torch.clamp(clip_coef, max=1.0)
    return list(torch._foreach_mul(list(grads), coef)), total


def _backward_fn():
    """``grads = f(loss, params)``: ``torch.autograd.grad(loss, params, allow_unused=True)`` for a scalar
    loss, calling the autograd engine directly (the public wrapper's argument handling costs ~10% of a
    small model's inner step). Same engine call, same gradients."""
    engine = getattr(getattr(torch.autograd, "Variable", None), "_execution_engine", None)
    if engine is None or not hasattr(engine, "run_backward"):  # pragma: no cover - other torch builds
        return lambda loss, params: torch.autograd.grad(loss, params, allow_unused=True)

    def grad(loss: torch.Tensor, params: tuple[torch.Tensor, ...]):
        one = torch.ones_like(loss, memory_format=torch.preserve_format)
        return engine.run_backward((loss,), (one,), False, False, params, True, False)

    return grad


_grad = _backward_fn()


def cosine_lr(spec: TaskSpec, steps_done: int) -> float:
    """Learning rate after ``steps_done`` inner steps (the spec's schedule)."""
    if spec.lr_schedule == "cosine":
        frac = steps_done / max(1, spec.total_inner_steps)
        return spec.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return spec.lr


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
            grads = list(_grad(loss, params))
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
