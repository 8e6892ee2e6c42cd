"""`metacurr evaluate` survives ``kill -9`` (no orphaned workers, no torn cells, a rerun resumes) and an
evaluation in which every run fails still ends with a report.

The evaluation runs in a subprocess (its own session, so every process it starts can be found) with two
worker processes; once a few cells are stored in OUT/runs/ the main process is SIGKILLed -- no handler,
no cleanup. Then: its workers, fork server and resource tracker exit by themselves, every stored cell
parses, and rerunning the same command skips the stored cells (their files untouched) and completes
results.csv.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metacurr.cli import main

ARGS = ["evaluate", "--controllers", "uniform,heuristic,random,dwa", "--tasks", "quick", "--seeds", "3",
        "--control-steps", "3", "--inner-steps", "2", "--workers", "2", "--no-progress"]
N_CELLS = 4 * 3


def _session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (from /proc), zombies excluded."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(d))
    return pids


def _cells(out: Path) -> list[Path]:
    runs = out / "runs"
    return sorted(runs.glob("*.json")) if runs.is_dir() else []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the evaluation's processes")
@pytest.mark.timeout(180)
def test_kill_9_mid_evaluation_then_resume(tmp_path, capsys):
    out = tmp_path / "ev"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "metacurr.cli", *ARGS, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    sid = proc.pid  # start_new_session: the evaluation leads its own session
    try:
        t0 = time.time()
        while len(_cells(out)) < 3:
            assert proc.poll() is None, f"evaluate ended early: {proc.stderr.read()[-500:]}"
            assert time.time() - t0 < 120, "no cells stored in 120 s"
            time.sleep(0.05)
        workers = [p for p in _session_pids(sid) if p != proc.pid]
        assert len(workers) >= 2  # worker processes (plus fork server / resource tracker) were running
        proc.kill()  # SIGKILL: no handler, no executor shutdown
        proc.wait(timeout=30)
        # 1. nothing it started outlives it
        deadline = time.time() + 15
        while _session_pids(sid) and time.time() < deadline:
            time.sleep(0.1)
        left = _session_pids(sid)
        assert left == [], f"orphaned processes after kill -9: {left}"
    finally:
        for pid in _session_pids(sid):  # never leave our own processes behind, even when failing
            os.kill(pid, signal.SIGKILL)
        proc.stderr.close()

    # 2. what was stored is whole
    stored = _cells(out)
    assert 3 <= len(stored) < N_CELLS
    stamps = {p.name: p.stat().st_mtime_ns for p in stored}
    for p in stored:
        rec = json.loads(p.read_text())
        assert rec["summary"]["control_steps_done"] == 3 and rec["error"] is None

    # 3. a rerun skips them and finishes the rest
    capsys.readouterr()
    assert main([*ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"({N_CELLS - len(stored)} run now, {len(stored)} resumed)" in printed
    assert {p.name: p.stat().st_mtime_ns for p in stored} == stamps  # resumed cells were not rewritten
    assert len(_cells(out)) == N_CELLS
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_CELLS and {r["controller"] for r in rows} == {"uniform", "heuristic", "random", "dwa"}
    assert not any(r["diverged"] == "True" for r in rows)
    assert sorted(int(r["seed"]) for r in rows) == sorted([10_000, 10_001, 10_002] * 4)


def _orphan_sweep(tmp_path: Path, control_steps: int, paces: list[float]) -> tuple[list[str], dict, Path]:
    """A local grid sweep over linear pacing's ``pace``, 2 workers: (command, environment, out folder)."""
    import yaml

    base = tmp_path / "base.yaml"
    base.write_text(f"task: {{family: mnist1d, arch: mlp, control_steps: {control_steps}, inner_steps: 5}}\n"
                    "controller: linear-pacing\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "orphans", "program": "metacurr", "method": "grid",
        "command": ["${env}", "${program}", "sweep-run", "train", "${args_json}", "--config", str(base)],
        "metric": {"name": "final_val_loss", "goal": "minimize"},
        "parameters": {"controller_kwargs.pace": {"values": paces}},
    }))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "metacurr.cli", "sweep", str(sweep), "--local", "--workers", "2", "--out", str(out)]
    return cmd, {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}, out


