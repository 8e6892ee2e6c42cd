"""Shared fixtures: a tiny seeded in-memory curriculum, tiny budgets, W&B disabled, no display."""

from __future__ import annotations

import os

# Most tests do not exercise W&B (disabled even where the shell says offline, as CI does: each offline run
# costs seconds); tests/tracking sets offline mode itself.
os.environ["WANDB_MODE"] = "disabled"  # CI exports offline; runs that test W&B set it themselves
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def make_tiny(seed: int = 0, n_stages: int = 3, n: int = 96, d: int = 12, classes: int = 3):
    """Seeded Gaussian-blob stages: stage s has class means shrunk toward 0 (harder)."""
    from metacurr import Curriculum

    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, d, generator=g) * 2

    def sample(scale: float, m: int):
        y = torch.randint(0, classes, (m,), generator=g)
        return means[y] * scale + torch.randn(m, d, generator=g), y

    stages = [sample(1.0 - 0.25 * s, n) for s in range(n_stages)]
    return Curriculum.from_tensors(stages, val=sample(0.6, 64), shift=sample(0.2, 64), name="tiny")


@pytest.fixture
def tiny_curriculum():
    return make_tiny()


@pytest.fixture
def tiny_budget():
    return {"control_steps": 3, "inner_steps": 2, "batch_size": 16}
