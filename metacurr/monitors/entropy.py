"""Prediction entropy and confidence per stage, from probe-set logits."""

from __future__ import annotations

import math

import torch


def entropy_and_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean normalised predictive entropy (in [0, 1]) and mean max-probability over the last-but-one dim.

    Args:
        logits: (S, P, C) probe logits for S stages of P examples.

    Returns:
        (entropy, confidence), each of shape (S,). Entropy is divided by log C so that 1 = uniform.
    """
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    ent = -(p * logp).sum(-1) / math.log(logits.shape[-1])
    return ent.mean(-1), p.amax(-1).mean(-1)
