"""The Ray backend: same numbers as the process pool, a killed worker, Ctrl-C, a missing Ray, a local sweep.

Every Ray test lives in this file and shares ONE local Ray instance (2 CPUs, no dashboard): its start-up
alone takes ~15 s on a loaded 2-core machine. Each test has a timeout, so a hung driver fails instead of
hanging CI.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import metacurr
from metacurr.cli import main
from metacurr.errors import ConfigError
from metacurr.evaluation.execute import run_cell

TINY = {"tasks": "quick", "seeds": 2, "control_steps": 2, "inner_steps": 2}
# run-to-run timing columns; everything else must match bit for bit
TIMING = ["wall_s", "train_s", "monitor_s", "monitor_time_fraction"]
DEFAULT_BUNDLE = Path(metacurr.__file__).parent / "pretrained" / "default"


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the whole file; `metacurr` calls find it connected and reuse it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def without_timing(value):
    """stats.json without its timing entries (any key naming a TIMING column)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


@pytest.mark.timeout(600)  # a hang guard: a run on a loaded 2-core machine has taken 150 s
def test_pool_and_ray_give_the_same_results_and_stats(tmp_path, ray_local):
    bundle = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle")  # a policy:PATH, shipped via the object store
    ctrls = f"uniform,best-static,policy:{bundle}"
    pool = metacurr.evaluate(ctrls, out=tmp_path / "pool", workers=2, **TINY)
    on_ray = metacurr.evaluate(ctrls, out=tmp_path / "ray", backend="ray", **TINY)
    assert pool.ran == on_ray.ran == 6 and pool.n_diverged == on_ray.n_diverged == 0
    a = pd.read_csv(pool.paths["results"]).drop(columns=TIMING)
    b = pd.read_csv(on_ray.paths["results"]).drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    stats = [without_timing(json.loads(r.paths["stats"].read_text())) for r in (pool, on_ray)]
    assert stats[0] == stats[1]
    assert stats[0]["controllers"]  # the comparison is over real content
    assert on_ray.searches == pool.searches
    again = metacurr.evaluate(ctrls, out=tmp_path / "ray", backend="ray", **TINY)  # a rerun skips finished cells
    assert again.ran == 0 and again.skipped == 6


@pytest.mark.timeout(600)  # a hang guard: a run on a loaded 2-core machine has taken 150 s
def test_a_killed_worker_is_retried(tmp_path, ray_local):
    from metacurr.evaluation.ray_backend import ray_backend

    def die_first_time(log: str) -> int:  # a local function: it travels to the worker by value
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        attempts = Path(log).read_text().split()
        if len(attempts) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return len(attempts)

    log = tmp_path / "attempts"
    with ray_backend(max_retries=1)(1) as ex:
        assert ex.submit(die_first_time, str(log)).result(timeout=300) == 2
    first, second = log.read_text().split()
    assert first != second  # the retry ran in a new worker process


@pytest.mark.timeout(600)  # a hang guard: a run on a loaded 2-core machine has taken 150 s
def test_a_cell_whose_worker_keeps_dying_is_a_failed_row_and_a_rerun_retries_it(tmp_path, ray_local):
    from metacurr.evaluation.ray_backend import ray_backend

    def die(payload: dict) -> dict:
        os.kill(os.getpid(), signal.SIGKILL)

    victim: list[str] = []

    class KillOneCell:
        def __init__(self, inner):
            self.inner = inner

        def submit(self, fn, payload):
            if fn is run_cell and not victim:
                victim.append(payload["key"])
                return self.inner.submit(die, payload)
            return self.inner.submit(fn, payload)

    @contextlib.contextmanager
    def backend(workers: int):
        with ray_backend(max_retries=1)(workers) as ex:
            yield KillOneCell(ex)

    out = tmp_path / "ev"
    res = metacurr.evaluate("uniform", out=out, backend=backend, **TINY)
    assert res.ran == 2 and res.n_diverged == 1
    failed = res.results[res.results["diverged"]]
    assert len(failed) == 1 and failed["error"].iloc[0].startswith("worker lost: ")
    rec = json.loads((out / "runs" / f"{victim[0]}.json").read_text())
    assert rec["lost"] is True and rec["error"] == failed["error"].iloc[0]
    again = metacurr.evaluate("uniform", out=out, backend="ray", **TINY)
    assert again.ran == 1 and again.skipped == 1 and again.n_diverged == 0


