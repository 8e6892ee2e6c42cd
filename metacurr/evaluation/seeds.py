"""The seed ranges under their evaluation-package name; they live in `metacurr.seeds` (the bottom layer).

Only ``envs/task_distribution.py`` still imports this name (lead: switch that import to
``metacurr.seeds`` when the engine branch merges, then delete this file).
"""

from metacurr.seeds import (  # noqa: F401
    EVAL_SEED_BASE,
    SEARCH_SEED_BASE,
    TRAIN_SEED_MAX,
    check_eval_seeds,
    check_train_seeds,
    eval_seeds,
    search_seeds,
)
