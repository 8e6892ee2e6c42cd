"""The shared action -> weight mapping, as the controllers import it (it lives in `metacurr.weights`)."""

from metacurr.weights import MODES, WeightMapping, sanitize_action

__all__ = ["MODES", "WeightMapping", "sanitize_action"]
