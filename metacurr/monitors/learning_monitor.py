"""Reads the learner's state at control-step boundaries: one forward pass over fixed probe sets.

All stage indicators come from the same forward pass over a fixed probe subset of each stage (plus a
fixed slice of `val`): loss, accuracy, entropy, confidence, calibration, head-gradient norm and variance,
and representation drift against the previous snapshot. The time spent here is accumulated in
``seconds`` so runs can report it as a fraction of their wall time.

`probe_indicators` is the tensor part, written for a leading run dimension so the batched vector env
(`metacurr.batched`) evaluates N runs' probes with the same code: one ``log_softmax`` and one
``argmax`` over all probe and val logits serve every indicator, and drift keeps the previous step's
centred Gram matrix rather than its features (one Gram matrix per step instead of two).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import MonitorConfig
from metacurr.models import StagedModel
from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.entropy import entropy_and_confidence
from metacurr.monitors.gradient_variance import gradient_alignment, head_gradient, head_gradient_stats
from metacurr.monitors.representation_drift import blocked_gram, centered_gram, drift_from_grams
from metacurr.monitors.state import GLOBAL_FEATURES, LearningState

#: Rows of the packed per-stage indicator block returned by `probe_indicators`, in order.
PACKED_STAGE = ("loss", "acc", "entropy", "confidence", "grad_norm", "grad_var", "drift", "ece", "grad_align")
K = len(PACKED_STAGE)


def probe_indicators(
    logits: torch.Tensor,
    feats: torch.Tensor,
    y_stage: torch.Tensor,
    y_val: torch.Tensor,
    cfg: MonitorConfig,
    prev_gram: tuple[torch.Tensor, torch.Tensor] | None,
    blocked: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Every probe indicator of R runs from their probe forward pass.

    Args:
        logits: (R, S*P + V, C) logits of each run's stage probes (stage-major) followed by its val slice.
        feats: (R, S*P + V, H) the matching penultimate features.
        y_stage: (R, S, P) probe labels; y_val: (R, V) val labels.
        cfg: monitor settings.
        prev_gram: the ``gram`` this function returned at the previous control step (None: drift = 0).
        blocked: keep the Gram matrices as `blocked_gram` blocks (batched runs with an even probe
            size; 3/4 of the work of the drift's Gram products, equal up to float rounding). Overrides
            the single-run bit-for-bit path for the drift, so only the batched env passes it.

    Returns:
        (packed, gram): packed (R, K*S + 2) = the K `PACKED_STAGE` indicators (row-major (K, S)) then
        val loss and val accuracy; gram = centred Gram matrices and norms for the next step's drift.
    """
    r, s, p = y_stage.shape
    n = s * p
    lg = logits.float()
    if r == 1:
        logp = torch.log_softmax(lg, -1)
        pred = lg.argmax(-1)
    else:
        # Batched runs: CPU log_softmax over a non-last dim is vectorised across examples and ~10x
        # faster for ~10 classes; it can differ from the last-dim kernel in the last bit, so the
        # single-run path (whose numbers must not change) keeps the last-dim kernel.
        lt = lg.transpose(1, 2)  # (R, C, M); contiguous when the model computed class-major logits
        logp = torch.log_softmax(lt, 1).transpose(1, 2)
        if lt.is_contiguous():
            # First index of the row maximum, with reductions over the class dim of a class-major
            # tensor (vectorised across examples; argmax is a scalar loop per example here). Rows
            # with NaN logits (a diverged run) get index C, i.e. never "correct".
            c = lt.shape[1]
            rank = torch.arange(c, 0, -1, device=lt.device, dtype=lt.dtype).view(1, c, 1)
            pred = c - ((lt == lt.amax(1, keepdim=True)) * rank).amax(1).long()
        else:
            pred = lg.argmax(-1)
    sl = lg[:, :n].reshape(r * s, p, -1)
    slogp = logp[:, :n].reshape(r * s, p, -1)
    probs = slogp.exp()
    ys = y_stage.reshape(r * s, p)
    loss = -slogp.gather(2, ys[..., None]).squeeze(-1).mean(1)
    acc = (pred[:, :n].reshape(r * s, p) == ys).float().mean(1)
    ent, conf = entropy_and_confidence(sl, slogp, probs)
    ece = expected_calibration_error(probs, ys, cfg.ece_bins)
    sf = feats[:, :n].reshape(r * s, p, -1).float()
    gnorm, gvar, gmean = head_gradient_stats(probs, ys, sf, cfg.micro_batches)
    exact = r == 1  # the single-run path must keep its numbers bit for bit
    gram = blocked_gram(sf) if blocked else centered_gram(sf, exact)
    drift = drift_from_grams(prev_gram, gram, exact=exact)
    vlogp = logp[:, n:]
    if r == 1:
        val_loss = F.nll_loss(vlogp[0], y_val[0]).reshape(1)  # = F.cross_entropy on the val logits
    else:
        val_loss = -vlogp.gather(2, y_val[..., None]).squeeze(-1).mean(1)
    val_acc = (pred[:, n:] == y_val).float().mean(1)
    g_val = head_gradient(vlogp.exp(), y_val, feats[:, n:].float())
    align = gradient_alignment(gmean.view(r, s, *gmean.shape[1:]), g_val).reshape(r * s)
    stage = torch.stack([loss, acc, ent, conf, gnorm, gvar, drift, ece, align])  # (K, R*S)
    if r > 1:
        stage = stage.view(K, r, s).transpose(0, 1)
    packed = torch.cat([stage.reshape(r, K * s), torch.stack([val_loss, val_acc], 1)], 1)
    return packed, gram


