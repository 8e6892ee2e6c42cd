"""A hostile machine: a full disk and a read-only output folder in ``train``, ``evaluate`` and ``train-agent``.

Each command gives one stderr line (exit 1 for a full disk, exit 2 for a read-only folder, refused before
any work) and leaves nothing half-written: what the run added is removed (agent checkpoints kept for a
rerun), no ``tracking.json`` left saying ``running``, no ``tb/``, no hidden ``.model_for_bundle.zip``.
The disk is a small tmpfs where the test may mount one (root); a fault-injecting writer always runs too.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

import metacurr
import metacurr.io
from metacurr.cli import main
from metacurr.errors import ConfigError

TRAIN = ["train", "--control-steps", "3", "--inner-steps", "2", "--no-progress", "--wandb", "disabled"]
EVALUATE = ["evaluate", "--controllers", "uniform", "--tasks", "quick", "--seeds", "1", "--control-steps", "2",
            "--inner-steps", "1", "--no-progress"]
AGENT_YAML = ("name: t\nenv: {max_stages: 3, control_steps: 2, inner_steps: 1}\n"
              "train: {total_timesteps: 32, n_envs: 1, vec_env: dummy, checkpoint_every: 8}\n"
              "ppo: {n_steps: 8, batch_size: 8, n_epochs: 1}\n")


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size_kib, read_only=False) -> folder`` on a fresh tmpfs; skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size_kib: int, read_only: bool = False) -> Path:
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        opts = f"size={size_kib}k" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]}); the fault-injection tests cover this")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _run(argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(argv)
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def _left(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*")} if out.exists() else set()


def _assert_clean(out: Path, keep_checkpoints: bool = False) -> None:
    left = _left(out)
    if keep_checkpoints:
        left = {p for p in left if not p.startswith("checkpoints")}
        if out.exists() and (out / "checkpoints").exists():
            assert all(p.name.startswith(("ckpt_", "latest.json", "run-config.json"))
                       for p in (out / "checkpoints").iterdir())
    assert left == set(), f"left behind: {sorted(left)}"


def _inject_enospc(monkeypatch, fail_on):
    """Make every atomic write (temp file + ``os.replace``) whose target name ``fail_on`` accepts fail with ENOSPC."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if fail_on(Path(dst).name):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


# --------------------------------------------------------------------------- a full disk (tmpfs)


@pytest.mark.parametrize("argv", [TRAIN, EVALUATE], ids=["train", "evaluate"])
def test_full_disk_tmpfs(argv, tmpfs, capsys):
    out = tmpfs(64) / "out"  # 64 KiB: room for the first files, not for the plots
    rc, err = _run([*argv, "--out", str(out)], capsys)
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    left = _left(out)
    if argv is EVALUATE:  # finished runs in the per-run store are kept: a rerun resumes from them
        left = {p for p in left if not p.startswith("runs")}
    assert left == set(), f"left behind: {sorted(left)}"


def test_full_disk_tmpfs_train_agent_keeps_its_checkpoints(tmpfs, tmp_path, capsys):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(AGENT_YAML)
    out = tmpfs(400) / "out"  # room for a few checkpoints, not for all of them and the bundle
    rc, err = _run(["train-agent", "--config", str(cfg), "--out", str(out), "--wandb", "disabled", "--no-progress"], capsys)
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    _assert_clean(out, keep_checkpoints=True)


def test_read_only_out_is_refused_before_any_work(tmpfs, tmp_path, capsys):
    ro = tmpfs(64, read_only=True)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(AGENT_YAML)
    for argv in (TRAIN, EVALUATE, ["train-agent", "--config", str(cfg), "--wandb", "disabled"]):
        rc, err = _run([*argv, "--out", str(ro / "out")], capsys)
        assert rc == 2 and len(err) == 1 and "is not writable" in err[0], err
    with pytest.raises(ConfigError, match="is not writable"):
        metacurr.train(out=ro / "out", control_steps=1)


# --------------------------------------------------------------------------- a fault-injecting writer


@pytest.mark.parametrize("argv,fail_on", [
    (TRAIN, lambda n: n == "summary.json"),  # the last file: everything before it must go too
    (TRAIN, lambda n: n.endswith(".png")),
    (EVALUATE, lambda n: n == "report.md"),
], ids=["train-summary", "train-plots", "evaluate-report"])
def test_injected_write_fault(argv, fail_on, tmp_path, capsys, monkeypatch):
    _inject_enospc(monkeypatch, fail_on)
    out = tmp_path / "out"
    rc, err = _run([*argv, "--out", str(out)], capsys)
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    left = _left(out)
    if argv is EVALUATE:  # the per-run store survives: a rerun resumes from it
        left = {p for p in left if not p.startswith("runs")}
    assert left == set(), f"left behind: {sorted(left)}"


def test_injected_write_fault_train_agent_keeps_checkpoints(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(AGENT_YAML)
    _inject_enospc(monkeypatch, lambda n: n == "summary.json")  # after the bundle was written
    out = tmp_path / "out"
    rc, err = _run(["train-agent", "--config", str(cfg), "--out", str(out), "--wandb", "disabled", "--no-progress"], capsys)
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    _assert_clean(out, keep_checkpoints=True)
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["timesteps"] == 32  # the final checkpoint is there: --resume finishes without retraining


def test_failed_finish_removes_a_stale_running_record(tmp_path, monkeypatch):
    from metacurr.tracking.local import LocalTracker

    t = LocalTracker(tmp_path)
    t.start("run", {})
    assert json.loads((tmp_path / "tracking.json").read_text())["status"] == "running"
    _inject_enospc(monkeypatch, lambda n: n == "tracking.json")
    with pytest.raises(OSError):
        t.finish(exit_code=1)
    assert not (tmp_path / "tracking.json").exists()  # never left saying "running"


def test_rollback_keeps_what_existed_before(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OSError), metacurr.io.OutputFolder(out):
        (out / "new.txt").write_text("x")
        (out / "sub").mkdir()
        (out / "sub" / "deep.txt").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert _left(out) == {"mine.txt"} and (out / "mine.txt").read_text() == "keep"


def test_api_train_write_fault_leaves_nothing(tmp_path, monkeypatch):
    _inject_enospc(monkeypatch, lambda n: n == "summary.json")
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left on device"):
        metacurr.train(out=out, control_steps=2, inner_steps=1)
    assert not out.exists()
