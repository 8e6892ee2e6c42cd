"""The batched CNN forward (`cnn_forward`, `cnn_probe_forward`: an im2col matmul and one grouped
convolution over N runs) equals N `metacurr.models.CNN` run one by one: logits, features and every
parameter's gradient, for each input layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metacurr.batched.forwards import BatchedModel, cnn_forward, cnn_probe_forward
from metacurr.models import CNN

# (layout, per-example input shape): MNIST-1D signals, 8x8 digit images, and token sequences (channels =
# vocabulary; `metacurr.models.CNN` reads them, though no task pairs a CNN with one).
LAYOUTS = [("signal", (40,)), ("image", (8, 8)), ("sequence", (12, 6))]


def _runs(layout: str, shape: tuple[int, ...], n: int = 3, b: int = 5):
    models = []
    for s in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            models.append(CNN(layout, shape, 4))
    stacked, _ = torch.func.stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items()}
    x = torch.randn((n, b, *shape), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (n, b), generator=torch.Generator().manual_seed(1))
    return models, params, x, y


@pytest.mark.parametrize(("layout", "shape"), LAYOUTS)
def test_cnn_forward_equals_each_run_with_gradients(layout, shape):
    models, params, x, y = _runs(layout, shape)
    logits = cnn_forward(params, x, layout)
    ref = torch.stack([m(xi) for m, xi in zip(models, x)])
    assert logits.shape == ref.shape
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-6)
    # Per-run losses summed: runs share no parameters, so each run's slice of the gradient is its own.
    loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1).sum()
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    for i, m in enumerate(models):
        ref_grads = torch.autograd.grad(F.cross_entropy(m(x[i]), y[i]), list(m.parameters()))
        for (name, _), g in zip(m.named_parameters(), ref_grads):
            torch.testing.assert_close(grads[name][i], g, rtol=1e-4, atol=1e-6, msg=f"{layout}: grad of {name}, run {i}")


@pytest.mark.parametrize(("layout", "shape"), LAYOUTS)
def test_cnn_probe_forward_equals_each_run(layout, shape):
    models, params, x, _ = _runs(layout, shape)
    with torch.no_grad():
        logits, feats = cnn_probe_forward(params, x, layout)
        for i, m in enumerate(models):
            ref_logits, ref_feats = m.forward_with_features(x[i])
            torch.testing.assert_close(logits[i], ref_logits, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(feats[i], ref_feats, rtol=1e-5, atol=1e-6)


def test_batched_model_routes_the_cnn_to_the_grouped_forward():
    """BatchedModel's CNN path is `cnn_forward` (the same numbers as the vmapped functional_call it replaces)."""
    models, params, x, _ = _runs("signal", (40,))
    net = BatchedModel(models[0], "cnn", "signal")
    with torch.no_grad():
        torch.testing.assert_close(net.logits(params, x), cnn_forward(params, x, "signal"), rtol=0, atol=0)
        torch.testing.assert_close(net.logits(params, x), net._logits(params, x), rtol=1e-5, atol=1e-6)
        a, b = net.logits_and_features(params, x), net._with_features(params, x)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-6)
