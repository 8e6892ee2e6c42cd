"""The number of PPO steps a ``learn()`` call will actually do, for an honest progress bar."""

from __future__ import annotations


def planned_timesteps(start: int, target: int, rollout: int) -> int:
    """Timesteps at the end of ``learn()``: SB3 collects whole rollouts until it reaches ``target``.

    Args:
        start: ``model.num_timesteps`` before the call.
        target: the configured total (``train.total_timesteps``).
        rollout: steps per rollout, ``n_steps * n_envs``.

    Returns:
        ``start`` plus the whole rollouts needed to reach ``target`` (``start`` when already there).
    """
    if rollout <= 0:
        raise ValueError(f"rollout must be positive, got {rollout}")
    remaining = target - start
    if remaining <= 0:
        return start
    return start + -(-remaining // rollout) * rollout
