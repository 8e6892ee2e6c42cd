"""`BatchedRebalanceVecEnv`: N `RebalanceEnv` episodes trained as one batched torch program.

An SB3 `VecEnv` whose N slots are N independent inner training runs of **one** task family,
architecture and stage count. Instead of N models stepped one after the other (or N processes), the
N models' parameters are stacked (``torch.func.stack_module_state``); the forward pass runs through
``torch.vmap(torch.func.functional_call)`` (MLP: batched matmuls written out, in a layout that suits
CPU kernels; GRU: the GRU cell unrolled with batched matmuls, since ``aten::gru`` has no vmap rule);
gradients come from one backward pass over the sum of the N losses (runs share no parameters, so
each run's gradient is its own); and `StackedOptimizer`, a functional Adam / AdamW / SGD(momentum 0.9)
with torch.optim's formulas, updates the stacked parameters. The monitors run `LearningMonitor`'s code
(`probe_indicators`) on a flattened N*S stage dimension; observations, rewards and the weight mapping
are computed for all runs at once with the same element-wise operations as the single env.

Every slot is what a `RebalanceEnv` would be with the same seed:

* its own ``np_random`` (SB3 ``seed(s)`` gives slot i the seed ``s + i``, as `DummyVecEnv` does),
  from which its tasks are sampled exactly as `RebalanceEnv.reset` samples them;
* its own curriculum, model initialisation (``derive_seeds(seed)["model"]``), mini-batch order (a
  torch generator seeded with ``derive_seeds(seed)["order"]`` that draws the same
  ``torch.rand(k, S, b, dtype=float64)`` per control step as `InnerTrainer`), probe subsets (same
  generator use as `LearningMonitor`), stage weights (the shared `WeightMapping`), step counts,
  learning-rate schedule and optimiser state.

So slot i reproduces ``RebalanceEnv`` with the same task seed and actions, up to float rounding of the
batched kernels (``tests/envs/test_batched.py`` checks observations and rewards at rtol 1e-4),
**provided every stage weight is > 0**. `InnerTrainer` skips zero-weight stages (no mini-batch is drawn
for them, which changes how much of the order generator a step consumes); the batched trainer always
draws every stage and multiplies its loss by its weight (a zero weight gives a zero gradient, and the
stage's train loss is reported as in the single env). The env's `WeightMapping` floor keeps every
weight > 0, so inside the env the condition always holds.

One architecture per batch: the first task sampled by slot 0 at an explicit ``reset()`` fixes
(family, arch, n_stages); every slot then samples the task distribution restricted to that triple
(difficulty parameters and seeds still vary). A task given explicitly (``options={"task": ...}``)
that differs in family, arch or stage count is a ``ConfigError``, as are curricula whose stage sizes
differ between runs, and ``norm: true`` (batch normalisation keeps running statistics in buffers,
which the batched forward does not carry; use `RebalanceEnv`). Models without batch norm and with
dropout 0 compute the same function in train and eval mode, so the probes run in train mode (this
keeps ``nn.TransformerEncoderLayer`` off its inference fast path, which has no vmap rule).

Divergence is per run: a run whose loss or parameters become non-finite terminates its episode with
the divergence penalty and is reset on its own, like any finished episode (SB3 auto-reset, with
``info["terminal_observation"]``). Every operation on the stacked tensors is per run (batched matmuls,
element-wise optimiser updates, per-run clipping coefficients), so one run's NaNs never reach another.

Devices: everything follows ``device`` (e.g. ``"cuda"``); generators stay on the CPU as in
`InnerRun`, so a CUDA run draws the same mini-batch order. Threads: on CPU the runs are split into
``threads`` groups stepped by worker threads (see the class docstring and ``benchmarks/README.md``);
`metacurr.envs.sharded.ShardedBatchedVecEnv` splits them over processes instead, which scales better
(no shared GIL). Curricula for auto-resets are built ahead in a background thread (``prefetch``).

``compile=True`` runs each inner step (forward, per-stage loss, gradients, per-run clipping, the
optimiser update; `_fused_inner_step`, `UNROLL` steps per call) and the probe pass (`_fused_measure`)
as ``torch.compile``d programs with ``torch.autograd.grad`` traced into the graph, so the element-wise
passes around the matmuls fuse into a few C++ loops. Per-run step counts and learning rates enter as
tensors (`StackedOptimizer.fused_scalars`), so nothing recompiles during training; a new task shape
compiles once (with a cold inductor cache on 2 cores ~25 s for the default MLP task, ~40 s GRU,
``benchmarks/results/compile-time-2026-11-25.txt``; about 1 s once cached; ``benchmarks/profile_shard.py``
prints it; the first call of each compiled function holds a lock, worker threads share dynamo).
Numbers equal the eager env's up to float rounding (tested), and repeat exactly for a seed. Subsets
of runs (individual resets) are measured eagerly. Measured: faster for MLP, GRU and transformer
tasks, slower for the CNN (``benchmarks/README.md``).

`BatchedRebalanceVectorEnv` adapts the env to the ``gymnasium.vector.VectorEnv`` API.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from metacurr.config import TaskSpec
from metacurr.controllers.mapping import WeightMapping
from metacurr.envs.rebalance import RebalanceEnv, as_task_spec
from metacurr.envs.task_distribution import TRAIN_SEED_MAX, TaskDistribution, task_key
from metacurr.errors import ConfigError
from metacurr.inner_run import derive_seeds
from metacurr.models import build_model
from metacurr.monitors.learning_monitor import assemble_batch, probe_indicators, probe_sets
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState
from metacurr.tasks import build_curriculum
from metacurr.tasks.curriculum import Curriculum
from metacurr.trainer import ADAM_BETAS, ADAM_EPS, ADAMW_WEIGHT_DECAY, SGD_MOMENTUM, _grad, cosine_lr

__all__ = ["BatchedRebalanceVecEnv", "BatchedRebalanceVectorEnv", "StackedOptimizer", "map_weights"]


# --------------------------------------------------------------------------------------------------
# Functional optimiser on stacked parameters
# --------------------------------------------------------------------------------------------------


class StackedOptimizer:
    """torch.optim's Adam / AdamW / SGD(momentum 0.9) on parameters stacked along a leading run dim.

    Each run has its own step count and learning rate (runs are reset individually). Where all runs
    share them (the usual case) the update is `metacurr.trainer.FunctionalOptimizer`'s, i.e.
    torch.optim's kernels with Python scalars, bitwise; where they differ, the per-run scalars become
    float32 tensors broadcast over each run's slice (same formulas; SGD's ``add_(buf, alpha=-lr)`` then
    rounds once more). Every operation is element-wise within a run, so a non-finite run stays alone.

    Args:
        kind: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        params: stacked tensors, each (N, ...), updated in place.
    """

    def __init__(self, kind: str, params: Sequence[torch.Tensor]):
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}")
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
        states = self.bufs if self.kind == "sgd" else self.exp_avgs + self.exp_avg_sqs
        for s in states:
            s.index_fill_(0, idx, 0.0)
        self.steps[list(runs)] = 0

    def _per_run(self, values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64)).to(dtype=like.dtype, device=like.device)
        return t.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr: np.ndarray) -> None:
        """One update; ``lr``: (N,) learning rate of each run."""
        from metacurr.trainer import f32_scalar  # an overflowing lr diverges instead of raising

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
                torch._foreach_mul_(self.bufs, SGD_MOMENTUM)
                torch._foreach_add_(self.bufs, gs, alpha=1.0)
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
        beta1, beta2 = ADAM_BETAS
        t = self.steps.astype(np.float64)
        if self.kind == "adamw":
            decay = 1 - lr * ADAMW_WEIGHT_DECAY
            if uniform:
                torch._foreach_mul_(params, f32_scalar(float(decay[0])))
            else:
                for p in params:
                    p.mul_(self._per_run(decay, p))
        torch._foreach_lerp_(self.exp_avgs, gs, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sqs, beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, gs, gs, 1 - beta2)
        if uniform:
            step = float(t[0])
            step_size = f32_scalar((float(lr[0]) / (1 - beta1**step)) * -1)
            bc2_sqrt = (1 - beta2**step) ** 0.5
            denom = torch._foreach_sqrt(self.exp_avg_sqs)
            torch._foreach_div_(denom, bc2_sqrt)
            torch._foreach_add_(denom, ADAM_EPS)
            torch._foreach_addcdiv_(params, self.exp_avgs, denom, step_size)
            return
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


def _fused_inner_step(forward, names, kind, clip, params, state, x, y, w, scalars):
    """One inner step of every stacked run as one function (the ``compile: true`` path): forward,
    per-stage loss, gradients, per-run clipping and the optimiser update. Returns the (n, S) per-stage
    losses and the (n,) total gradient norms (before clipping)."""
    n, s = w.shape
    logits = forward(dict(zip(names, params)), x)
    per_stage = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").view(n, s, -1).mean(-1)
    grads = torch.autograd.grad((w * per_stage).sum(), params)
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2.0, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2.0, dim=1)
    # Without clipping (clip = inf) the gradients are used as they are, as in the eager path: an
    # infinite norm would otherwise give a NaN coefficient.
    coef = None if clip == float("inf") else torch.clamp(clip / (total + 1e-6), max=1.0)
    with torch.no_grad():
        fused_update(kind, params, state, grads, coef, scalars)
    return per_stage.detach(), total.detach()


#: Inner steps per call of the compiled step function, per architecture. A call costs ~0.1 ms of guards
#: and wrappers beyond its kernels: a tenth of a default MLP inner step (unrolling 10 made the MLP's
#: training ~5% faster), noise for the others, whose graphs are large enough that unrolling them
#: multiplies the compile time (GRU, in a trial with 10: 191 s with a cold inductor cache instead of ~40 s).
UNROLL = {"mlp": 10}


def _fused_inner_steps(forward, names, kind, clip, params, state, xs, ys, w, scalars, loss_sum):
    """``xs.shape[0]`` consecutive `_fused_inner_step` calls in one function (one compiled graph).
    ``xs``, ``ys``: the steps' batches stacked; ``scalars``: (steps, n) rows; ``loss_sum`` accumulates
    each step's per-stage losses in step order (as the eager loop does). Returns (loss_sum, last step's
    gradient norms)."""
    total = None
    for j in range(xs.shape[0]):
        per_stage, total = _fused_inner_step(forward, names, kind, clip, params, state, xs[j], ys[j], w, [sc[j] for sc in scalars])
        loss_sum = loss_sum + per_stage
    return loss_sum, total


def _fused_measure(forward, names, cfg, blocked, params, px, ys, yv, g0, g1, has_prev):
    """The probe pass of `_Group.measure` as one function (compiled with ``compile: true``): indicators
    and Gram snapshots (``blocked``: as `blocked_gram` blocks); runs without a previous snapshot (just
    reset) get drift 0, like `LearningMonitor`'s first measure."""
    logits, feats = forward(dict(zip(names, params)), px)
    packed, gram = probe_indicators(logits, feats, ys, yv, cfg, (g0, g1), blocked=blocked)
    s = ys.shape[1]
    drift = torch.where(has_prev[:, None], packed[:, 6 * s : 7 * s], torch.zeros((), device=packed.device))
    packed = torch.cat([packed[:, : 6 * s], drift, packed[:, 7 * s :]], 1)
    return packed, gram[0], gram[1]


