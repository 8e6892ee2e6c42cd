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


def centered_gram(x: torch.Tensor, exact: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrix of the centred features and its Frobenius norm: ((S, P, P), (S,)).

    The pieces of `linear_cka` that depend on one snapshot only: a monitor keeps them for the next
    control step instead of the features, so each step computes one Gram matrix instead of two
    (same operations, so the same numbers as `linear_cka`). ``exact=False`` takes the norm with a
    fused reduction (no (S, P, P) temporary; equal up to float rounding).
    """
    x = x - x.mean(1, keepdim=True)
    k = x @ x.transpose(1, 2)
    if not exact:
        return k, torch.linalg.vector_norm(k, dim=(1, 2))
    return k, k.pow(2).sum((1, 2)).sqrt()


#: Weights of the blocks of a `blocked_gram` (AA, BB, AB) in Frobenius products of the full Gram
#: matrices: the lower-left block BA is the transpose of AB, so it counts twice.
_BLOCK_WEIGHTS = (1.0, 1.0, 2.0)


def _over_blocks(v: torch.Tensor) -> torch.Tensor:
    """(S, 3) per-block Frobenius terms of `blocked_gram` blocks -> (S,) terms of the full matrices."""
    return (v * v.new_tensor(_BLOCK_WEIGHTS)).sum(1)


def blocked_gram(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`centered_gram` (``exact=False``) for an even probe size P, as the three distinct P/2 x P/2 blocks
    of the symmetric Gram matrix ((S, 3, P/2, P/2): AA, BB, AB with A, B the first and second half of
    the probe rows) and its Frobenius norm: 3/4 of the multiply-adds (two batched products instead of
    one, both diagonal blocks in the first). `drift_from_grams` takes either form; the drift is the
    same up to float rounding."""
    s, p, h = x.shape
    if p % 2:
        raise ValueError(f"blocked_gram needs an even number of probe examples, got {p}; use centered_gram")
    x = x - x.mean(1, keepdim=True)
    halves = x.view(s * 2, p // 2, h)
    diag = (halves @ halves.transpose(1, 2)).view(s, 2, p // 2, p // 2)
    off = x[:, : p // 2] @ x[:, p // 2 :].transpose(1, 2)
    k = torch.cat([diag, off[:, None]], 1)
    return k, _over_blocks(torch.linalg.vector_norm(k, dim=(2, 3)).square()).sqrt()


def drift_from_grams(
    prev: tuple[torch.Tensor, torch.Tensor] | None,
    now: tuple[torch.Tensor, torch.Tensor],
    eps: float = 1e-12,
    exact: bool = True,
) -> torch.Tensor:
    """`representation_drift` from two `centered_gram` (or two `blocked_gram`) results; zeros when there
    is no previous snapshot. ``exact=False``: the inner product as a fused batched dot (equal up to
    float rounding)."""
    k_now, n_now = now
    if prev is None:
        return torch.zeros(k_now.shape[0], dtype=k_now.dtype, device=k_now.device)
    k_prev, n_prev = prev
    if k_now.dim() == 4:  # blocked_gram
        num = _over_blocks(torch.linalg.vecdot(k_prev.flatten(2), k_now.flatten(2)))
    elif exact:
        num = (k_prev * k_now).sum((1, 2))
    else:
        num = torch.linalg.vecdot(k_prev.flatten(1), k_now.flatten(1))
    return (1.0 - num / (n_prev * n_now + eps)).clamp_(0.0, 1.0)
