"""Gradient norm and gradient variance per stage, from the linear head, in one forward pass.

For a linear head ``z = W h + b`` under cross-entropy, the per-example gradient w.r.t. ``W`` is the
outer product ``(softmax(z) - onehot(y)) h^T``. Averaging it over micro-batches of the probe set gives
micro-batch gradients without any backward pass; their spread is the gradient variance the paper reads
as "gradient instability". Full-model per-stage gradients would cost a backward pass per stage.
"""

from __future__ import annotations

import torch


def head_gradient_stats(
    probs: torch.Tensor, labels: torch.Tensor, feats: torch.Tensor, micro_batches: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-gradient norm and across-micro-batch variance per stage.

    Args:
        probs: (S, P, C) softmax outputs.
        labels: (S, P) labels.
        feats: (S, P, H) penultimate features.
        micro_batches: M; P is truncated to a multiple of M.

    Returns:
        (grad_norm, grad_var), each (S,): ``||G||_F`` of the mean head gradient and
        ``mean_m ||G_m - G||_F^2`` over the M micro-batch gradients.
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
    return grad_norm, grad_var