#: Serialises the first (compiling) call of each compiled function: worker threads share dynamo.
_COMPILE_LOCK = threading.Lock()
#: Dynamo caches graphs per code object, and every ``torch.compile``d partial runs through the same
#: wrapper code object, so all compiled envs of a process share one cache: 2 entries per batch shape
#: (the step and the probe pass; 3 when inner_steps leaves a shorter last `UNROLL` chunk; envs and
#: resets with a shape seen before reuse them). Past dynamo's default limit of 8 entries a new shape
#: ran eagerly with only a log warning (the benchmark process's one-shard runs
#: of its third and fourth architectures did); this allows ~30 shapes per process.
RECOMPILE_LIMIT = 64


class _Compiled:
    """A ``torch.compile``d function whose first call (the compilation) holds `_COMPILE_LOCK` and whose
    calls trace ``torch.autograd.grad`` into the graph (forward, backward and update fuse)."""

    def __init__(self, fn):
        self.fn = torch.compile(fn, dynamic=False, fullgraph=False)
        self.warm: set = set()
        # Made once: `config.patch` defines a class per call (~40 us, a twentieth of an MLP inner
        # step); the context manager is reusable and keeps its state per thread.
        self._trace_grad = torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=RECOMPILE_LIMIT)

    def __call__(self, *args, key=None):
        with self._trace_grad:
            if key in self.warm:
                return self.fn(*args)
            with _COMPILE_LOCK:
                out = self.fn(*args)
            self.warm.add(key)
            return out


# --------------------------------------------------------------------------------------------------
# Batched forward passes
# --------------------------------------------------------------------------------------------------


