"""Each indicator against an independent computation."""

import math

import torch
import torch.nn.functional as F

from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.entropy import entropy_and_confidence
from metacurr.monitors.gradient_variance import head_gradient_stats
from metacurr.monitors.representation_drift import linear_cka, representation_drift


def test_entropy_uniform_is_one_and_peaked_is_zero():
    ent, conf = entropy_and_confidence(torch.zeros(2, 5, 4))
    assert torch.allclose(ent, torch.ones(2)) and torch.allclose(conf, torch.full((2,), 0.25))
    peaked = torch.full((1, 3, 4), -1e4)
    peaked[..., 1] = 1e4
    ent, conf = entropy_and_confidence(peaked)
    assert ent.item() < 1e-6 and math.isclose(conf.item(), 1.0)


def test_cka_identity_rotation_and_independence():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert torch.allclose(linear_cka(x, x), torch.ones(1), atol=1e-5)
    assert torch.allclose(linear_cka(x, 3.0 * x @ q), torch.ones(1), atol=1e-4)  # rotation/scale invariant
    y = torch.randn(1, 64, 16, generator=g)
    assert linear_cka(x, y).item() < 0.5
    assert representation_drift(None, x).item() == 0.0
    assert representation_drift(x, x).item() < 1e-5


def test_ece_perfectly_calibrated_and_overconfident():
    # Confidence 1.0 and always right -> 0; confidence 1.0 and always wrong -> 1.
    probs = torch.zeros(1, 10, 3)
    probs[..., 0] = 1.0
    assert expected_calibration_error(probs, torch.zeros(1, 10, dtype=torch.long)).item() < 1e-6
    assert math.isclose(expected_calibration_error(probs, torch.ones(1, 10, dtype=torch.long)).item(), 1.0)


def test_head_gradient_stats_match_autograd():
    g = torch.Generator().manual_seed(1)
    s, p, h, c, m = 2, 24, 7, 5, 4
    feats = torch.randn(s, p, h, generator=g)
    labels = torch.randint(0, c, (s, p), generator=g)
    head = torch.nn.Linear(h, c)
    probs = head(feats).softmax(-1).detach()
    norm, var = head_gradient_stats(probs, labels, feats, m)
    for st in range(s):
        grads = []
        for mb in range(m):
            sl = slice(mb * p // m, (mb + 1) * p // m)
            head.zero_grad()
            F.cross_entropy(head(feats[st, sl]), labels[st, sl]).backward()
            grads.append(torch.cat([head.weight.grad.flatten(), head.bias.grad.flatten()]))
        gm = torch.stack(grads)
        mean = gm.mean(0)
        assert torch.allclose(norm[st], mean.norm(), atol=1e-5)
        assert torch.allclose(var[st], (gm - mean).pow(2).sum(1).mean(), atol=1e-5)
