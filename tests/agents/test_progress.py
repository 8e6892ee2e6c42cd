"""The PPO progress bar's total is the number of steps the run does (SB3 finishes whole rollouts)."""

from __future__ import annotations

import json

import pytest
import tqdm

from metacurr.agents import train as agent_train
from metacurr.agents.progress import planned_timesteps
from metacurr.cli import main


def test_planned_timesteps_rounds_up_to_whole_rollouts():
    assert planned_timesteps(0, 120_000, 2048) == 120_832  # the main job's agent: 59 rollouts of 16 x 128
    assert planned_timesteps(0, 48, 24) == 48
    assert planned_timesteps(48, 72, 24) == 72  # resumed
    assert planned_timesteps(50, 40, 24) == 50  # already past the total: nothing to do
    with pytest.raises(ValueError):
        planned_timesteps(0, 10, 0)


def test_bar_total_equals_steps_done(tmp_path, monkeypatch):
    totals = []

    class Recording(tqdm.tqdm):
        def __init__(self, *a, **kw):
            totals.append(kw.get("total"))
            super().__init__(*a, **kw)

    monkeypatch.setattr(agent_train, "tqdm", Recording)  # the bar agents/train.py opens
    cfg = tmp_path / "a.yaml"
    cfg.write_text("name: tiny\nenv: {max_stages: 3, control_steps: 3, inner_steps: 2}\n"
                   "train: {total_timesteps: 30, n_envs: 2, vec_env: dummy, checkpoint_every: 100}\n"
                   "ppo: {n_steps: 12, batch_size: 12, n_epochs: 1}\n")
    assert main(["train-agent", "--config", str(cfg), "--out", str(tmp_path / "run"), "--wandb", "disabled"]) == 0
    done = json.loads((tmp_path / "run" / "summary.json").read_text())["timesteps"]
    assert done == 48 and totals == [48]  # 30 rounded up to two rollouts of 2 x 12
