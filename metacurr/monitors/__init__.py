"""Learning-state monitors: one module per indicator, assembled by `LearningMonitor`.

To monitor your own model, give it ``forward_with_features(x) -> (logits, features)`` or wrap it::

    model = FeatureModel(features=my_net.body, head=my_net.classifier)
"""

from __future__ import annotations

import torch
from torch import nn

from metacurr.monitors.learning_monitor import LearningMonitor
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState, feature_names


class FeatureModel(nn.Module):
    """Adapter: a feature extractor + a linear head -> the interface the monitors read."""

    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head = features, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.head(h), h


__all__ = ["FeatureModel", "GLOBAL_FEATURES", "LearningMonitor", "LearningState", "STAGE_FEATURES", "feature_names"]
