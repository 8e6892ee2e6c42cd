"""Resume discipline: the newest complete checkpoint, nothing deleted that was not replaced, a changed
config refused by key. One tiny agent run (checkpoints at 24 and 32 steps) is copied per case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from metacurr.agents.checkpoints import Checkpointer, trained_diff
from metacurr.cli import main

AGENT = ("name: t\nenv: {max_stages: 3, control_steps: 2, inner_steps: 1}\n"
         "train: {total_timesteps: 32, n_envs: 1, vec_env: dummy, checkpoint_every: 8}\n"
         "ppo: {n_steps: 8, batch_size: 8, n_epochs: 1, policy_kwargs: {net_arch: [16, 16]}}\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    (root / "agent.yaml").write_text(AGENT)
    assert main(["train-agent", "--config", str(root / "agent.yaml"), "--out", str(root / "run"), "--wandb", "disabled",
                 "--no-progress"]) == 0
    return root / "run"


def _copy(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


def _resume(out: Path, capsys, config: str | None = None, timesteps: int = 40) -> tuple[int, str]:
    cfg = out.parent / "resume.yaml"
    cfg.write_text(config or AGENT)
    capsys.readouterr()
    rc = main(["train-agent", "--config", str(cfg), "--out", str(out), "--resume", "--timesteps", str(timesteps),
               "--wandb", "disabled", "--no-progress"])
    return rc, capsys.readouterr().err


def _ckpts(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").glob("ckpt_*.zip"))


def test_two_newest_checkpoints_kept(trained):
    assert _ckpts(trained) == ["ckpt_0000000024.zip", "ckpt_0000000032.zip"]
    assert json.loads((trained / "checkpoints" / "latest.json").read_text())["timesteps"] == 32


def test_deleted_newest_checkpoint_resumes_from_the_older_complete_one(trained, tmp_path, capsys):
    out = _copy(trained, tmp_path)
    (out / "checkpoints" / "ckpt_0000000032.zip").unlink()  # latest.json still names it
    rc, err = _resume(out, capsys)
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_from"] == 24 and s["timesteps"] == 40  # not a fresh start
    assert _ckpts(out) == ["ckpt_0000000032.zip", "ckpt_0000000040.zip"]


@pytest.mark.parametrize("damage", ["truncate-zip", "truncate-npz", "garbage-zip"])
def test_damaged_newest_checkpoint_resumes_from_the_older_one(trained, tmp_path, capsys, damage):
    out = _copy(trained, tmp_path)
    z = out / "checkpoints" / "ckpt_0000000032.zip"
    target = z.with_suffix(".norm.npz") if damage == "truncate-npz" else z
    data = target.read_bytes()
    target.write_bytes(b"not a zip" if damage == "garbage-zip" else data[: len(data) // 2])
    rc, err = _resume(out, capsys)
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 24


def test_truncated_latest_json_is_only_a_hint(trained, tmp_path, capsys):
    out = _copy(trained, tmp_path)
    marker = out / "checkpoints" / "latest.json"
    marker.write_text(marker.read_text()[:7])
    rc, err = _resume(out, capsys)
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 32


def test_no_complete_checkpoint_is_refused_and_nothing_is_deleted(trained, tmp_path, capsys):
    out = _copy(trained, tmp_path)
    for z in (out / "checkpoints").glob("ckpt_*.zip"):
        z.write_bytes(z.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    rc, err = _resume(out, capsys)
    assert rc == 2 and "no complete checkpoint" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()} == before


def test_resume_with_a_changed_net_arch_is_refused_naming_the_key(trained, tmp_path, capsys):
    out = _copy(trained, tmp_path)
    before = {str(p): p.stat().st_mtime_ns for p in out.rglob("*")}
    changed = AGENT.replace("net_arch: [16, 16]", "net_arch: [32, 32]")
    rc, err = _resume(out, capsys, changed.replace("n_epochs: 1", "n_epochs: 1, gamma: 0.9"))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "ppo.gamma, ppo.policy_kwargs.net_arch differ" in err
    assert {str(p): p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written


def test_fresh_start_in_a_folder_with_checkpoints_moves_them_aside(trained, tmp_path, capsys):
    out = _copy(trained, tmp_path)
    old = {p.name: p.read_bytes() for p in (out / "checkpoints").glob("ckpt_*")}
    capsys.readouterr()
    assert main(["train-agent", "--config", str(out / "config.yaml"), "--out", str(out), "--timesteps", "16",
                 "--wandb", "disabled", "--no-progress"]) == 0
    aside = out / "checkpoints.old-1"
    assert {p.name: p.read_bytes() for p in aside.glob("ckpt_*")} == old  # none lost, none mixed in
    assert _ckpts(out) == ["ckpt_0000000008.zip", "ckpt_0000000016.zip"]


def test_prune_never_deletes_a_checkpoint_from_further_along(trained, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(trained / "checkpoints", folder)
    for src, dst in (("0000000024", "0000000008"), ("0000000032", "0000000016")):
        for ext in (".zip", ".norm.npz"):
            shutil.copy(folder / f"ckpt_{src}{ext}", folder / f"ckpt_{dst}{ext}")
    Checkpointer(folder)._prune(16)  # as after saving step 16: 24 and 32 are further along
    assert sorted(p.name for p in folder.glob("ckpt_*.zip")) == [
        "ckpt_0000000008.zip", "ckpt_0000000016.zip", "ckpt_0000000024.zip", "ckpt_0000000032.zip"]


def test_trained_diff_names_only_keys_that_change_what_was_trained():
    old = {"name": "a", "env": {"max_stages": 3}, "ppo": {}, "train": {"seed": 0, "total_timesteps": 8, "threads": 1}}
    new = {"name": "b", "env": {"max_stages": 4}, "ppo": {"gamma": 0.9},
           "train": {"seed": 0, "total_timesteps": 80, "threads": 2}}
    assert trained_diff(old, new) == ["env.max_stages", "ppo.gamma"]
