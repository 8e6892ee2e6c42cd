"""The functional optimiser: torch.optim's Adam / AdamW / SGD(momentum 0.9) as plain tensor operations,
for one run's parameters (`FunctionalOptimizer`, used by `metacurr.trainer.InnerTrainer`) and for N runs'
parameters stacked along a leading run dimension (`StackedOptimizer`, used by the batched engine,
`metacurr.batched`); plus the gradient helpers both share (`grad_of`, `clip_grads`, `clip_grads_per_run`).

Both optimisers update with the same functions (`_adam_foreach`, `_sgd_foreach`): torch.optim's
formulas kernel by kernel (the ``foreach`` variant, which on CPU runs the single-tensor kernels per
tensor), so a single run's numbers are torch.optim's bitwise, and so are a stacked run's whenever all
runs share a step count and learning rate (the usual case). Only stacked runs at different step counts
or learning rates (runs reset one by one) take a per-run branch, with the per-run scalars as float32
tensors broadcast over each run's slice (`fused_update` is that branch written for ``torch.compile``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: torch.optim defaults the trainer uses (Adam, AdamW and SGD with momentum 0.9).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
ADAMW_WEIGHT_DECAY = 1e-2
SGD_MOMENTUM = 0.9
KINDS = ("adam", "adamw", "sgd")
#: Largest finite float32: torch refuses a Python scalar beyond it in a float32 op (a RuntimeError).
F32_MAX = 3.4028234663852886e38


def f32_scalar(x: float) -> float:
    """An optimiser scalar clamped to float32's finite range: an absurd lr (1e38 and up) then makes the
    parameters inf and the run diverge -- data, flagged by the monitors -- instead of raising. Values in
    range pass unchanged (same numbers as without the clamp). The per-run branches need no clamp: their
    scalars become float32 tensors, where an overflow is inf, not an error."""
    return max(-F32_MAX, min(F32_MAX, x))


def _adam_foreach(adamw: bool, params: list, exp_avgs: list, exp_avg_sqs: list, grads: list, lr: float, t: float) -> None:
    """One Adam / AdamW update of tensors that share step count ``t`` (already counted) and ``lr``:
    torch.optim's foreach calls, in its order, with its Python-double bias corrections."""
    beta1, beta2 = ADAM_BETAS
    if adamw:
        torch._foreach_mul_(params, f32_scalar(1 - lr * ADAMW_WEIGHT_DECAY))
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, (1 - beta2**t) ** 0.5)
    torch._foreach_add_(denom, ADAM_EPS)
    torch._foreach_addcdiv_(params, exp_avgs, denom, f32_scalar((lr / (1 - beta1**t)) * -1))


def _sgd_foreach(bufs: list, grads: list) -> None:
    """SGD's momentum update of buffers that already hold a gradient (``buf = 0.9 buf + g``)."""
    torch._foreach_mul_(bufs, SGD_MOMENTUM)
    torch._foreach_add_(bufs, grads, alpha=1.0)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown optimizer {kind!r}")


class FunctionalOptimizer:
    """``torch.optim.Adam`` / ``AdamW`` / ``SGD(momentum=0.9)`` as plain tensor ops on a list of tensors.

    The update is torch.optim's, formula by formula and kernel by kernel: Adam's bias corrections are
    computed in Python double from the step count, the denominator is ``sqrt(v) / sqrt(1 - beta2^t) + eps``
    and the step ``addcdiv`` with ``-lr / (1 - beta1^t)``; AdamW first multiplies by
    ``1 - lr * weight_decay``; SGD's momentum buffer starts as a copy of the first gradient. A ``None``
    gradient skips that tensor (its step count does not advance), as in torch.optim.

    Args:
        kind: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        params: the tensors to update in place (leaves; updated under ``no_grad``).
        lr: default learning rate (``step`` can override it, e.g. for a schedule).
    """

    def __init__(self, kind: str, params: Sequence[torch.Tensor], lr: float):
        _check_kind(kind)
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
            t = self.steps[0] + 1  # the common case: every tensor at one step count
            self.steps = [t] * len(self.params)
            _adam_foreach(self.kind == "adamw", self.params, self.exp_avgs, self.exp_avg_sqs, list(grads), lr, float(t))
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
                _sgd_foreach([self.bufs[i] for i in old], [grads[i] for i in old])
            torch._foreach_add_(params, [self.bufs[i] for i in idx], alpha=f32_scalar(-lr))
            return
        # Tensors at different step counts (some had no gradient before): per-tensor bias corrections.
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