def _kill_and_expect_no_orphans(proc: subprocess.Popen, sid: int) -> None:
    """kill -9 the sweep's driver; within 15 s nothing of its session may be left."""
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while _session_pids(sid) and time.time() < deadline:
        time.sleep(0.1)
    assert _session_pids(sid) == [], "orphaned sweep workers after kill -9"


@pytest.mark.expensive
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the sweep's processes")
@pytest.mark.timeout(240)
def test_kill_9_mid_local_sweep_leaves_no_workers_and_resumes(tmp_path):
    """The same for `metacurr sweep --local --workers 2` (spawned workers, each running a trial)."""
    cmd, env, out = _orphan_sweep(tmp_path, control_steps=40, paces=[0.2, 0.4, 0.6, 0.8])
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    sid = proc.pid
    try:
        t0 = time.time()
        while len(list((out / "runs").glob("*/trial.json")) if (out / "runs").is_dir() else []) < 2:
            assert proc.poll() is None and time.time() - t0 < 120
            time.sleep(0.1)
        _kill_and_expect_no_orphans(proc, sid)
    finally:
        for pid in _session_pids(sid):
            os.kill(pid, signal.SIGKILL)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=200)
    assert r.returncode == 0, r.stderr[-800:]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(row["status"] == "finished" for row in rows)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the sweep's processes")
@pytest.mark.timeout(120)
def test_kill_9_mid_local_sweep_leaves_no_workers(tmp_path):
    """CI-sized: `metacurr sweep --local --workers 2` killed while both workers run a trial; nothing it
    started outlives it (the expensive test above also checks the rerun)."""
    cmd, env, out = _orphan_sweep(tmp_path, control_steps=200, paces=[0.2, 0.4])
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    sid = proc.pid
    try:
        t0 = time.time()
        while len([d for d in (out / "runs").iterdir() if d.is_dir()] if (out / "runs").is_dir() else []) < 2:
            assert proc.poll() is None, f"sweep ended early: {proc.stderr.read()[-500:]}"
            assert time.time() - t0 < 90, "the two trials did not start in 90 s"
            time.sleep(0.05)
        assert len(_session_pids(sid)) >= 3  # the sweep and its two workers
        _kill_and_expect_no_orphans(proc, sid)
    finally:
        for pid in _session_pids(sid):
            os.kill(pid, signal.SIGKILL)
        proc.stderr.close()


def test_an_orphaned_worker_exits_within_a_second(tmp_path):
    """The README's bound: a worker watching its owner (`orphans.watch_parent`) exits within a second of
    the owner's kill -9, with the orphan exit code."""
    from metacurr.evaluation.orphans import ORPHAN_EXIT_CODE

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom metacurr.evaluation.orphans import watch_parent\n"
         "watch_parent(int(sys.argv[1]))\nprint('ready', flush=True)\ntime.sleep(120)", str(owner.pid)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"
        owner.kill()
        t0 = time.monotonic()
        owner.wait()
        while worker.poll() is None and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        assert worker.returncode == ORPHAN_EXIT_CODE
        assert elapsed < 1.0, f"the orphaned worker took {elapsed:.2f} s to exit"
    finally:
        for p in (owner, worker):
            if p.poll() is None:
                p.kill()
                p.wait()
        worker.stdout.close()


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. matplotlib's "no artists for the legend"
def test_every_run_failing_still_writes_results_and_report(tmp_path, capsys):
    """Failures are rows (diverged, with the error); even when no run produced a metric the report is written."""
    out = tmp_path / "ev"
    assert main(["evaluate", "--controllers", "best-static{weights=[1,1]}", "--tasks", "quick", "--seeds", "2",
                 "--control-steps", "1", "--inner-steps", "1", "--no-progress", "--out", str(out)]) == 0
    assert "2 diverged or failed" in capsys.readouterr().out
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["diverged"] == "True" and "2 weights" in r["error"] for r in rows)
    assert (out / "report.md").is_file() and (out / "stats.json").is_file()
