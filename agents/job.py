"""`metacurr.train_agent`: PPO training of a rebalancing policy from a config, tracked, written as a bundle.

The library call behind ``metacurr train-agent`` and the ``train-agent`` sweep target: load and check the
agent config, open the tracker, train (`metacurr.agents.train.train_agent`), close the tracker with the
run's exit status.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metacurr.agents.checkpoints import check_resume
from metacurr.agents.config import AgentConfig, load_agent_config
from metacurr.agents.train import train_agent as _train
from metacurr.errors import ConfigError
from metacurr.io import OutputFolder
from metacurr.tracking import make_tracker
from metacurr.tracking.base import Tracker
from metacurr.validation import check_out_dir


@dataclass
class AgentTrainingResult:
    """What `train_agent` produced."""

    summary: dict
    """status (finished / interrupted), timesteps, wall_s, bundle path, final eval metrics."""
    out: Path
    """The run folder (config.yaml, checkpoints/, tb/, policy/)."""

    @property
    def status(self) -> str:
        """``finished``, or ``interrupted`` (a checkpoint is saved; continue with ``resume=True``)."""
        return self.summary["status"]

    @property
    def policy(self) -> Path:
        """The policy bundle folder (load it with ``policy:PATH``)."""
        return self.out / "policy"


def train_agent(
    config: str | Path | AgentConfig | None = None,
    *,
    out: str | Path,
    overrides: dict | None = None,
    resume: bool = False,
    progress: bool = False,
    wandb: str = "auto",
    tracker: Tracker | None = None,
) -> AgentTrainingResult:
    """Train a PPO controller agent into ``out`` (policy bundle in ``out/policy``).

    Args:
        config: an agent YAML path, an `AgentConfig`, or None (the defaults).
        out: the run folder (may exist; must not be a file).
        overrides: nested overrides of the YAML (e.g. ``{"train": {"total_timesteps": 512}}``).
        resume: continue from ``out/checkpoints``.
        progress: show a progress bar on stderr.
        wandb: W&B mode (``auto``, ``online``, ``offline``, ``disabled``) of the tracker opened here.
        tracker: log here instead (then ``wandb`` is unused and the caller finishes the tracker).

    Returns:
        An `AgentTrainingResult`.

    Raises:
        ConfigError: an invalid config or a refused resume (changed trained keys, only damaged
            checkpoints), before anything is written.
        OSError: a failed write (full disk, read-only folder), after removing what this call added.
    """
    if isinstance(config, AgentConfig):
        if overrides:
            raise ConfigError("overrides apply to a config file or the defaults, not to an AgentConfig")
        cfg = config
    else:
        cfg = load_agent_config(None if config is None else str(config), overrides or {})
    out = check_out_dir(out)  # the CLI's line too: a file, a file parent or a read-only folder
    if resume:  # a refused resume writes nothing, not even the tracker's record
        check_resume(out / "checkpoints", cfg.to_dict(), out / "config.yaml")
    own = tracker is None
    # A failed write (full disk) removes what this call added; checkpoints stay for a rerun.
    with OutputFolder(out):
        if own:
            tracker = make_tracker(wandb, out, name=f"agent__{cfg.name}", group="train-agent",
                                   tags=["train-agent", cfg.env.distribution], config=cfg.to_dict())
        exit_code = 1  # recorded as failed unless training returns
        try:
            summary = _train(cfg, out, resume=resume, progress=progress, tracker=tracker)
            exit_code = 0 if summary["status"] == "finished" else 130
        finally:
            if own:
                tracker.finish(exit_code=exit_code)
    return AgentTrainingResult(summary, out)