class StackedOptimizer:
    """`FunctionalOptimizer` on parameters stacked along a leading run dim: each run has its own step
    count and learning rate (runs are reset individually).

    Where all runs share them (the usual case) the update is `FunctionalOptimizer`'s (the same
    `_adam_foreach` / `_sgd_foreach` calls with Python scalars, bitwise); where they differ, the per-run
    scalars become float32 tensors broadcast over each run's slice (same formulas; SGD's
    ``add_(buf, alpha=-lr)`` then rounds once more). Every operation is element-wise within a run, so a
    non-finite run stays alone.

    Args:
        kind: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        params: stacked tensors, each (N, ...), updated in place.
    """

    def __init__(self, kind: str, params: Sequence[torch.Tensor]):
        _check_kind(kind)
        self.kind = kind
        self.params = list(params)
        self.n = self.params[0].shape[0]
        self.steps = np.zeros(self.n, dtype=np.int64)
        if kind == "sgd":
            self.bufs = [torch.zeros_like(p) for p in self.params]
        else:
            self.exp_avgs = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]

    def reset_runs(self, runs: Sequence[int]) -> None:
        """Forget the state of ``runs`` (a fresh optimiser for a reset run)."""
        idx = torch.as_tensor(list(runs), dtype=torch.long, device=self.params[0].device)
        for s in self.state:
            for t in s:
                t.index_fill_(0, idx, 0.0)
        self.steps[list(runs)] = 0

    def _per_run(self, values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64)).to(dtype=like.dtype, device=like.device)
        return t.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr: np.ndarray) -> None:
        """One update; ``lr``: (N,) learning rate of each run."""
        lr = np.asarray(lr, dtype=np.float64)
        self.steps += 1
        params, gs = self.params, list(grads)
        uniform = bool(np.all(lr == lr[0]) and np.all(self.steps == self.steps[0]))
        if self.kind == "sgd":
            fresh = self.steps == 1
            if fresh.all():
                for b, g in zip(self.bufs, gs):
                    b.copy_(g)
            elif not fresh.any():
                _sgd_foreach(self.bufs, gs)
            else:
                for b, g in zip(self.bufs, gs):
                    mask = self._per_run(fresh, g).bool()
                    b.copy_(torch.where(mask, g, b * SGD_MOMENTUM + g))
            if uniform:
                torch._foreach_add_(params, self.bufs, alpha=f32_scalar(-float(lr[0])))
            else:
                for p, b in zip(params, self.bufs):
                    p.add_(b * self._per_run(-lr, p))
            return
        if uniform:
            _adam_foreach(self.kind == "adamw", params, self.exp_avgs, self.exp_avg_sqs, gs, float(lr[0]), float(self.steps[0]))
            return
        beta1, beta2 = ADAM_BETAS
        t = self.steps.astype(np.float64)
        if self.kind == "adamw":
            decay = 1 - lr * ADAMW_WEIGHT_DECAY
            for p in params:
                p.mul_(self._per_run(decay, p))
        torch._foreach_lerp_(self.exp_avgs, gs, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sqs, beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, gs, gs, 1 - beta2)
        step_size = np.array([(float(lr[i]) / (1 - beta1 ** float(t[i]))) * -1 for i in range(self.n)])
        bc2_sqrt = np.array([(1 - beta2 ** float(t[i])) ** 0.5 for i in range(self.n)])
        for p, m, v in zip(params, self.exp_avgs, self.exp_avg_sqs):
            denom = (v.sqrt() / self._per_run(bc2_sqrt, p)).add_(ADAM_EPS)
            p.addcdiv_(m * self._per_run(step_size, p), denom)

    def fused_scalars(self, lr: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Count ``k`` steps and return the per-run scalars of `fused_update` for each, as (k, N)
        float32 tensors computed in float64 with `step`'s per-run formulas; ``lr``: (k, N) learning
        rates. (step_size, bc2_sqrt, decay) for Adam / AdamW, (-lr, fresh) for SGD. Tensors, not
        Python floats, so a compiled step never recompiles for a new step count or learning rate."""
        lr = np.asarray(lr, dtype=np.float64)
        t = self.steps[None, :] + np.arange(1, lr.shape[0] + 1)[:, None]
        self.steps += lr.shape[0]
        dev = self.params[0].device

        def f32(a):
            return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype=torch.float32, device=dev)

        if self.kind == "sgd":
            return f32(-lr), f32(t == 1)
        beta1, beta2 = ADAM_BETAS
        t = t.astype(np.float64)
        step_size = (lr / (1 - beta1**t)) * -1
        bc2_sqrt = (1 - beta2**t) ** 0.5
        decay = 1 - lr * ADAMW_WEIGHT_DECAY if self.kind == "adamw" else np.ones_like(lr)
        return f32(step_size), f32(bc2_sqrt), f32(decay)

    @property
    def state(self) -> tuple[list[torch.Tensor], ...]:
        return (self.bufs,) if self.kind == "sgd" else (self.exp_avgs, self.exp_avg_sqs)


def fused_update(kind: str, params, state, grads, coef: torch.Tensor | None, scalars) -> None:
    """`StackedOptimizer.step`'s per-run branch on gradients scaled by the per-run clipping ``coef``
    (None: unscaled), written as plain tensor operations (in place on ``params`` and ``state``) so that
    ``torch.compile`` can fuse the whole update into a few loops. ``scalars``: one step's row of
    `StackedOptimizer.fused_scalars`."""

    def per_run(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    if kind == "sgd":
        neg_lr, fresh = scalars
        for p, b, g in zip(params, state[0], grads):
            g = g if coef is None else g * per_run(coef, g)
            b.copy_(torch.where(per_run(fresh, g) > 0, g, b * SGD_MOMENTUM + g))
            p.add_(b * per_run(neg_lr, p))
        return
    beta1, beta2 = ADAM_BETAS
    step_size, bc2_sqrt, decay = scalars
    for p, m, v, g in zip(params, state[0], state[1], grads):
        g = g if coef is None else g * per_run(coef, g)
        if kind == "adamw":
            p.mul_(per_run(decay, p))
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / per_run(bc2_sqrt, p)).add_(ADAM_EPS)
        p.addcdiv_(m * per_run(step_size, p), denom)


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


def clip_grads_per_run(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """`clip_grads` for stacked gradients, each run on its own: (clipped grads, (N,) total norms)."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2.0, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2.0, dim=1)
    coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    return [g * coef.view(-1, *([1] * (g.dim() - 1))) for g in grads], total


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


#: ``grad_of(loss, params)``: the gradients of a scalar loss w.r.t. ``params`` (None where unused).
grad_of = _backward_fn()

__all__ = [
    "ADAM_BETAS", "ADAM_EPS", "ADAMW_WEIGHT_DECAY", "SGD_MOMENTUM", "FunctionalOptimizer", "StackedOptimizer",
    "clip_grads", "clip_grads_per_run", "fused_update", "grad_of",
]  # fmt: skip
