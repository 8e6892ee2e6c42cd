"""Small models by registry name: ``mlp``, ``cnn``, ``gru``, ``transformer``.

Every model splits into ``features(x)`` (penultimate representation) and a linear ``head``, so the
monitors can read representation drift and the linear head's per-example gradients from one forward
pass. Each is small enough that an inner step costs about a millisecond on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from metacurr.errors import ConfigError, choices_error

ARCHS = ("mlp", "cnn", "gru", "transformer")

#: Which architectures can read which input layout (see `metacurr.tasks.curriculum.LAYOUTS`).
LAYOUT_ARCHS = {
    "signal": ("mlp", "cnn", "gru", "transformer"),
    "image": ("mlp", "cnn", "gru", "transformer"),
    "sequence": ("gru", "transformer"),
}


class StagedModel(nn.Module):
    """Base: ``forward(x) = head(features(x))``."""

    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.head(h), h


class MLP(StagedModel):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_dim, hidden)]
        if norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CNN(StagedModel):
    """1-D CNN for signals and token sequences (channels = vocabulary), 2-D CNN for images."""

    def __init__(self, layout: str, input_shape: tuple[int, ...], n_classes: int, width: int = 16, norm: bool = False):
        super().__init__()
        self.layout = layout
        two_d = layout == "image"
        conv = nn.Conv2d if two_d else nn.Conv1d
        bn = nn.BatchNorm2d if two_d else nn.BatchNorm1d
        pool = nn.AdaptiveAvgPool2d(1) if two_d else nn.AdaptiveAvgPool1d(1)
        in_ch = input_shape[-1] if layout == "sequence" else 1
        k1 = 3 if two_d else 5
        layers: list[nn.Module] = [conv(in_ch, width, k1, padding=k1 // 2)]
        if norm:
            layers.append(bn(width))
        layers += [nn.ReLU(), conv(width, 2 * width, 3, padding=1)]
        if norm:
            layers.append(bn(2 * width))
        layers += [nn.ReLU(), pool, nn.Flatten(), nn.Linear(2 * width, 64), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(64, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "sequence":
            x = x.transpose(1, 2)  # (B, T, V) -> (B, V, T)
        else:
            x = x.unsqueeze(1)  # add the channel dimension
        return self.body(x)


def _as_sequence(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, L) signal -> (B, L, 1); images read row by row; token sequences as they are."""
    return x.unsqueeze(-1) if layout == "signal" else x


class GRU(StagedModel):
    def __init__(self, layout: str, input_shape: tuple[int, ...], n_classes: int, hidden: int = 64):
        super().__init__()
        self.layout = layout
        feat = 1 if layout == "signal" else input_shape[-1]
        self.rnn = nn.GRU(feat, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(_as_sequence(x, self.layout))
        return h[-1]


class Transformer(StagedModel):
    """A one-layer pre-norm encoder with a learned [CLS] token and learned positions."""

    def __init__(self, layout: str, input_shape: tuple[int, ...], n_classes: int, d_model: int = 32, layers: int = 1):
        super().__init__()
        self.layout = layout
        feat = 1 if layout == "signal" else input_shape[-1]
        length = input_shape[0]
        self.embed = nn.Linear(feat, d_model)
        self.pos = nn.Parameter(torch.randn(1, length + 1, d_model) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        enc = nn.TransformerEncoderLayer(
            d_model, nhead=4, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(enc, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(_as_sequence(x, self.layout))
        z = torch.cat([self.cls.expand(len(z), -1, -1), z], dim=1) + self.pos
        return self.norm(self.encoder(z)[:, 0])


def check_compatible(arch: str, layout: str) -> None:
    """Raise ConfigError unless ``arch`` can read inputs of ``layout``."""
    if arch not in ARCHS:
        raise choices_error("arch", arch, ARCHS)
    ok = LAYOUT_ARCHS.get(layout, ())
    if arch not in ok:
        raise ConfigError(f"arch {arch!r} cannot read {layout!r} inputs; valid choices: {', '.join(ok)}")


def build_model(
    arch: str,
    *,
    layout: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int,
    norm: bool = False,
) -> StagedModel:
    """Build a model with parameters initialised from ``seed`` (the global RNG is left untouched).

    Args:
        arch: one of ``ARCHS``.
        layout: the curriculum's input layout.
        input_shape: per-example input shape.
        n_classes: output classes.
        seed: initialisation seed.
        norm: add batch normalisation (MLP / CNN only; for ablations).
    """
    check_compatible(arch, layout)
    input_shape = tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if arch == "mlp":
            n = 1
            for s in input_shape:
                n *= s
            return MLP(n, n_classes, norm=norm)
        if arch == "cnn":
            return CNN(layout, input_shape, n_classes, norm=norm)
        if arch == "gru":
            return GRU(layout, input_shape, n_classes)
        return Transformer(layout, input_shape, n_classes)
