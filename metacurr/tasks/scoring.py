"""Per-example difficulty scores from a briefly trained reference model.

`model_loss_scores` scores each example by the cross-entropy a small model gives it, computed
*out of fold*: the examples are split into folds, a fresh model is trained on all folds but one and
scores the held-out fold. An example is therefore never scored by a model that saw it, so the score
measures how hard it is to predict from the other examples (input noise, atypical shape, wrong
label) rather than how easily it is memorised. Pair it with `Curriculum.from_scores` to cut stages
from your own data.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
import torch.nn.functional as F

from metacurr.errors import ConfigError
from metacurr.models import build_model
from metacurr.tasks.curriculum import _as_pair


def _positive_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def model_loss_scores(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_classes: int,
    layout: str = "signal",
    arch: str = "mlp",
    steps: int = 200,
    folds: int = 2,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> torch.Tensor:
    """Out-of-fold cross-entropy of a briefly trained reference model, one score per example.

    Higher score = harder example. Deterministic for a given ``seed``; the global torch RNG state
    is left as it was.

    Args:
        x: inputs, shape (N, *input_shape), read according to ``layout``.
        y: integer labels in [0, n_classes), shape (N,).
        n_classes: number of classes.
        layout: input layout (``"signal"``, ``"image"`` or ``"sequence"``).
        arch: reference architecture, any name `metacurr.models.build_model` accepts for ``layout``.
        steps: Adam steps per fold model.
        folds: number of folds (>= 2, at most N).
        seed: seed of the fold split, the model initialisations and the mini-batches.
        batch_size: mini-batch size.
        lr: Adam learning rate.

    Returns:
        float32 tensor of shape (N,).

    Raises:
        ConfigError: malformed data, labels out of range, bad ``steps`` / ``folds`` / ``batch_size``
            / ``lr``, or an architecture that cannot read ``layout``.
    """
    x, y = _as_pair((x, y), "data")
    n = len(y)
    n_classes = _positive_int("n_classes", n_classes, 2)
    if int(y.max()) >= n_classes:
        raise ConfigError(f"label {int(y.max())} >= n_classes={n_classes}")
    steps = _positive_int("steps", steps, 1)
    folds = _positive_int("folds", folds, 2)
    if folds > n:
        raise ConfigError(f"folds={folds} exceeds the {n} examples")
    batch_size = _positive_int("batch_size", batch_size, 1)
    if isinstance(lr, bool) or not isinstance(lr, Real) or not (0.0 < float(lr) < 10.0):
        raise ConfigError(f"lr must be a number in (0, 10), got {lr!r}")
    seed = _positive_int("seed", seed, 0)

    g = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(n, dtype=torch.long)
    fold_of[torch.randperm(n, generator=g)] = torch.arange(n) % folds
    scores = torch.empty(n, dtype=torch.float32)
    # fork_rng: models that draw from the global RNG in training (dropout) stay deterministic per
    # seed, and the caller's global RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k in range(folds):
            held = (fold_of == k).nonzero().flatten()
            train = (fold_of != k).nonzero().flatten()
            model = build_model(
                arch, layout=layout, input_shape=tuple(x.shape[1:]), n_classes=n_classes, seed=seed + k
            )
            opt = torch.optim.Adam(model.parameters(), lr=float(lr))
            model.train()
            for _ in range(steps):
                idx = train[torch.randint(len(train), (min(batch_size, len(train)),), generator=g)]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for chunk in held.split(1024):
                    scores[chunk] = F.cross_entropy(model(x[chunk]), y[chunk], reduction="none").float()
    return scores
