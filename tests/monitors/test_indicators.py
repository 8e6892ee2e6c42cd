"""Each indicator against an independent computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.entropy import entropy_and_confidence
from metacurr.monitors.gradient_variance import head_gradient_stats
from metacurr.monitors.representation_drift import (
    blocked_gram,
    centered_gram,
    drift_from_grams,
    linear_cka,
    representation_drift,
)


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


def test_blocked_gram_gives_the_drift_and_norm_of_the_full_gram():
    g = torch.Generator().manual_seed(3)
    prev = torch.randn(5, 32, 24, generator=g)
    now = prev + 0.5 * torch.randn(5, 32, 24, generator=g)
    blocks, norm = blocked_gram(now)
    full, full_norm = centered_gram(now)
    assert blocks.shape == (5, 3, 16, 16)
    assert torch.allclose(blocks[:, 0], full[:, :16, :16]) and torch.allclose(blocks[:, 1], full[:, 16:, 16:])
    assert torch.allclose(blocks[:, 2], full[:, :16, 16:])
    assert torch.allclose(norm, full_norm, rtol=1e-5)
    expect = representation_drift(prev, now)
    got = drift_from_grams(blocked_gram(prev), (blocks, norm), exact=False)
    assert torch.allclose(got, expect, atol=1e-5) and expect.min() > 0.05  # a real drift, not ~0
    assert drift_from_grams(None, (blocks, norm)).tolist() == [0.0] * 5


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
    norm, var, mean_grad = head_gradient_stats(probs, labels, feats, m)
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
        # G laid out (C, H + 1): weight columns, then the bias column
        w, b = mean[: c * h].view(c, h), mean[c * h :]
        assert torch.allclose(mean_grad[st], torch.cat([w, b[:, None]], 1), atol=1e-5)


def test_gradient_alignment_matches_autograd_and_flags_a_conflicting_stage():
    from metacurr.monitors.gradient_variance import gradient_alignment, head_gradient

    g = torch.Generator().manual_seed(2)
    p, h, c = 64, 6, 4
    head = torch.nn.Linear(h, c)
    y = torch.randint(0, c, (p,), generator=g)
    x = torch.randn(c, h, generator=g)[y] + 0.5 * torch.randn(p, h, generator=g)  # class-informative features
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(20):  # a head that has started to learn the clean labels
        opt.zero_grad()
        F.cross_entropy(head(x), y).backward()
        opt.step()
    feats = torch.stack([x, x, x])
    labels = torch.stack([y, y, (y + 1) % c])  # stages 0, 1 = val's own labels; stage 2 = systematically wrong
    probs = head(feats).softmax(-1).detach()
    grads = head_gradient(probs, labels, feats)

    def autograd(x, t):
        head.zero_grad()
        F.cross_entropy(head(x), t).backward()
        return torch.cat([head.weight.grad, head.bias.grad[:, None]], 1)

    for k in range(3):
        assert torch.allclose(grads[k], autograd(feats[k], labels[k]), atol=1e-5)
    align = gradient_alignment(grads[None], grads[0][None])[0]
    assert align[0] == pytest.approx(1.0, abs=1e-5) and align[1] == pytest.approx(1.0, abs=1e-5)
    assert align[2] < 0  # training on the wrong labels moves the head against the val gradient
    zero = gradient_alignment(torch.zeros(1, 2, c, h + 1), grads[0][None])
    assert torch.equal(zero, torch.zeros(1, 2))
