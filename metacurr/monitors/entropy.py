"""Prediction entropy and confidence per stage, from probe-set logits."""

from __future__ import annotations

import math

import torch


def entropy_and_confidence(
    logits: torch.Tensor, logp: torch.Tensor | None = None, probs: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean normalised predictive entropy (in [0, 1]) and mean max-probability over the last-but-one dim.

    Args:
        logits: (S, P, C) probe logits for S stages of P examples.
        logp: ``log_softmax(logits, -1)`` if the caller already has it (skips recomputing it).
        probs: ``logp.exp()`` if the caller already has it.

    Returns:
        (entropy, confidence), each of shape (S,). Entropy is divided by log C so that 1 = uniform.
    """
    if logp is None:
        logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp() if probs is None else probs
    ent = -(p * logp).sum(-1) / math.log(logits.shape[-1])
    return ent.mean(-1), p.amax(-1).mean(-1)
