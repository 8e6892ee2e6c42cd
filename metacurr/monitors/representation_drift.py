"""Representation drift: 1 - linear CKA between probe-set features at two control steps.

Linear CKA (Kornblith et al., 2019) is invariant to orthogonal transforms and isotropic scaling of the
features, so drift measures how much the *geometry* of the representation changed, not its scale.
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Batched linear CKA.

    Args:
        x, y: (S, P, H) features of the same P probe examples at two times.

    Returns:
        (S,) CKA in [0, 1].
    """
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    # Gram form: cost P^2 H rather than H^2 P, and P <= H for the default probe.
    kx = x @ x.transpose(1, 2)
    ky = y @ y.transpose(1, 2)
    num = (kx * ky).sum((1, 2))
    den = kx.pow(2).sum((1, 2)).sqrt() * ky.pow(2).sum((1, 2)).sqrt()
    return num / (den + eps)


def representation_drift(prev: torch.Tensor | None, now: torch.Tensor) -> torch.Tensor:
    """1 - CKA(prev, now) per stage; zeros when there is no previous snapshot."""
    if prev is None:
        return torch.zeros(now.shape[0], dtype=now.dtype, device=now.device)
    return (1.0 - linear_cka(prev, now)).clamp_(0.0, 1.0)