class LearningMonitor:
    """Computes a `LearningState` for a model on a curriculum.

    Args:
        curriculum: the curriculum (tensors already on the run's device).
        cfg: monitor settings.
        generator: torch generator fixing the probe subsets.
    """

    def __init__(self, curriculum, cfg: MonitorConfig, generator: torch.Generator):
        self.cfg = cfg
        self.n_stages = curriculum.n_stages
        self.x, self.y_stage, self.y_val, self.probe_size = probe_sets(curriculum, cfg, generator)
        self._y_stage = self.y_stage[None]
        self._y_val = self.y_val[None]
        self.prev_gram: tuple[torch.Tensor, torch.Tensor] | None = None
        self.prev: LearningState | None = None
        self.seconds = 0.0

    @torch.inference_mode()
    def measure(
        self,
        model: StagedModel,
        step: int,
        progress: float,
        weights: np.ndarray | None,
        train_loss: np.ndarray,
        total_grad_norm: float,
    ) -> LearningState:
        """Run the probe forward pass and assemble the state.

        ``weights``: the weights in force during the last control step, recorded in the state. None
        leaves that row 0 for the caller's loop to stamp (`metacurr.inner_run.InnerRun` does so).
        """
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        logits, feats = model.forward_with_features(self.x)
        model.train(was_training)
        packed, self.prev_gram = probe_indicators(
            logits[None], feats[None], self._y_stage, self._y_val, self.cfg, self.prev_gram
        )
        s = self.n_stages
        if weights is None:
            weights = np.zeros(s)
        # One device -> host transfer for everything.
        packed = packed[0].cpu().double().numpy()
        state = assemble_state(packed, s, self.prev, step, progress, weights, train_loss, total_grad_norm)
        self.prev = state
        self.seconds += time.perf_counter() - t0
        return state


def probe_sets(curriculum, cfg: MonitorConfig, generator: torch.Generator):
    """The fixed probe batch of a curriculum: (x, y_stage (S, P), y_val (V,), P).

    ``x`` concatenates every stage's probe subset (P examples each, drawn with ``generator``) and then a
    val slice, so one forward pass serves all indicators.
    """
    dev = curriculum.val[0].device
    p = min(cfg.probe_size, min(len(y) for _, y in curriculum.stages))
    xs, ys = [], []
    for x, y in curriculum.stages:
        idx = torch.randperm(len(y), generator=generator)[:p].to(dev)
        xs.append(x[idx])
        ys.append(y[idx])
    nv = min(cfg.val_size, len(curriculum.val[1]))
    vidx = torch.randperm(len(curriculum.val[1]), generator=generator)[:nv].to(dev)
    return torch.cat(xs + [curriculum.val[0][vidx]]), torch.stack(ys), curriculum.val[1][vidx], p


