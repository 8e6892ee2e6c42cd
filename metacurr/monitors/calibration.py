"""Expected calibration error (ECE) per stage."""

from __future__ import annotations

import torch


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> torch.Tensor:
    """Equal-width-bin ECE over the last-but-one dim.

    Args:
        probs: (S, P, C) predicted probabilities.
        labels: (S, P) integer labels.
        bins: number of confidence bins.

    Returns:
        (S,) ECE = sum_b |B_b|/P * |acc(B_b) - conf(B_b)|.
    """
    conf, pred = probs.max(-1)
    correct = (pred == labels).to(probs.dtype)
    # A diverged model yields NaN probabilities: bin them at 0 instead of indexing out of range.
    idx = torch.nan_to_num(conf * bins, nan=0.0).long().clamp_(0, bins - 1)  # (S, P)
    s, p = conf.shape
    gap = torch.zeros(s, bins, dtype=probs.dtype, device=probs.device)
    # Signed per-bin sums of (correct - conf); |sum| / P is the bin's contribution.
    gap.scatter_add_(1, idx, correct - conf)
    return gap.abs().sum(-1) / p
