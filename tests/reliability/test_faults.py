"""Faults: SIGTERM / SIGINT during train-agent checkpoint and exit cleanly; kill -9 then --resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CFG = (
    "name: sig\nenv: {max_stages: 3, control_steps: 4, inner_steps: 2}\n"
    "train: {total_timesteps: 100000, n_envs: 1, vec_env: dummy, checkpoint_every: 16}\n"
    "ppo: {n_steps: 16, batch_size: 16, n_epochs: 1}\n"
)


def _start(tmp_path: Path, out: Path, extra=()):
    cfg = tmp_path / "a.yaml"
    cfg.write_text(CFG)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "metacurr.cli", "train-agent", "--config", str(cfg), "--out", str(out), "--wandb", "disabled",
         "--no-progress", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_checkpoint(out: Path, proc, min_steps: int = 16, timeout: float = 120) -> int:
    marker = out / "checkpoints" / "latest.json"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"train-agent exited early: {proc.stderr.read()[-500:]}")
        if marker.is_file():
            steps = json.loads(marker.read_text())["timesteps"]
            if steps >= min_steps:
                return steps
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_resumable_checkpoint_and_exits_cleanly(tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(tmp_path, out)
    _wait_for_checkpoint(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-800:]
    assert "Traceback" not in stderr and "--resume" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["timesteps"] == summary["timesteps"]  # the final checkpoint is the interruption point
    assert not (out / "policy").exists()  # no half-made bundle


def test_kill_9_then_resume_loses_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    proc = _start(tmp_path, out)
    steps = _wait_for_checkpoint(out, proc, min_steps=32)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    # No temp files are mistaken for checkpoints; the marker points at complete files.
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert (out / "checkpoints" / latest["zip"]).is_file()
    cfg = tmp_path / "a.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "metacurr.cli", "train-agent", "--config", str(cfg), "--out", str(out), "--resume",
         "--timesteps", str(latest["timesteps"] + 16), "--wandb", "disabled", "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert r.returncode == 0, r.stderr[-800:]
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_from"] == latest["timesteps"] >= steps and s["status"] == "finished"
    assert (out / "policy" / "manifest.json").is_file()
