"""The ``compile: true`` path of the batched engine: one inner step of every stacked run (forward,
per-stage loss, gradients, per-run clipping, the optimiser update) and the probe pass, each as one
function that ``torch.compile`` turns into a graph with ``torch.autograd.grad`` traced in, so the
element-wise passes around the matmuls fuse into a few C++ loops. The eager path (`RunGroup.train`)
calls `fused_measure` as it is; its training loop uses the same maths step by step.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from metacurr.monitors.learning_monitor import probe_indicators
from metacurr.optim import fused_update


def fused_inner_step(forward, names, kind, clip, params, state, x, y, w, scalars):
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


def fused_inner_steps(forward, names, kind, clip, params, state, xs, ys, w, scalars, loss_sum):
    """``xs.shape[0]`` consecutive `fused_inner_step` calls in one function (one compiled graph).
    ``xs``, ``ys``: the steps' batches stacked; ``scalars``: (steps, n) rows; ``loss_sum`` accumulates
    each step's per-stage losses in step order (as the eager loop does). Returns (loss_sum, last step's
    gradient norms)."""
    total = None
    for j in range(xs.shape[0]):
        per_stage, total = fused_inner_step(forward, names, kind, clip, params, state, xs[j], ys[j], w, [sc[j] for sc in scalars])
        loss_sum = loss_sum + per_stage
    return loss_sum, total


def fused_measure(forward, names, cfg, blocked, params, px, ys, yv, g0, g1, has_prev):
    """The probe pass of `RunGroup.measure` as one function (compiled with ``compile: true``): indicators
    and Gram snapshots (``blocked``: as `blocked_gram` blocks); runs without a previous snapshot (just
    reset) get drift 0, like `LearningMonitor`'s first measure."""
    logits, feats = forward(dict(zip(names, params)), px)
    packed, gram = probe_indicators(logits, feats, ys, yv, cfg, (g0, g1), blocked=blocked)
    s = ys.shape[1]
    drift = torch.where(has_prev[:, None], packed[:, 6 * s : 7 * s], torch.zeros((), device=packed.device))
    packed = torch.cat([packed[:, : 6 * s], drift, packed[:, 7 * s :]], 1)
    return packed, gram[0], gram[1]


#: Serialises the first (compiling) call of each compiled function: worker threads share dynamo.
COMPILE_LOCK = threading.Lock()
#: Dynamo caches graphs per code object, and every ``torch.compile``d partial runs through the same
#: wrapper code object, so all compiled envs of a process share one cache: 2 entries per batch shape
#: (the step and the probe pass; 3 when inner_steps leaves a shorter last `UNROLL` chunk; envs and
#: resets with a shape seen before reuse them). Past dynamo's default limit of 8 entries a new shape
#: ran eagerly with only a log warning (the benchmark process's one-shard runs
#: of its third and fourth architectures did); this allows ~30 shapes per process.
RECOMPILE_LIMIT = 64


class Compiled:
    """A ``torch.compile``d function whose first call (the compilation) holds `COMPILE_LOCK` and whose
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
            with COMPILE_LOCK:
                out = self.fn(*args)
            self.warm.add(key)
            return out
