"""One tracking layer for every run: local record, W&B (never blocking, offline without a key), TensorBoard.

``make_tracker(mode, out_dir, name=..., group=..., tags=..., config=...)`` returns a started tracker;
``log_artifact`` / ``fetch_artifact`` move policy bundles through W&B artifacts.

Metric keys are shared by every backend: ``inner/``, ``monitor/stage{k}/...``, ``curriculum/w_stage{k}``
from an inner run, ``eval/`` from evaluation; SB3's ``rollout/ train/ time/`` keys stay SB3's own.
"""

from metacurr.tracking.artifacts import fetch_artifact, log_artifact, parse_ref
from metacurr.tracking.base import NullTracker, Tracker
from metacurr.tracking.composite import CompositeTracker, git_commit, make_tracker, run_name
from metacurr.tracking.local import TRACKING_FILE, LocalTracker
from metacurr.tracking.tensorboard import TensorBoardTracker
from metacurr.tracking.wandb_env import WANDB_MODES, has_api_key, require_online, resolve_mode
from metacurr.tracking.wandb_process import WandbProcessTracker
from metacurr.tracking.wandb_tracker import WandbTracker

__all__ = [
    "Tracker", "NullTracker", "CompositeTracker", "LocalTracker", "WandbTracker", "WandbProcessTracker", "TensorBoardTracker",
    "make_tracker", "run_name", "git_commit", "log_artifact", "fetch_artifact", "parse_ref",
    "WANDB_MODES", "resolve_mode", "has_api_key", "require_online", "TRACKING_FILE",
]