class _WithFeatures(nn.Module):
    """``forward = model.forward_with_features`` (functional_call calls ``forward``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, x):
        return self.m.forward_with_features(x)


class _BatchedModel:
    """Forward passes of N stacked copies of one architecture: (N, B, ...) inputs -> (N, B, C) logits."""

    def __init__(self, model: nn.Module, arch: str, layout: str):
        self.arch, self.layout = arch, layout
        self.base = copy.deepcopy(model).to("meta")
        self.wrapped = _WithFeatures(self.base)

        def logits(p, x):
            return torch.func.functional_call(self.base, p, (x,))

        def with_features(p, x):
            return torch.func.functional_call(self.wrapped, {"m." + k: v for k, v in p.items()}, (x,))

        self._logits = torch.vmap(logits)
        self._with_features = torch.vmap(with_features)

    def logits(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        if self.arch == "gru":
            return _gru_forward(params, x, self.layout)[0]
        if self.arch == "mlp":
            return _mlp_forward(params, x)
        return self._logits(params, x)

    def logits_and_features(self, params: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The probes' forward. `LearningMonitor` switches to eval mode; without batch norm (rejected
        here) and with dropout 0 the models compute the same function in both modes, and train mode
        keeps nn.TransformerEncoderLayer off its inference fast path, which has no vmap rule."""
        if self.arch == "gru":
            return _gru_forward(params, x, self.layout)
        if self.arch == "mlp":
            return _mlp_probe_forward(params, x)
        return self._with_features(params, x)


def _mlp_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    """`metacurr.models.MLP` (no batch norm) on stacked parameters: batched matmuls that fuse the bias,
    in feature-major layout (``h^T = relu(W1 x^T + b1)``, ``z^T = W2 h^T + b2``). With C ~ 10 classes a
    (B, H) x (H, C) product runs at a quarter of the speed of (C, H) x (H, B) on CPU, and (N, C, B) is
    the layout cross-entropy wants; keeping h^T contiguous keeps the ReLU backward contiguous too.
    Returns (N, B, C) logits as a transposed view (the training forward; see `_mlp_probe_forward`)."""
    h_t = torch.relu_(torch.baddbmm(p["body.1.bias"][:, :, None], p["body.1.weight"], x.flatten(2).transpose(1, 2)))
    logits_t = torch.baddbmm(p["head.bias"][:, :, None], p["head.weight"], h_t)
    return logits_t.transpose(1, 2)


