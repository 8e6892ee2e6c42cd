"""Forward passes of N stacked copies of one architecture: (N, B, ...) inputs -> (N, B, C) logits.

MLP and GRU are written out as batched matmuls (in layouts that suit CPU kernels; ``aten::gru`` has no
vmap rule), the CNN as one batched matmul and one grouped convolution over the N runs' channels; the
transformer runs through ``torch.vmap(torch.func.functional_call)``. Each is
the function `metacurr.models` computes for one run, on that run's slice of the stacked parameters.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


class _WithFeatures(nn.Module):
    """``forward = model.forward_with_features`` (functional_call calls ``forward``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, x):
        return self.m.forward_with_features(x)


class BatchedModel:
    """Forward passes of N stacked copies of one architecture: (N, B, ...) inputs -> (N, B, C) logits."""

    def __init__(self, model: nn.Module, arch: str, layout: str):
        self.arch, self.layout = arch, layout
        self.base = copy.deepcopy(model).to("meta")
        self.wrapped = _WithFeatures(self.base)

        def logits(p, x):
            return torch.func.functional_call(self.base, p, (x,))

        def with_features(p, x):
            return torch.func.functional_call(self.wrapped, {"m." + k: v for k, v in p.items()}, (x,))

        self._logits = torch.vmap(logits)
        self._with_features = torch.vmap(with_features)

    def logits(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        if self.arch == "gru":
            return gru_forward(params, x, self.layout)[0]
        if self.arch == "mlp":
            return mlp_forward(params, x)
        if self.arch == "cnn":
            return cnn_forward(params, x, self.layout)
        return self._logits(params, x)

    def logits_and_features(self, params: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The probes' forward. `LearningMonitor` switches to eval mode; without batch norm (rejected
        here) and with dropout 0 the models compute the same function in both modes, and train mode
        keeps nn.TransformerEncoderLayer off its inference fast path, which has no vmap rule."""
        if self.arch == "gru":
            return gru_forward(params, x, self.layout)
        if self.arch == "mlp":
            return mlp_probe_forward(params, x)
        if self.arch == "cnn":
            return cnn_probe_forward(params, x, self.layout)
        return self._with_features(params, x)


def mlp_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    """`metacurr.models.MLP` (no batch norm) on stacked parameters: batched matmuls that fuse the bias,
    in feature-major layout (``h^T = relu(W1 x^T + b1)``, ``z^T = W2 h^T + b2``). With C ~ 10 classes a
    (B, H) x (H, C) product runs at a quarter of the speed of (C, H) x (H, B) on CPU, and (N, C, B) is
    the layout cross-entropy wants; keeping h^T contiguous keeps the ReLU backward contiguous too.
    Returns (N, B, C) logits as a transposed view (the training forward; see `mlp_probe_forward`)."""
    h_t = torch.relu_(torch.baddbmm(p["body.1.bias"][:, :, None], p["body.1.weight"], x.flatten(2).transpose(1, 2)))
    logits_t = torch.baddbmm(p["head.bias"][:, :, None], p["head.weight"], h_t)
    return logits_t.transpose(1, 2)


def mlp_probe_forward(p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`mlp_forward` for the probe pass: the same (N, B, C) class-major logits, but (N, B, H) features
    computed example-major (``h = relu(x W1^T + b1)``), the layout the monitors read them in (Gram
    matrices, head gradients). Transposing `mlp_forward`'s feature-major h for them took the compiled
    probe pass's two largest element-wise kernels; without it the pass took 3.55 ms instead of 5.28
    (``benchmarks/README.md``). No backward runs through here."""
    h = torch.relu_(torch.baddbmm(p["body.1.bias"][:, None, :], x.flatten(2), p["body.1.weight"].transpose(1, 2)))
    logits_t = torch.baddbmm(p["head.bias"][:, :, None], p["head.weight"], h.transpose(1, 2))
    return logits_t.transpose(1, 2), h


def _cnn_pooled(p: dict, x: torch.Tensor, layout: str) -> torch.Tensor:
    """`metacurr.models.CNN` (no batch norm) up to its pooling, on stacked parameters: (N, B, ...) inputs
    -> (N, B, 2 * width) pooled features. 1-D for signals (one channel) and token sequences (channels =
    vocabulary), 2-D for images.

    The first convolution (few input channels) is an im2col matmul, ``h1 = W1 cols + b1`` with cols
    (N, C_in * k^d, B * spatial): one ``baddbmm`` in channel-major layout. The second is ONE grouped
    convolution over every run, input (B, N * width, spatial), ``groups = N``, each run's weights acting
    on its own channels. In torch's profiler on the 2-core CPU VM, oneDNN's grouped convolution with one
    input channel per group took longer than the whole im2col matmul and its backward; the vmapped
    forward ran both layers that way (the two against each other: ``benchmarks/README.md``, "The batched
    CNN"). Pooling sums and scales the small pooled tensor: the backward of a sum is a broadcast view,
    where a mean's materialises the full-size gradient."""
    n, b = x.shape[:2]
    h = x.transpose(2, 3) if layout == "sequence" else x.unsqueeze(2)  # (N, B, C_in, *spatial)
    spatial = h.shape[3:]
    d, c_in = len(spatial), h.shape[2]
    w1, w2 = p["body.0.weight"], p["body.2.weight"]
    k1, k2, width = w1.shape[-1], w2.shape[-1], w1.shape[1]
    cols = F.pad(h, (k1 // 2, k1 // 2) * d)
    for i in range(d):  # windows appended as trailing dims: (N, B, C_in, *spatial, *k), W1's (C_in, *k) order
        cols = cols.unfold(3 + i, k1, 1)
    taps = list(range(3 + d, 3 + 2 * d))
    cols = cols.permute(0, 2, *taps, 1, *range(3, 3 + d)).reshape(n, c_in * k1**d, b * math.prod(spatial))
    h1 = torch.relu_(torch.baddbmm(p["body.0.bias"][:, :, None], w1.flatten(2), cols))  # (N, width, B * spatial)
    h1 = h1.view(n, width, b, *spatial).movedim(2, 0).reshape(b, n * width, *spatial)
    conv = F.conv1d if d == 1 else F.conv2d
    h2 = torch.relu_(conv(h1, w2.flatten(0, 1), p["body.2.bias"].flatten(), padding=k2 // 2, groups=n))
    pooled = h2.flatten(2).sum(-1) / math.prod(spatial)  # (B, N * 2 width)
    return pooled.view(b, n, -1).transpose(0, 1)


def cnn_forward(p: dict, x: torch.Tensor, layout: str) -> torch.Tensor:
    """`metacurr.models.CNN` (no batch norm) on stacked parameters (`_cnn_pooled`, then the dense
    layers as batched matmuls): (N, B, C) logits as a transposed view of class-major ones, the layout
    cross-entropy wants (as `mlp_forward`)."""
    feats_t = torch.relu_(torch.baddbmm(p["body.6.bias"][:, :, None], p["body.6.weight"], _cnn_pooled(p, x, layout).transpose(1, 2)))
    return torch.baddbmm(p["head.bias"][:, :, None], p["head.weight"], feats_t).transpose(1, 2)


def cnn_probe_forward(p: dict, x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`cnn_forward` for the probe pass: (N, B, C) logits and the (N, B, 64) penultimate features,
    example-major (the layout the monitors read them in)."""
    feats = torch.relu_(torch.baddbmm(p["body.6.bias"][:, None, :], _cnn_pooled(p, x, layout), p["body.6.weight"].transpose(1, 2)))
    logits = torch.baddbmm(p["head.bias"][:, None, :], feats, p["head.weight"].transpose(1, 2))
    return logits, feats


def gru_forward(p: dict, x: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`metacurr.models.GRU` on stacked parameters: the GRU cell of ``torch.nn.GRU`` (gate order r, z, n;
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (h - n) * z + n``) unrolled over time
    with batched matmuls. Input projections are made per time step (materialising all of them at once
    costs T x the memory traffic), and gates are split with ``split`` / ``unbind``, whose backward
    concatenates once, where slicing would zero-fill a full-size gradient per slice."""
    seq = x.unsqueeze(-1) if layout == "signal" else x  # (N, B, T, F)
    n, b, t, f = seq.shape
    w_ih, w_hh = p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"]
    b_ih, b_hh = p["rnn.bias_ih_l0"][:, None, :], p["rnn.bias_hh_l0"][:, None, :]
    hdim = w_hh.shape[-1]
    w_ih_t, w_hh_t = w_ih.transpose(1, 2), w_hh.transpose(1, 2)
    h = seq.new_zeros(n, b, hdim)
    for x_t in seq.unbind(2):
        gi = torch.baddbmm(b_ih, x_t, w_ih_t)  # (N, B, 3H)
        gh = torch.baddbmm(b_hh, h, w_hh_t)
        gi_rz, gi_n = gi.split([2 * hdim, hdim], -1)
        gh_rz, gh_n = gh.split([2 * hdim, hdim], -1)
        r, z = torch.sigmoid(gi_rz + gh_rz).chunk(2, -1)
        new = torch.tanh(gi_n + gh_n * r)
        h = (h - new) * z + new
    logits = torch.baddbmm(p["head.bias"][:, None, :], h, p["head.weight"].transpose(1, 2))
    return logits, h


def attention_backend(arch: str):
    """CPU flash attention has no vmap rule (vmap would loop over runs); the math kernel is made of
    batched matmuls. The selection is process-global, so it is entered here, in the engine's calling thread, around
    the worker threads' work, and restored afterwards."""
    if arch != "transformer":
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)