@pytest.mark.timeout(600)  # a hang guard: a run on a loaded 2-core machine has taken 150 s
def test_ctrl_c_stops_the_driver_with_130_and_keeps_finished_cells(tmp_path, ray_local):
    address = ray_local.get_runtime_context().gcs_address  # the driver joins this file's instance
    out = tmp_path / "ev"
    n_cells = 12  # enough that the interrupt lands before the last cell even when cells finish in bursts
    budget = {"tasks": "quick", "seeds": n_cells, "control_steps": 6, "inner_steps": 4}
    # The driver gets Python's own Ctrl-C handler explicitly: a child of a background job (`pytest &`) starts with
    # SIGINT ignored, and Python keeps it ignored, so the interrupt would never arrive.
    driver = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "sys.argv[0] = 'metacurr'; runpy.run_module('metacurr.cli', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", driver, "evaluate", "--controllers", "uniform", "--backend", "ray",
           "--address", address, "--no-progress", "--out", str(out)]
    for k, v in budget.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*.json")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no cell finished in 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    stored = sorted(out.glob("runs/*.json"))
    assert 1 <= len(stored) < n_cells, "the interrupt came after the last cell; add cells"
    for f in stored:
        rec = json.loads(f.read_text())  # whole files only: atomic writes
        assert rec["error"] is None and "lost" not in rec
    again = metacurr.evaluate("uniform", out=out, backend="ray", **budget)
    assert again.skipped == len(stored) and again.ran == n_cells - len(stored) and again.n_diverged == 0


def tiny_sweep(folder: Path) -> Path:
    """A 2-point grid over `metacurr train` with a 2x2-step budget."""
    base = folder / "base.yaml"
    base.write_text(yaml.safe_dump({"task": {"family": "mnist1d", "arch": "mlp", "seed": 0},
                                    "controller": "linear-pacing"}))
    sweep = {"name": "tiny", "program": "metacurr",
             "command": ["${env}", "${program}", "sweep-run", "train", "${args_json}", "--config", str(base)],
             "method": "grid", "metric": {"name": "final_val_loss", "goal": "minimize"},
             "parameters": {"controller_kwargs.pace": {"values": [0.5, 1.0]}, "task.control_steps": {"value": 2},
                            "task.inner_steps": {"value": 2}}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.mark.timeout(600)  # a hang guard: a run on a loaded 2-core machine has taken 150 s
def test_local_sweep_trials_run_as_ray_tasks_and_resume(tmp_path, ray_local, capsys):
    path = tiny_sweep(tmp_path)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--local", "--backend", "ray", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["status"] for r in rows] == ["finished", "finished"]
    for r in rows:
        summary = json.loads((out / "runs" / r["run_id"] / "summary.json").read_text())
        assert summary["final_val_loss"] == pytest.approx(float(r["final_val_loss"]), rel=1e-5)
    # the same trial in this process gives the same number
    from metacurr.sweeps.spec import load_sweep
    from metacurr.sweeps.trial import run_trial

    spec = load_sweep(path)
    params = json.loads((out / "runs" / rows[0]["run_id"] / "trial.json").read_text())["params"]
    here = run_trial(spec.command, params, tmp_path / "here", metric=spec.metric_name, wandb="disabled")
    assert here.metric == float(rows[0]["final_val_loss"])
    capsys.readouterr()
    assert main(["sweep", str(path), "--local", "--backend", "ray", "--out", str(out)]) == 0
    assert "0 run, 2 resumed" in capsys.readouterr().out


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_without_ray_the_backend_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "ev"
    assert main(["evaluate", "--controllers", "uniform", "--tasks", "quick", "--seeds", "1", "--backend", "ray",
                 "--out", str(out)]) == 2
    assert 'pip install "metacurr[ray]"' in one_line(capsys)
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"metacurr\[ray\]"):
        metacurr.evaluate("uniform", out=out, backend="ray", **TINY)
    assert not out.exists()
    assert main(["sweep", str(tiny_sweep(tmp_path)), "--local", "--backend", "ray", "--out", str(tmp_path / "sw")]) == 2
    assert "metacurr[ray]" in one_line(capsys)
    assert not (tmp_path / "sw").exists()


def test_backend_flags_are_checked(tmp_path, capsys):
    base = ["evaluate", "--controllers", "uniform", "--tasks", "quick", "--out", str(tmp_path / "ev")]
    assert main([*base, "--backend", "ray", "--workers", "2"]) == 2
    assert "--workers" in one_line(capsys)
    assert main([*base, "--address", "127.0.0.1:6379"]) == 2
    assert "--address applies to --backend ray" in one_line(capsys)
    with pytest.raises(ConfigError, match="valid choices: pool, ray"):
        metacurr.evaluate("uniform", out=tmp_path / "ev", backend="dask", **TINY)
    assert not (tmp_path / "ev").exists()