def _mlp_probe_forward(p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_mlp_forward` for the probe pass: the same (N, B, C) class-major logits, but (N, B, H) features
    computed example-major (``h = relu(x W1^T + b1)``), the layout the monitors read them in (Gram
    matrices, head gradients). Transposing `_mlp_forward`'s feature-major h for them took the compiled
    probe pass's two largest element-wise kernels; without it the pass took 3.55 ms instead of 5.28
    (``benchmarks/README.md``). No backward runs through here."""
    h = torch.relu_(torch.baddbmm(p["body.1.bias"][:, None, :], x.flatten(2), p["body.1.weight"].transpose(1, 2)))
    logits_t = torch.baddbmm(p["head.bias"][:, :, None], p["head.weight"], h.transpose(1, 2))
    return logits_t.transpose(1, 2), h


def _gru_forward(p: dict, x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`metacurr.models.GRU` on stacked parameters: the GRU cell of ``torch.nn.GRU`` (gate order r, z, n;
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (h - n) * z + n``) unrolled over time
    with batched matmuls. Input projections are made per time step (materialising all of them at once
    costs T x the memory traffic), and gates are split with ``split`` / ``unbind``, whose backward
    concatenates once, where slicing would zero-fill a full-size gradient per slice."""
    seq = x.unsqueeze(-1) if layout == "signal" else x  # (N, B, T, F)
    n, b, t, f = seq.shape
    w_ih, w_hh = p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"]
    b_ih, b_hh = p["rnn.bias_ih_l0"][:, None, :], p["rnn.bias_hh_l0"][:, None, :]
    hdim = w_hh.shape[-1]
    w_ih_t, w_hh_t = w_ih.transpose(1, 2), w_hh.transpose(1, 2)
    h = seq.new_zeros(n, b, hdim)
    for x_t in seq.unbind(2):
        gi = torch.baddbmm(b_ih, x_t, w_ih_t)  # (N, B, 3H)
        gh = torch.baddbmm(b_hh, h, w_hh_t)
        gi_rz, gi_n = gi.split([2 * hdim, hdim], -1)
        gh_rz, gh_n = gh.split([2 * hdim, hdim], -1)
        r, z = torch.sigmoid(gi_rz + gh_rz).chunk(2, -1)
        new = torch.tanh(gi_n + gh_n * r)
        h = (h - new) * z + new
    logits = torch.baddbmm(p["head.bias"][:, None, :], h, p["head.weight"].transpose(1, 2))
    return logits, h


# --------------------------------------------------------------------------------------------------
# One slot = what one RebalanceEnv would hold
# --------------------------------------------------------------------------------------------------


class _Slot:
    """Per-run bookkeeping; also the object `get_attr` / `set_attr` / `env_method` address."""

    render_mode = None

    def __init__(self, owner: BatchedRebalanceVecEnv, index: int):
        self.owner = owner
        self.index = index
        self.np_random: np.random.Generator | None = None
        self.task_spec: TaskSpec | None = None
        self.weights: np.ndarray | None = None
        self.t = 0
        self.steps_done = 0
        self.diverged = False
        self.order_gen: torch.Generator | None = None

    # Shared attributes, as a RebalanceEnv would expose them.
    @property
    def observation_space(self):
        return self.owner.observation_space

    @property
    def action_space(self):
        return self.owner.action_space

    @property
    def obs_spec(self):
        return self.owner.obs_spec

    @property
    def feature_names(self):
        return self.owner.feature_names

    @property
    def mapping(self):
        return self.owner.mapping

    @property
    def n_stages(self) -> int:
        return self.task_spec.n_stages

    @property
    def state(self) -> LearningState | None:
        """The run's current `LearningState` (built on demand from the env's arrays)."""
        o = self.owner
        if o.stage_arr is None or self.task_spec is None:
            return None
        st = o.stage_arr[self.index]
        return LearningState(
            step=self.t, n_stages=self.task_spec.n_stages,
            stage={k: st[:, i].copy() for i, k in enumerate(STAGE_FEATURES)},
            glob={k: float(o.glob_arr[self.index, i]) for i, k in enumerate(GLOBAL_FEATURES)},
        )  # fmt: skip

    def current_weights(self) -> np.ndarray | None:
        from metacurr.controllers.base import normalize

        return normalize(self.weights) if self.weights is not None else None

    def seed_rng(self, seed: int | None) -> None:
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)


# --------------------------------------------------------------------------------------------------
# A group of runs stacked into one torch program (one per worker thread)
# --------------------------------------------------------------------------------------------------


class _Group:
    """Stacked tensors, optimiser and monitors of the runs ``slots`` (indices into the env's slots)."""

    def __init__(self, slots: list[_Slot], monitor_cfg, device: torch.device, compiled: bool = False):
        self.slots = slots
        self.n = len(slots)
        self.monitor_cfg = monitor_cfg
        self.device = device
        self.compiled = compiled
        self.train_seconds = 0.0
        self.monitor_seconds = 0.0

    def build(self, specs: list[TaskSpec], curricula: list[Curriculum], models: list[nn.Module], shape: tuple) -> None:
        dev = self.device
        self.spec0 = specs[0]
        params, _ = torch.func.stack_module_state(models)
        self.param_names = list(params)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.param_list = [self.params[k] for k in self.param_names]
        self.param_tuple = tuple(self.param_list)
        self.net = _BatchedModel(models[0], specs[0].arch, curricula[0].layout)
        self.opt = StackedOptimizer(specs[0].optimizer, self.param_list)
        sizes = list(shape[0])
        self.sizes = torch.tensor(sizes, dtype=torch.float64)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long)
        self.pool_x = torch.stack([torch.cat([x for x, _ in c.stages]) for c in curricula])
        self.pool_y = torch.stack([torch.cat([y for _, y in c.stages]) for c in curricula])
        probes = [probe_sets(c, self.monitor_cfg, _probe_gen(s)) for s, c in zip(specs, curricula)]
        self.probe_size = probes[0][3]
        self.probe_x = torch.stack([p[0] for p in probes])
        self.y_stage = torch.stack([p[1] for p in probes])
        self.y_val = torch.stack([p[2] for p in probes])
        s, p = specs[0].n_stages, self.probe_size
        # The compiled path keeps drift's Gram matrices as three P/2 blocks (`blocked_gram`, 3/4 of the
        # products); the eager path keeps its numbers (the recipes' runs), so the full matrices.
        self.blocked = self.compiled and p % 2 == 0
        shape = (3, p // 2, p // 2) if self.blocked else (p, p)
        with torch.inference_mode():  # as `measure` returns them: one compiled probe graph, not two
            self.gram = (torch.zeros(self.n * s, *shape, device=dev), torch.zeros(self.n * s, device=dev))
        self.has_prev = torch.zeros(self.n, dtype=torch.bool, device=dev)
        if self.compiled:
            fwd = self.net
            self._step_fn = _Compiled(functools.partial(_fused_inner_steps, fwd.logits, tuple(self.param_names), self.opt.kind))
            self._measure_fn = _Compiled(
                functools.partial(_fused_measure, fwd.logits_and_features, tuple(self.param_names), self.monitor_cfg, self.blocked)
            )

    @torch.no_grad()
    def load(self, j: int, spec: TaskSpec, cur: Curriculum, model: nn.Module) -> None:
        """A fresh run in local slot j (individual reset)."""
        for k, p in model.named_parameters():
            self.params[k][j].copy_(p.detach())
        self.opt.reset_runs([j])
        self.pool_x[j].copy_(torch.cat([x for x, _ in cur.stages]))
        self.pool_y[j].copy_(torch.cat([y for _, y in cur.stages]))
        px, ys, yv, _ = probe_sets(cur, self.monitor_cfg, _probe_gen(spec))
        self.probe_x[j].copy_(px)
        self.y_stage[j].copy_(ys)
        self.y_val[j].copy_(yv)
        self.has_prev[j] = False

    @torch.inference_mode()
    def measure(self, runs: list[int] | None = None) -> np.ndarray:
        """Probe indicators of local ``runs`` (None: all), (R, K*S + 2) float64; updates drift snapshots."""
        t0 = time.perf_counter()
        s, dev = self.spec0.n_stages, self.device
        if runs is None:
            params = tuple(v.detach() for v in self.param_list)
            px, ys, yv, has_prev, prev = self.probe_x, self.y_stage, self.y_val, self.has_prev, self.gram
        else:
            idx = torch.as_tensor(runs, dtype=torch.long, device=dev)
            params = tuple(v.detach().index_select(0, idx) for v in self.param_list)
            px, ys, yv, has_prev = self.probe_x[idx], self.y_stage[idx], self.y_val[idx], self.has_prev[idx]
            sidx = (idx[:, None] * s + torch.arange(s, device=dev)).reshape(-1)
            prev = (self.gram[0][sidx], self.gram[1][sidx])
        if self.compiled and runs is None:  # subsets (individual resets) vary in size: eager
            packed, g0, g1 = self._measure_fn(params, px, ys, yv, prev[0], prev[1], has_prev, key="all")
        else:
            packed, g0, g1 = _fused_measure(
                self.net.logits_and_features, self.param_names, self.monitor_cfg, self.blocked, params, px, ys, yv, prev[0], prev[1], has_prev
            )
        gram = (g0, g1)
        if runs is None:
            self.gram = gram
            self.has_prev.fill_(True)
        else:
            self.gram[0][sidx] = gram[0]
            self.gram[1][sidx] = gram[1]
            self.has_prev[idx] = True
        out = packed.cpu().double().numpy()
        self.monitor_seconds += time.perf_counter() - t0
        return out

    def train(self, weights: np.ndarray) -> np.ndarray:
        """k inner steps of every run with (n, S) ``weights``: (n, S + 2) = train loss per stage, total
        gradient norm, sum of |parameters| (non-finite = diverged)."""
        t0 = time.perf_counter()
        spec, slots = self.spec0, self.slots
        k, b, s, n, dev = spec.inner_steps, spec.batch_size, spec.n_stages, self.n, self.device
        shape = self.pool_x.shape[2:]
        u = torch.stack([torch.rand(k, s, b, generator=sl.order_gen, dtype=torch.float64) for sl in slots])
        noise = None
        if spec.augment > 0:  # drawn after the indices from the same generator, as in InnerTrainer
            noise = torch.stack([torch.randn((k, s * b, *shape), generator=sl.order_gen) * spec.augment for sl in slots])
            noise = noise.to(dev)
        idx = (self.offsets.view(1, 1, -1, 1) + (u * self.sizes.view(1, 1, -1, 1)).long()).view(n, -1)
        # One gather for all runs and steps: rows of the flattened (n * M, ...) pools.
        flat = (idx + torch.arange(n).view(n, 1) * self.pool_x.shape[1]).view(n, k, s * b).transpose(0, 1).to(dev)
        w_t = torch.as_tensor(weights, dtype=torch.float32).to(dev)
        loss_sum = torch.zeros(n, s, device=dev)
        clip = spec.grad_clip if spec.grad_clip > 0 else float("inf")
        cosine = spec.lr_schedule != "constant"
        if self.compiled:
            return self._train_compiled(flat, noise, w_t, loss_sum, clip, cosine, t0)
        pool_x, pool_y = self.pool_x.flatten(0, 1), self.pool_y.flatten(0, 1)
        gnorm = torch.zeros(n, device=dev)
        lr = np.full(n, spec.lr)
        for i in range(k):
            # Gathered step by step (one index_select per step over the flattened (n * M, ...) pools).
            fi = flat[i].reshape(-1)
            x = pool_x.index_select(0, fi).view(n, s * b, *shape)
            y = pool_y.index_select(0, fi).view(n, s * b)
            if noise is not None:
                x = x + noise[:, i]
            if cosine:
                lr = np.array([cosine_lr(sl.task_spec, sl.steps_done) for sl in slots])
            logits = self.net.logits(self.params, x)  # (n, S*b, C)
            # (n, C, S*b) layout: CPU log_softmax over a non-last dim is vectorised across examples,
            # ~10x faster than over a last dim of ~10 classes (same values up to rounding).
            per_ex = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
            per_stage = per_ex.view(n, s, b).mean(-1)
            loss = (w_t * per_stage).sum(-1)  # (n,): runs share no parameters, so d(sum)/d(run i) = own grad
            grads = list(_grad(loss.sum(), self.param_tuple))
            if clip != float("inf") or i == k - 1:
                grads, gnorm = _clip_per_run(grads, clip)
            self.opt.step(grads, lr)
            loss_sum += per_stage.detach()
            for sl in slots:
                sl.steps_done += 1
        return self._train_result(loss_sum, gnorm, t0)

    def _train_compiled(self, flat, noise, w_t, loss_sum, clip, cosine, t0) -> np.ndarray:
        """`train`'s k inner steps through the compiled step function, `UNROLL` steps per call: the
        optimiser scalars of all k steps as (k, n) tensors and the batches of all k steps in one
        gather (the same numbers as the eager path's per-step gathers, with a tenth of the calls)."""
        spec, slots = self.spec0, self.slots
        k, s, b, n = spec.inner_steps, spec.n_stages, spec.batch_size, self.n
        if cosine:
            lrs = np.array([[cosine_lr(sl.task_spec, sl.steps_done + i) for sl in slots] for i in range(k)])
        else:
            lrs = np.full((k, n), spec.lr)
        scalars = self.opt.fused_scalars(lrs)
        fi = flat.reshape(-1)
        xs = self.pool_x.flatten(0, 1).index_select(0, fi).view(k, n, s * b, *self.pool_x.shape[2:])
        ys = self.pool_y.flatten(0, 1).index_select(0, fi).view(k, n, s * b)
        if noise is not None:
            xs = xs + noise.transpose(0, 1)
        gnorm = None
        unroll = UNROLL.get(spec.arch, 1)
        for i in range(0, k, unroll):
            j = min(i + unroll, k)  # a last, shorter chunk is a second graph (key: its length)
            loss_sum, gnorm = self._step_fn(
                clip, self.param_tuple, self.opt.state, xs[i:j], ys[i:j], w_t, [sc[i:j] for sc in scalars], loss_sum, key=j - i
            )
        for sl in slots:
            sl.steps_done += k
        return self._train_result(loss_sum, gnorm, t0)

    def _train_result(self, loss_sum: torch.Tensor, gnorm: torch.Tensor, t0: float) -> np.ndarray:
        k = self.spec0.inner_steps
        with torch.no_grad():
            pabs = torch.stack([p.detach().abs().flatten(1).sum(1) for p in self.param_list], 1).sum(1)
            out = torch.cat([loss_sum / k, gnorm[:, None], pabs[:, None]], 1).cpu().double().numpy()
        self.train_seconds += time.perf_counter() - t0
        return out

    def step(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.train(weights), self.measure()


def map_weights(mapping: WeightMapping, prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """`WeightMapping.apply` for N rows at once: (N, S) previous weights and actions -> new weights.

    The same operations element for element and row sums over S entries, so each row equals
    ``mapping.apply(prev[i], actions[i])`` bitwise (``tests/envs/test_batched.py`` checks).
    """
    a = np.clip(np.nan_to_num(np.asarray(actions, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    p = _normalize_rows(prev)
    if mapping.mode == "absolute":
        target = np.exp(mapping.eta * (a - a.max(axis=1, keepdims=True)))
    else:
        target = p * np.exp(mapping.eta * a)
    n = prev.shape[1]
    floor = min(mapping.floor, 0.5 / n)
    target = floor + (1.0 - n * floor) * _normalize_rows(target)
    delta = mapping.smoothing * (target - p)
    biggest = np.abs(delta).max(axis=1)
    big = biggest > mapping.max_step
    if big.any():
        delta[big] *= (mapping.max_step / biggest[big])[:, None]
    return _normalize_rows(p + delta)


def _normalize_rows(w: np.ndarray) -> np.ndarray:
    """`metacurr.controllers.base.normalize` per row."""
    w = np.clip(np.nan_to_num(np.asarray(w, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    total = w.sum(axis=1)
    bad = ~np.isfinite(total) | (total <= 0)
    out = w / np.where(bad, 1.0, total)[:, None]
    if bad.any():
        out[bad] = 1.0 / w.shape[1]
    return out


def _attention_backend(arch: str):
    """CPU flash attention has no vmap rule (vmap would loop over runs); the math kernel is made of
    batched matmuls. The selection is process-global, so it is entered here, in the env's thread, around
    the worker threads' work, and restored afterwards."""
    if arch != "transformer":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def _build_model(spec: TaskSpec, cur: Curriculum, device) -> nn.Module:
    seeds = derive_seeds(spec.seed)
    return build_model(
        spec.arch, layout=cur.layout, input_shape=cur.input_shape, n_classes=cur.n_classes,
        seed=seeds["model"], norm=spec.norm,
    ).to(device)  # fmt: skip


def _probe_gen(spec: TaskSpec) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seeds(spec.seed)["probe"])


def _default_threads(n_envs: int, device: torch.device) -> int:
    if device.type != "cpu":
        return 1  # an accelerator wants one big batch
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_envs // 4))


# --------------------------------------------------------------------------------------------------
# The vector env
# --------------------------------------------------------------------------------------------------


class BatchedRebalanceVecEnv(VecEnv):
    """N `RebalanceEnv` slots of one (family, arch, n_stages), trained as batched torch programs.

    Args:
        n_envs: number of inner runs N.
        task: a fixed task (TaskSpec, mapping or family name); each slot redraws its seed from its
            ``np_random`` at every reset. Mutually exclusive with ``distribution``.
        distribution, max_stages, control_steps, inner_steps, monitor, mapping, reward,
        divergence_penalty, device, hide_features: as in `RebalanceEnv`.
        threads: CPU worker threads. The N runs are split into this many stacked groups, each stepped
            by its own thread with one intra-op torch thread (torch kernels release the GIL, and the
            threads meet once per control step, instead of an OpenMP barrier after every small op,
            which collapses on a loaded machine). Default: the cores available, at most N // 4; 1 on
            an accelerator. With more than one, the env sets ``torch.set_num_threads(1)`` (process-wide).
        prefetch: build the curricula that auto-resets will need in a background thread while the
            current episodes train (deterministic: a curriculum depends only on its task; a guess that
            turns out wrong, e.g. after ``seed()``, is not used).
        compile: ``torch.compile`` the inner step and the probe pass (module docstring); needs a C++
            compiler (CPU) and pays a one-off compile per task shape.
    """

    def __init__(
        self,
        n_envs: int,
        task: Any = None,
        distribution: str | TaskDistribution | None = None,
        max_stages: int | None = None,
        control_steps: int | None = None,
        inner_steps: int | None = None,
        monitor: dict | None = None,
        mapping: dict | None = None,
        reward: str = "val_loss",
        divergence_penalty: float = 1.0,
        device: str = "cpu",
        hide_features: list[str] | tuple[str, ...] = (),
        threads: int | None = None,
        prefetch: bool = True,
        compile: bool = False,
    ):
        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        # A template env validates the arguments and owns the spaces, layout, mapping and reward.
        self.template = RebalanceEnv(
            task=task, distribution=distribution, max_stages=max_stages, control_steps=control_steps,
            inner_steps=inner_steps, monitor=monitor, mapping=mapping, reward=reward,
            divergence_penalty=divergence_penalty, device=device, hide_features=hide_features,
        )  # fmt: skip
        if self.template.fixed_task is not None and self.template.fixed_task.norm:
            raise ConfigError("the batched env does not support norm: true (batch normalisation); use vec_env: subproc")
        self.device = torch.device(device)
        g = _default_threads(n_envs, self.device) if threads is None else int(threads)
        if not 1 <= g <= n_envs:
            raise ConfigError(f"threads must be in [1, n_envs={n_envs}], got {threads!r}")
        self.threads = g
        if g > 1 and torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        self.obs_spec = self.template.obs_spec
        self.mapping = self.template.mapping
        self.monitor_cfg = self.template.monitor_cfg
        self.feature_names = self.template.feature_names
        self.slots = [_Slot(self, i) for i in range(n_envs)]
        super().__init__(n_envs, self.template.observation_space, self.template.action_space)
        bounds = np.linspace(0, n_envs, g + 1).round().astype(int)
        if not isinstance(compile, bool):
            raise ConfigError(f"compile must be true or false, got {compile!r}")
        if compile and self.device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise ConfigError("compile: true needs a C++ compiler on PATH (g++, c++ or clang++) for torch.compile on the CPU; "
                              "install one or set compile / train.batched_compile to false")
        self.compile = compile
        self.groups = [
            _Group(self.slots[a:b], self.monitor_cfg, self.device, compile) for a, b in zip(bounds[:-1], bounds[1:])
        ]
        self._where = {sl.index: (gi, j) for gi, grp in enumerate(self.groups) for j, sl in enumerate(grp.slots)}
        self._workers = ThreadPoolExecutor(max_workers=g, thread_name_prefix="metacurr-batched") if g > 1 else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metacurr-prefetch") if prefetch else None
        self._prefetched: dict[int, tuple[tuple, Future]] = {}
        self.key: tuple | None = None
        self.forced_key: tuple | None = None
        self.slot_offset = 0  # a shard's first global slot (error messages)
        self.actions: np.ndarray | None = None
        self._built = False
        # Sanitised indicators of every run, as `LearningState` holds them: (N, S, len(STAGE_FEATURES)) and (N, 5).
        self.stage_arr: np.ndarray | None = None
        self.glob_arr: np.ndarray | None = None
        self.phi = np.zeros(n_envs)
        self.start_val_loss = np.zeros(n_envs)
        self.reset_seconds = 0.0

    # ---- task sampling (per slot, from the slot's own rng, as RebalanceEnv.reset does) ----

    def _restricted(self) -> TaskDistribution:
        dist = self.template.distribution
        fam, arch, n = self.key
        entry = dict(dist.families[fam])
        entry["archs"] = [arch]
        return dataclasses.replace(dist, families={fam: entry}, n_stages=(n,))

    def _sample(self, slot: _Slot, options: dict | None, first: bool) -> TaskSpec:
        tpl, rng = self.template, slot.np_random
        options = options or {}
        unknown = set(options) - {"task"}
        if unknown:
            raise ConfigError(f"unknown reset option {sorted(unknown)[0]!r}; valid choices: task")
        if "task" in options:
            spec = tpl._with_budget(as_task_spec(options["task"]))
            if isinstance(options["task"], dict) and "seed" not in options["task"]:
                spec = dataclasses.replace(spec, seed=int(rng.integers(0, TRAIN_SEED_MAX + 1)))
        elif tpl.fixed_task is not None:
            spec = dataclasses.replace(tpl.fixed_task, seed=int(rng.integers(0, TRAIN_SEED_MAX + 1)))
        elif first:
            spec = tpl.distribution.sample(rng)
        else:
            spec = self._restricted().sample(rng)
        if first:
            self.key = task_key(spec)
        elif task_key(spec) != self.key:
            raise ConfigError(
                f"the batched env trains one (family, arch, n_stages) = {self.key}; slot {slot.index + self.slot_offset} got "
                f"{task_key(spec)}; use vec_env: subproc for mixed batches"
            )
        if spec.norm:
            raise ConfigError("the batched env does not support norm: true (batch normalisation); use vec_env: subproc")
        tpl.obs_spec.check_stages(spec.n_stages)
        return spec

    def _peek_next(self, slot: _Slot) -> None:
        """Start building the curriculum the slot's next auto-reset will sample (background thread)."""
        if self._pool is None or slot.np_random is None:
            return
        shadow = _Slot(self, slot.index)
        shadow.np_random = copy.deepcopy(slot.np_random)
        try:
            spec = self._sample(shadow, None, first=False)
        except ConfigError:
            return
        fut = self._pool.submit(build_curriculum, spec.family, spec.n_stages, spec.seed, spec.params)
        self._prefetched[slot.index] = (_cur_key(spec), fut)

    def _curriculum(self, slot: _Slot, spec: TaskSpec) -> Curriculum:
        key, fut = self._prefetched.pop(slot.index, (None, None))
        if fut is not None and key != _cur_key(spec):
            fut.cancel()  # a wrong guess (e.g. after seed()): unused
            fut = None
        cur = fut.result() if fut is not None else build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
        return cur.to(self.device) if cur.val[0].device != self.device else cur

    def _check_shape(self, cur: Curriculum, slot: int) -> None:
        got = _shape_of(cur, self.monitor_cfg)
        if got != self.shape:
            raise ConfigError(
                f"slot {slot + self.slot_offset}: curriculum {got} differs from the batch's {self.shape}; the batched env needs "
                "equal stage sizes, input shape, class count and val size in every run"
            )

    def _start_slot(self, slot: _Slot, spec: TaskSpec) -> None:
        slot.task_spec = spec
        n = spec.n_stages
        slot.weights = np.full(n, 1.0 / n)
        slot.t = 0
        slot.steps_done = 0
        slot.diverged = False
        slot.order_gen = torch.Generator().manual_seed(derive_seeds(spec.seed)["order"])

    def _map(self, fn, items: list) -> list:
        """fn over the groups' items, one worker thread per group."""
        with _attention_backend(self.key[1] if self.key else ""):
            if self._workers is None:
                return [fn(*it) for it in items]
            return list(self._workers.map(lambda it: fn(*it), items))

    # ---- VecEnv API ----

    def reset(self):
        t0 = time.perf_counter()
        for slot, seed in zip(self.slots, self._seeds):
            slot.seed_rng(seed)
        if self.forced_key is not None:  # a shard of a ShardedBatchedVecEnv: slot 0 of shard 0 drew the key
            self.key = self.forced_key
        first = self.forced_key is None
        specs = [self._sample(slot, self._options[i], first=first and i == 0) for i, slot in enumerate(self.slots)]
        curricula = [self._curriculum(slot, sp) for slot, sp in zip(self.slots, specs)]
        self.shape = _shape_of(curricula[0], self.monitor_cfg)
        for i, c in enumerate(curricula):
            self._check_shape(c, i)
        for slot, spec in zip(self.slots, specs):
            self._start_slot(slot, spec)
        # Models are built here, not in the worker threads: build_model seeds torch's global RNG.
        models = [_build_model(sp, c, self.device) for sp, c in zip(specs, curricula)]

        def build(grp: _Group):
            ids = [sl.index for sl in grp.slots]
            grp.build([specs[i] for i in ids], [curricula[i] for i in ids], [models[i] for i in ids], self.shape)
            return grp.measure()

        packed = np.concatenate(self._map(build, [(g,) for g in self.groups]))
        self._built = True
        s = self.key[2]
        self.stage_arr = np.zeros((self.num_envs, s, len(STAGE_FEATURES)))
        self.glob_arr = np.zeros((self.num_envs, len(GLOBAL_FEATURES)))
        obs = self._initial(list(range(self.num_envs)), packed)
        self.reset_infos = [self._info(slot) for slot in self.slots]
        self._reset_seeds()
        self._reset_options()
        for slot in self.slots:
            self._peek_next(slot)
        self.reset_seconds += time.perf_counter() - t0
        return obs

    def _initial(self, runs: list[int], packed: np.ndarray) -> np.ndarray:
        """First observations of freshly reset ``runs`` (InnerRun.reset + RebalanceEnv.reset)."""
        s = self.key[2]
        w = np.stack([self.slots[i].weights for i in runs])
        stage, glob = assemble_batch(packed, s, None, None, np.zeros(len(runs)), w, np.full((len(runs), s), np.nan), np.zeros(len(runs)))
        stage[:, :, 1] = stage[:, :, 2]  # train_loss starts as the probe loss
        self.stage_arr[runs] = stage
        self.glob_arr[runs] = glob
        self.phi[runs] = self._potential(glob)
        self.start_val_loss[runs] = glob[:, 1]
        return self.obs_spec.build_batch(stage, glob)

    def _potential(self, glob: np.ndarray) -> np.ndarray:
        return -glob[:, 1] if self.template.reward_kind == "val_loss" else glob[:, 2]

    def _info(self, slot: _Slot) -> dict:
        i = slot.index
        w = np.zeros(self.obs_spec.max_stages, dtype=np.float32)
        w[: len(slot.weights)] = slot.weights
        return {
            "diverged": bool(slot.diverged),
            "val_loss": float(self.glob_arr[i, 1]),
            "val_acc": float(self.glob_arr[i, 2]),
            "weights": w,
            "n_stages": int(slot.task_spec.n_stages),
            "control_step": int(slot.t),
        }

    def step_async(self, actions: np.ndarray) -> None:
        from metacurr.validation import check_action_range  # NaN / inf / out of [-1, 1]: one line

        self.actions = np.asarray(actions)
        check_action_range(self.actions)

    def step_wait(self):
        if not self._built:
            raise RuntimeError("call reset() before step()")
        s, n = self.key[2], self.num_envs
        acts = np.asarray(self.actions, dtype=np.float64).reshape(n, -1)
        if acts.shape[1] < s:
            raise ConfigError(f"action has {acts.shape[1]} entries for {s} stages")
        prev_w = np.stack([slot.weights for slot in self.slots])
        weights = map_weights(self.mapping, prev_w, acts[:, :s])
        for slot, w in zip(self.slots, weights):
            slot.weights = w
        outs = self._map(lambda grp: grp.step(weights[[sl.index for sl in grp.slots]]), [(g,) for g in self.groups])
        stats = np.concatenate([o[0] for o in outs])
        packed = np.concatenate([o[1] for o in outs])
        # A stage with weight 0 has no mini-batch loss in InnerTrainer: NaN, then the previous value.
        train_loss = np.where(weights > 0, stats[:, :s], np.nan)
        gnorm, pabs = stats[:, s], stats[:, s + 1]
        # InnerTrainer.run's and InnerRun.step's divergence test, per run.
        finite = np.isfinite(np.where(weights > 0, train_loss, 0.0)).all(1) & np.isfinite(gnorm) & (gnorm < 1e8)
        diverged = ~finite | ~np.isfinite(pabs)
        for slot in self.slots:
            slot.t += 1
        t = np.array([slot.t for slot in self.slots])
        cs = np.array([slot.task_spec.control_steps for slot in self.slots])
        tl = np.where(np.isnan(train_loss), self.stage_arr[:, :, 1], train_loss)
        stage, glob = assemble_batch(packed, s, self.stage_arr, self.glob_arr[:, 1], t / cs, weights, tl, gnorm)
        self.stage_arr, self.glob_arr = stage, glob
        obs = self.obs_spec.build_batch(stage, glob)
        phi = self._potential(glob)
        rews = np.where(diverged, -self.template.divergence_penalty, phi - self.phi).astype(np.float32)
        self.phi = np.where(diverged, self.phi, phi)
        truncated = ~diverged & (t >= cs)
        dones = diverged | truncated
        infos: list[dict] = []
        for i, slot in enumerate(self.slots):
            slot.diverged = bool(diverged[i])
            info = self._info(slot)
            if dones[i]:
                info["episode_improvement"] = None if diverged[i] else float(self.start_val_loss[i] - glob[i, 1])
                info["terminal_observation"] = obs[i].copy()
            info["TimeLimit.truncated"] = bool(truncated[i])
            infos.append(info)
        if dones.any():
            self._auto_reset(np.flatnonzero(dones).tolist(), obs)
        return obs, rews, dones, infos

    def _auto_reset(self, runs: list[int], obs: np.ndarray) -> None:
        """SB3 semantics: a finished slot is reset at once; its first observation replaces the last."""
        t0 = time.perf_counter()
        specs = {i: self._sample(self.slots[i], None, first=False) for i in runs}
        curs = {i: self._curriculum(self.slots[i], specs[i]) for i in runs}
        for i in runs:
            self._check_shape(curs[i], i)
        todo = []
        for grp in self.groups:
            local = [j for j, sl in enumerate(grp.slots) if sl.index in specs]
            if local:
                todo.append((grp, local))

        for grp, local in todo:  # in this thread: build_model seeds torch's global RNG
            for j in local:
                i = grp.slots[j].index
                grp.load(j, specs[i], curs[i], _build_model(specs[i], curs[i], self.device))
                self._start_slot(grp.slots[j], specs[i])

        def measure(grp: _Group, local: list[int]):
            return grp.measure(None if len(local) == grp.n else local)

        for (grp, local), packed in zip(todo, self._map(measure, todo)):
            ids = [grp.slots[j].index for j in local]
            obs[ids] = self._initial(ids, packed)
            for i in ids:
                self.reset_infos[i] = self._info(self.slots[i])
        for i in runs:
            self._peek_next(self.slots[i])
        self.reset_seconds += time.perf_counter() - t0

    def wait_prefetch(self) -> None:
        """Block until the background curriculum builds started so far are done."""
        for _, fut in list(self._prefetched.values()):
            if not fut.cancelled():
                fut.exception()  # waits; a failed build is rebuilt (and raises) at reset

    def close(self) -> None:
        if self._pool is not None:
            for _, f in self._prefetched.values():
                f.cancel()
            self._prefetched.clear()
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.slots[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._get_indices(indices):
            setattr(self.slots[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.slots[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self):
        return [None for _ in range(self.num_envs)]

    @property
    def train_seconds(self) -> float:
        """Thread time spent training (summed over worker threads)."""
        return sum(g.train_seconds for g in self.groups)

    @property
    def monitor_seconds(self) -> float:
        """Thread time spent in the monitors (summed over worker threads)."""
        return sum(g.monitor_seconds for g in self.groups)

    @property
    def monitor_time_fraction(self) -> float:
        """Monitor share of the batched program's (train + monitor) time."""
        total = self.train_seconds + self.monitor_seconds
        return self.monitor_seconds / total if total > 0 else 0.0

    def run_params(self, i: int) -> dict[str, torch.Tensor]:
        """The parameters of slot i's model (a detached copy), by `state_dict` name."""
        gi, j = self._where[i]
        return {k: v[j].detach().clone() for k, v in self.groups[gi].params.items()}


def _shape_of(cur: Curriculum, cfg) -> tuple:
    return (
        tuple(len(y) for _, y in cur.stages), tuple(cur.input_shape), cur.n_classes, min(cfg.val_size, len(cur.val[1])),
        cur.layout,
    )  # fmt: skip


def _clip_per_run(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """`metacurr.trainer.clip_grads` per run: (clipped grads, (N,) total norms)."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2.0, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2.0, dim=1)
    coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    return [g * coef.view(-1, *([1] * (g.dim() - 1))) for g in grads], total


def _cur_key(spec: TaskSpec) -> tuple:
    return (spec.family, spec.n_stages, int(spec.seed), json.dumps(spec.params, sort_keys=True))


# --------------------------------------------------------------------------------------------------
# gymnasium.vector adapter
# --------------------------------------------------------------------------------------------------


class BatchedRebalanceVectorEnv(gym.vector.VectorEnv):
    """`BatchedRebalanceVecEnv` behind the ``gymnasium.vector.VectorEnv`` API.

    Autoreset mode ``SAME_STEP`` (the SB3 semantics the batched env implements): a finished slot is
    reset within the step; its last observation and info are in ``infos["final_obs"]`` /
    ``infos["final_info"]`` (with ``"_final_obs"`` masks). ``terminations`` = divergence,
    ``truncations`` = end of the control budget. ``reset(seed=s)`` seeds slot i with ``s + i``.

    Args:
        num_envs: number of inner runs; every other keyword goes to `BatchedRebalanceVecEnv`.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, **kwargs: Any):
        self.venv = BatchedRebalanceVecEnv(n_envs=num_envs, **kwargs)
        self.num_envs = num_envs
        self.single_observation_space = self.venv.observation_space
        self.single_action_space = self.venv.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, int):
            self.venv.seed(seed)
        elif seed is not None:
            self.venv._seeds = list(seed)
        if options:
            self.venv.set_options(options)
        obs = self.venv.reset()
        infos: dict = {}
        for i, info in enumerate(self.venv.reset_infos):
            infos = self._add_info(infos, info, i)
        return obs, infos

    def step(self, actions):
        obs, rews, dones, sb3_infos = self.venv.step(np.asarray(actions))
        terminations = np.array([bool(d and i["diverged"]) for d, i in zip(dones, sb3_infos)])
        truncations = dones & ~terminations
        infos: dict = {}
        for i, info in enumerate(sb3_infos):
            info = {k: v for k, v in info.items() if k not in ("TimeLimit.truncated", "terminal_observation")}
            if dones[i]:
                infos = self._add_info(infos, {"final_obs": sb3_infos[i]["terminal_observation"], "final_info": info}, i)
                info = self.venv.reset_infos[i]
            infos = self._add_info(infos, info, i)
        return obs, rews.astype(np.float64), terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.venv.close()
