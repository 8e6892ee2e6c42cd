"""Gymnasium environments wrapping metacurr's inner training loop (installed as ``metacurr.envs``)."""

from metacurr.envs.registration import ENV_ID, register_envs


def __getattr__(name: str):
    # ObservationSpec needs torch; `import metacurr` registers the env without paying for it.
    if name == "ObservationSpec":
        from metacurr.envs.observation import ObservationSpec

        return ObservationSpec
    raise AttributeError(f"module 'metacurr.envs' has no attribute {name!r}")


__all__ = ["ENV_ID", "ObservationSpec", "register_envs"]