def assemble_state(
    packed: np.ndarray,
    s: int,
    prev: LearningState | None,
    step: int,
    progress: float,
    weights: np.ndarray,
    train_loss: np.ndarray,
    total_grad_norm: float,
) -> LearningState:
    """A sanitised `LearningState` from one run's row of `probe_indicators` (as float64 numpy)."""
    vals = packed[K * s :]
    block = packed[: K * s].reshape(K, s)
    loss_n, ent_n = block[0], block[2]
    d_loss = np.zeros(s) if prev is None else loss_n - prev.stage["loss"]
    d_ent = np.zeros(s) if prev is None else ent_n - prev.stage["entropy"]
    rows = np.stack(
        [np.asarray(weights, dtype=np.float64), np.asarray(train_loss, dtype=np.float64), *block, d_loss, d_ent]
    )
    # Sanitise all stage indicators at once (a diverged model): NaN -> 0, +-inf -> +-1e6.
    rows = np.nan_to_num(rows, nan=0.0, posinf=1e6, neginf=-1e6)
    keys = ("weight", "train_loss", *PACKED_STAGE, "d_loss", "d_entropy")
    val_loss, val_acc = float(vals[0]), float(vals[1])
    glob = {
        "progress": float(progress),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "d_val_loss": 0.0 if prev is None else val_loss - prev.glob["val_loss"],
        "total_grad_norm": float(total_grad_norm),
    }
    for k, v in glob.items():
        if not math.isfinite(v):
            glob[k] = _sanitize_global(k, v)
    return LearningState(step=step, n_stages=s, stage=dict(zip(keys, rows)), glob=glob)


def assemble_batch(
    packed: np.ndarray,
    s: int,
    prev_stage: np.ndarray | None,
    prev_val_loss: np.ndarray | None,
    progress: np.ndarray,
    weights: np.ndarray,
    train_loss: np.ndarray,
    total_grad_norm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`assemble_state` for N runs at once, as arrays: (stage (N, S, len(STAGE_FEATURES)) in STAGE_FEATURES order,
    glob (N, 5) in GLOBAL_FEATURES order), sanitised. ``prev_stage`` / ``prev_val_loss``: the previous
    step's arrays (None: first measurement, deltas 0). Element for element the same operations."""
    n = len(packed)
    block = packed[:, : K * s].reshape(n, K, s)
    vals = packed[:, K * s :]
    if prev_stage is None:
        d_loss = d_ent = np.zeros((n, s))
    else:
        d_loss = block[:, 0] - prev_stage[:, :, 2]
        d_ent = block[:, 2] - prev_stage[:, :, 4]
    rows = np.concatenate(
        [np.asarray(weights, dtype=np.float64)[:, None], np.asarray(train_loss, dtype=np.float64)[:, None], block,
         d_loss[:, None], d_ent[:, None]], axis=1,
    )  # fmt: skip
    stage = np.nan_to_num(rows, nan=0.0, posinf=1e6, neginf=-1e6).transpose(0, 2, 1)
    val_loss, val_acc = vals[:, 0], vals[:, 1]
    d_val = np.zeros(n) if prev_val_loss is None else val_loss - prev_val_loss
    glob = np.stack([np.asarray(progress, dtype=np.float64), val_loss, val_acc, d_val,
                     np.asarray(total_grad_norm, dtype=np.float64)], axis=1)  # fmt: skip
    if not np.isfinite(glob).all():
        nan_fill = np.array([1e6 if "loss" in k else 0.0 for k in GLOBAL_FEATURES])  # as _sanitize_global
        glob = np.where(np.isnan(glob), nan_fill, np.nan_to_num(glob, posinf=1e6, neginf=-1e6))
    return stage, glob


def _sanitize_global(k: str, v: float) -> float:
    return float(np.nan_to_num(v, nan=1e6 if "loss" in k else 0.0, posinf=1e6, neginf=-1e6))


def _sanitize(state: LearningState) -> None:
    """Replace non-finite indicators (a diverged model) by large finite values so observers stay finite."""
    for k, v in state.stage.items():
        state.stage[k] = np.nan_to_num(v, nan=0.0, posinf=1e6, neginf=-1e6)
    for k, v in state.glob.items():
        state.glob[k] = _sanitize_global(k, v)

