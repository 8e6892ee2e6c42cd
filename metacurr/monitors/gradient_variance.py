"""Gradient norm and gradient variance per stage, from the linear head, in one forward pass.

For a linear head ``z = W h + b`` under cross-entropy, the per-example gradient w.r.t. ``W`` is the
outer product ``(softmax(z) - onehot(y)) h^T``. Averaging it over micro-batches of the probe set gives
micro-batch gradients without any backward pass; their spread is the gradient variance the paper reads
as "gradient instability". Full-model per-stage gradients would cost a backward pass per stage.
"""

from __future__ import annotations

import torch


def head_gradient(probs: torch.Tensor, labels: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """Mean head gradient (weight and bias together) of K example sets: (K, P, C), (K, P), (K, P, H) -> (K, C, H + 1)."""
    err = probs.clone()
    err.scatter_add_(2, labels[..., None], -torch.ones_like(err[..., :1]))
    h = torch.cat([feats, torch.ones_like(feats[..., :1])], -1)
    return err.transpose(1, 2) @ h / probs.shape[1]


def gradient_alignment(g_stage: torch.Tensor, g_val: torch.Tensor) -> torch.Tensor:
    """Cosine between each stage's mean head gradient and the val set's: (R, S, C, H') and (R, C, H') -> (R, S).

    > 0: a step on the stage also lowers the val loss (to first order, for the head); < 0: training on
    the stage works against the target distribution, e.g. a stage whose labels are systematically wrong.
    0 where either gradient vanishes.
    """
    a = g_stage.flatten(2)
    b = g_val.flatten(1)[:, None, :]
    den = a.norm(dim=2) * b.norm(dim=2)
    return torch.where(den > 0, (a * b).sum(2) / den.clamp_min(1e-30), torch.zeros_like(den))


def head_gradient_stats(
    probs: torch.Tensor, labels: torch.Tensor, feats: torch.Tensor, micro_batches: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Head-gradient norm and across-micro-batch variance per stage, and the mean head gradient.

    Args:
        probs: (S, P, C) softmax outputs.
        labels: (S, P) labels.
        feats: (S, P, H) penultimate features.
        micro_batches: M; P is truncated to a multiple of M.

    Returns:
        (grad_norm, grad_var, grad): ``||G||_F`` of the mean head gradient and ``mean_m ||G_m - G||_F^2``
        over the M micro-batch gradients, each (S,), and G itself, (S, C, H + 1).
    """
    s, p, c = probs.shape
    m = max(1, min(micro_batches, p))
    p = (p // m) * m
    err = probs[:, :p].clone()
    err.scatter_add_(2, labels[:, :p, None], -torch.ones_like(err[..., :1]))
    h = feats[:, :p]
    # (S, M, C, H): one gradient per micro-batch; weight and bias gradients together.
    err_m = err.reshape(s, m, p // m, c)
    h_m = torch.cat([h, torch.ones_like(h[..., :1])], -1).reshape(s, m, p // m, -1)
    g_m = err_m.transpose(2, 3) @ h_m / (p // m)
    g = g_m.mean(1, keepdim=True)
    grad_norm = g.flatten(1).norm(dim=1)
    grad_var = (g_m - g).pow(2).sum((2, 3)).mean(1)
    return grad_norm, grad_var, g[:, 0]
