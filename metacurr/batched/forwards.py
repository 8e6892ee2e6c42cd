"""Forward passes of N stacked copies of one architecture: (N, B, ...) inputs -> (N, B, C) logits.

MLP and GRU are written out as batched matmuls (in layouts that suit CPU kernels; ``aten::gru`` has no
vmap rule); every other architecture runs through ``torch.vmap(torch.func.functional_call)``. Each is
the function `metacurr.models` computes for one run, on that run's slice of the stacked parameters.
"""

from __future__ import annotations

import contextlib
import copy

import torch
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
        return self._logits(params, x)

    def logits_and_features(self, params: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The probes' forward. `LearningMonitor` switches to eval mode; without batch norm (rejected
        here) and with dropout 0 the models compute the same function in both modes, and train mode
        keeps nn.TransformerEncoderLayer off its inference fast path, which has no vmap rule."""
        if self.arch == "gru":
            return gru_forward(params, x, self.layout)
        if self.arch == "mlp":
            return mlp_probe_forward(params, x)
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
