"""`RunGroup`: the runs of one group key stacked into one torch program (one group per worker thread).

What `InnerTrainer` + `LearningMonitor` are for one run, a group is for its N runs: the stacked
parameters (``torch.func.stack_module_state``), `StackedOptimizer`, the batched forwards
(`BatchedModel`), one gather of every run's mini-batches per control step and one probe pass
(`probe_indicators` over a flattened N*S stage dimension). Each run keeps its own mini-batch generator,
step count and learning-rate schedule (`RunState`), drawn as `InnerTrainer` draws them, with one
difference: every stage's batch is drawn, and a zero-weight stage gets a zero gradient (InnerTrainer
skips it), so the runs equal single runs while every weight is > 0.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.batched.compiled import UNROLL, Compiled, fused_inner_steps, fused_measure
from metacurr.batched.forwards import BatchedModel
from metacurr.config import TaskSpec
from metacurr.inner_run import SeededParts
from metacurr.monitors.learning_monitor import probe_sets
from metacurr.optim import StackedOptimizer, clip_grads_per_run, grad_of
from metacurr.tasks.curriculum import Curriculum
from metacurr.trainer import cosine_lr


@dataclass
class RunState:
    """One run's training bookkeeping in the engine (what its `InnerTrainer` would hold)."""

    spec: TaskSpec
    order: torch.Generator  # mini-batch order and augmentation noise
    steps_done: int = 0  # inner steps taken (the learning-rate schedule's clock)


class RunGroup:
    """Stacked parameters, optimiser state, mini-batch pools and probe sets of the runs ``runs``, which
    share one group key (`metacurr.batched.engine.group_key`): one torch program steps them all.

    Args:
        runs: the group's runs (the engine's `RunState` objects, in the group's stacking order).
        monitor_cfg: monitor settings.
        device: torch device of the stacked tensors.
        compiled: step and measure through the ``torch.compile``d functions (`metacurr.batched.compiled`).
    """

    def __init__(self, runs: list[RunState], monitor_cfg, device: torch.device, compiled: bool = False):
        self.runs = runs
        self.n = len(runs)
        self.monitor_cfg = monitor_cfg
        self.device = device
        self.compiled = compiled
        self.train_seconds = 0.0
        self.monitor_seconds = 0.0

    def build(self, curricula: list[Curriculum], parts: list[SeededParts], shape: tuple) -> None:
        """Stack fresh runs (every run of the group) with their curricula and seeded parts."""
        dev = self.device
        specs = [r.spec for r in self.runs]
        models = [p.model for p in parts]
        self.spec0 = specs[0]
        params, _ = torch.func.stack_module_state(models)
        self.param_names = list(params)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.param_list = [self.params[k] for k in self.param_names]
        self.param_tuple = tuple(self.param_list)
        self.net = BatchedModel(models[0], specs[0].arch, curricula[0].layout)
        self.opt = StackedOptimizer(specs[0].optimizer, self.param_list)
        sizes = list(shape[0])
        self.sizes = torch.tensor(sizes, dtype=torch.float64)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long)
        self.pool_x = torch.stack([torch.cat([x for x, _ in c.stages]) for c in curricula])
        self.pool_y = torch.stack([torch.cat([y for _, y in c.stages]) for c in curricula])
        probes = [probe_sets(c, self.monitor_cfg, p.probe) for c, p in zip(curricula, parts)]
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
            self._step_fn = Compiled(functools.partial(fused_inner_steps, fwd.logits, tuple(self.param_names), self.opt.kind))
            self._measure_fn = Compiled(
                functools.partial(fused_measure, fwd.logits_and_features, tuple(self.param_names), self.monitor_cfg, self.blocked)
            )

    @torch.no_grad()
    def load(self, j: int, cur: Curriculum, parts: SeededParts) -> None:
        """A fresh run in local position j (an individual reset): parameters, optimiser state, pools, probes."""
        for k, p in parts.model.named_parameters():
            self.params[k][j].copy_(p.detach())
        self.opt.reset_runs([j])
        self.pool_x[j].copy_(torch.cat([x for x, _ in cur.stages]))
        self.pool_y[j].copy_(torch.cat([y for _, y in cur.stages]))
        px, ys, yv, _ = probe_sets(cur, self.monitor_cfg, parts.probe)
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
            packed, g0, g1 = fused_measure(
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
        spec, runs = self.spec0, self.runs
        k, b, s, n, dev = spec.inner_steps, spec.batch_size, spec.n_stages, self.n, self.device
        shape = self.pool_x.shape[2:]
        u = torch.stack([torch.rand(k, s, b, generator=r.order, dtype=torch.float64) for r in runs])
        noise = None
        if spec.augment > 0:  # drawn after the indices from the same generator, as in InnerTrainer
            noise = torch.stack([torch.randn((k, s * b, *shape), generator=r.order) * spec.augment for r in runs])
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
                lr = np.array([cosine_lr(r.spec, r.steps_done) for r in runs])
            logits = self.net.logits(self.params, x)  # (n, S*b, C)
            # (n, C, S*b) layout: CPU log_softmax over a non-last dim is vectorised across examples,
            # ~10x faster than over a last dim of ~10 classes (same values up to rounding).
            per_ex = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")
            per_stage = per_ex.view(n, s, b).mean(-1)
            loss = (w_t * per_stage).sum(-1)  # (n,): runs share no parameters, so d(sum)/d(run i) = own grad
            grads = list(grad_of(loss.sum(), self.param_tuple))
            if clip != float("inf") or i == k - 1:
                grads, gnorm = clip_grads_per_run(grads, clip)
            self.opt.step(grads, lr)
            loss_sum += per_stage.detach()
            for r in runs:
                r.steps_done += 1
        return self._train_result(loss_sum, gnorm, t0)

    def _train_compiled(self, flat, noise, w_t, loss_sum, clip, cosine, t0) -> np.ndarray:
        """`train`'s k inner steps through the compiled step function, `UNROLL` steps per call: the
        optimiser scalars of all k steps as (k, n) tensors and the batches of all k steps in one
        gather (the same numbers as the eager path's per-step gathers, with a tenth of the calls)."""
        spec, runs = self.spec0, self.runs
        k, s, b, n = spec.inner_steps, spec.n_stages, spec.batch_size, self.n
        if cosine:
            lrs = np.array([[cosine_lr(r.spec, r.steps_done + i) for r in runs] for i in range(k)])
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
        for r in runs:
            r.steps_done += k
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
