"""Registers ``metacurr/Rebalance-v0`` with Gymnasium (called when `metacurr` is imported).

Bump ``-vN`` when the meaning of observations, actions or rewards changes.
"""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "metacurr/Rebalance-v0"


def register_envs() -> None:
    """Register the environments once; a genuine registration error propagates."""
    if ENV_ID in gym.registry:
        return
    gym.register(id=ENV_ID, entry_point="metacurr.envs.rebalance:RebalanceEnv", disable_env_checker=False)
