"""Gymnasium environments wrapping metacurr's inner training loop (installed as ``metacurr.envs``)."""

from metacurr.envs.observation import ObservationSpec
from metacurr.envs.registration import ENV_ID, register_envs

__all__ = ["ENV_ID", "ObservationSpec", "register_envs"]
