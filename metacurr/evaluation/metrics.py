"""Per-run trajectory metrics under their evaluation-package name; they live in `metacurr.trajectory`.

Only ``metacurr/evaluation/incremental.py`` still imports this name (lead: switch that import to
``metacurr.trajectory`` when the engine branch merges, then delete this file).
"""

from metacurr.trajectory import trajectory_metrics  # noqa: F401
