"""Sweeps: file checks (one line, exit 2), parameter plumbing, a tiny local sweep, resume, offline online-commands."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from metacurr.cli import main
from metacurr.errors import ConfigError
from metacurr.sweeps import (
    apply_params,
    check_sweep,
    grid_points,
    load_sweep,
    parse_param_tokens,
    parse_sweep,
    plan,
    random_points,
    run_id,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("wandb-home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (home / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(home / "netrc"))


def tiny_sweep(folder: Path, **changes) -> Path:
    """A 2-point grid over `metacurr train` with a 2x2-step budget."""
    base = folder / "base.yaml"
    base.write_text(yaml.safe_dump({"task": {"family": "mnist1d", "arch": "mlp", "seed": 0},
                                    "controller": "linear-pacing"}))
    sweep = {
        "name": "tiny",
        "program": "metacurr",
        "command": ["${env}", "${program}", "sweep-run", "train", "${args_json}", "--config", str(base)],
        "method": "grid",
        "metric": {"name": "final_val_loss", "goal": "minimize"},
        "parameters": {
            "controller_kwargs.pace": {"values": [0.5, 1.0]},
            "task.control_steps": {"value": 2},
            "task.inner_steps": {"value": 2},
        },
    }
    sweep.update(changes)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# --- the shipped sweep files -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_files_are_valid_and_their_configs_check(path, monkeypatch):
    monkeypatch.chdir(REPO)  # base config paths are relative to the repository root
    spec = load_sweep(path)
    assert spec.method in ("grid", "random", "bayes") and spec.metric_name
    assert spec.command.target in ("train", "train-agent")
    assert check_sweep(spec) == []


def test_at_least_the_three_sweep_files_exist():
    assert {"ppo.yaml", "heuristic.yaml", "env.yaml"} <= {p.name for p in SHIPPED}


# --- validation: one line, exit 2 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "annealing"}, "unknown sweep method"),
        ({"method": None}, "missing method"),
        ({"parameters": {"controller_kwargs.pase": {"values": [0.5]}}}, "unknown parameter 'pase'"),
        ({"parameters": {"task.epochs": {"value": 3}}}, "unknown key config.task.epochs"),
        ({"parameters": {"controller_kwargs.pace": {"values": [0.5, 7.0]}}}, "pace must be in"),
        ({"parameters": {"controller_kwargs.pace": {"distribution": "gaussian", "min": 0.1, "max": 1}}},
         "unknown distribution"),
        ({"parameters": {"controller_kwargs.pace": {"distribution": "uniform", "min": 1.0, "max": 0.1}}},
         "min must be < max"),
        ({"parameters": {"controller_kwargs.pace": {"min": 0.1, "max": 1.0}}}, "grid sweeps take value/values"),
        ({"command": ["python", "train.py", "${args}"]}, "command must run metacurr"),
        ({"command": ["metacurr", "sweep-run", "train", "--config", "b.yaml", "${args_json}"]}, "right after"),
        ({"command": ["${env}", "${program}", "sweep-run", "evaluate-nothing", "${args_json}"]},
         "not a metacurr subcommand"),
        ({"paramters": {}}, "unknown sweep key 'paramters'"),
    ],
)
def test_bad_sweep_files_fail_in_one_line(tmp_path, capsys, change, message):
    path = tiny_sweep(tmp_path)
    data = yaml.safe_load(path.read_text())
    for k, v in change.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    path.write_text(yaml.safe_dump(data))
    assert main(["sweep", str(path), "--local", "--out", str(tmp_path / "out")]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_malformed_yaml_fails_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("method: grid\nparameters: {a: [1\n")
    assert main(["sweep", str(path), "--local"]) == 2
    assert "malformed YAML" in one_line_error(capsys)


def test_random_sweep_needs_a_count(tmp_path, capsys):
    path = tiny_sweep(tmp_path, method="random")
    assert main(["sweep", str(path), "--local", "--out", str(tmp_path / "o")]) == 2
    assert "--count" in one_line_error(capsys)


# --- online commands without network: fail fast, one line -----------------------------------------


def test_online_sweep_and_agent_fail_fast_offline(tmp_path, capsys, monkeypatch):
    path = tiny_sweep(tmp_path)
    t0 = time.perf_counter()
    assert main(["sweep", str(path)]) == 2
    assert "WANDB_MODE=offline" in one_line_error(capsys)
    monkeypatch.delenv("WANDB_MODE")
    assert main(["sweep", str(path)]) == 2
    assert "wandb login" in one_line_error(capsys)
    assert main(["agent", "me/metacurr/abc123"]) == 2
    assert "wandb login" in one_line_error(capsys)
    assert time.perf_counter() - t0 < 20


def test_local_only_flags_need_local(tmp_path, capsys):
    assert main(["sweep", str(tiny_sweep(tmp_path)), "--workers", "2"]) == 2
    assert "--local" in one_line_error(capsys)


# --- parameter plumbing ------------------------------------------------------------------------------


def test_dotted_parameters_set_nested_config_keys():
    base = {"ppo": {"n_steps": 64, "policy_kwargs": {"net_arch": [64, 64]}}, "env": {"reward": "val_loss"}}
    out = apply_params(base, {"ppo.learning_rate": 1e-4, "env.reward": "val_acc", "env.mapping.smoothing": 0.5,
                              "ppo.policy_kwargs": {"activation_fn": "relu"}})
    assert out == {"ppo": {"n_steps": 64, "learning_rate": 1e-4,
                           "policy_kwargs": {"net_arch": [64, 64], "activation_fn": "relu"}},
                   "env": {"reward": "val_acc", "mapping": {"smoothing": 0.5}}}
    assert base["env"]["reward"] == "val_loss"  # not mutated
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_params({"env": "x"}, {"env.reward": "val_acc"})


def test_parameters_arrive_in_every_wandb_macro_form(tmp_path):
    want = {"ppo.learning_rate": 1e-05, "ppo.n_steps": 128, "env.reward": "val_acc", "flag": True}
    f = tmp_path / "config-abc.json"
    f.write_text(json.dumps(want))
    assert parse_param_tokens([json.dumps(want)]) == want  # ${args_json}
    assert parse_param_tokens([str(f)]) == want  # ${args_json_file}
    # ${args_no_hyphens}: W&B formats values with str(); 1e-05 must stay a float
    assert parse_param_tokens(["ppo.learning_rate=1e-05", "ppo.n_steps=128", "env.reward=val_acc", "flag=True"]) == want
    with pytest.raises(ConfigError):
        parse_param_tokens(["not-a-param"])


def test_grid_random_and_bayes_plans():
    spec = parse_sweep({
        "method": "grid", "command": ["metacurr", "sweep-run", "train", "${args_json}"],
        "parameters": {"a": {"values": [1, 2, 3]}, "b": {"value": "x"}, "c": {"values": [True, False]}},
    })
    pts = grid_points(spec.params)
    assert len(pts) == 6 and pts[0] == {"a": 1, "b": "x", "c": True} and pts[1] == {"a": 1, "b": "x", "c": False}
    assert len({run_id(p) for p in pts}) == 6
    rnd = parse_sweep({
        "method": "bayes", "metric": {"name": "m"}, "command": ["metacurr", "sweep-run", "train", "${args_json}"],
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
                       "n": {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
                       "k": {"min": 1, "max": 4}, "g": {"distribution": "normal", "mu": 1.0, "sigma": 0.1},
                       "nested": {"parameters": {"x": {"values": ["u", "v"]}}}},
    })
    method, draws, notices = plan(rnd, count=20, seed=3)
    assert method == "random" and "bayes" in notices[0]
    assert draws == random_points(rnd.params, 20, 3)  # seeded: a rerun finds the same trials
    for d in draws:
        assert 1e-5 <= d["lr"] <= 1e-2 and d["n"] % 10 == 0 and isinstance(d["k"], int) and 1 <= d["k"] <= 4
        assert d["nested.x"] in ("u", "v")
    with pytest.raises(ConfigError, match="--count"):
        plan(rnd, count=None)


# --- a real local sweep: 2 tiny runs, offline W&B, results table, resume ----------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    path = tiny_sweep(folder)
    out = folder / "out"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(folder)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        rc = main(["sweep", str(path), "--local", "--workers", "2", "--out", str(out)])
        wall = time.perf_counter() - t0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return path, out, rc, wall


def test_local_sweep_runs_two_offline_trials_and_writes_the_table(local_sweep):
    _, out, rc, _ = local_sweep
    assert rc == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert sorted(r["controller_kwargs.pace"] for r in rows) == ["0.5", "1.0"]
    losses = [float(r["final_val_loss"]) for r in rows]
    assert losses == sorted(losses)  # best first
    for r in rows:
        run_dir = out / "runs" / r["run_id"]
        trial = json.loads((run_dir / "trial.json").read_text())
        assert trial["status"] == "finished" and trial["run_id"] == run_id(trial["params"])
        cfg = yaml.safe_load((run_dir / "trial-config.yaml").read_text())
        assert cfg["controller_kwargs"]["pace"] == trial["params"]["controller_kwargs.pace"]
        assert cfg["task"]["control_steps"] == 2
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["final_val_loss"] == pytest.approx(float(r["final_val_loss"]), rel=1e-5)
        record = json.loads((run_dir / "tracking.json").read_text())
        assert record["group"] == "tiny" and "sweep:tiny" in record["tags"]
        assert record["wandb"]["mode"] == "offline"
        assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


def test_rerun_resumes_and_reruns_nothing(local_sweep, capsys):
    path, out, _, _ = local_sweep
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/trial.json")}
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["sweep", str(path), "--local", "--workers", "2", "--out", str(out)]) == 0
    assert time.perf_counter() - t0 < 10
    printed = capsys.readouterr()
    assert "0 run, 2 resumed" in printed.out
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/trial.json")} == stamps


def test_a_different_sweep_is_refused_in_the_same_folder(local_sweep, tmp_path, capsys):
    _, out, _, _ = local_sweep
    other = tiny_sweep(tmp_path, metric={"name": "final_val_acc", "goal": "maximize"})
    assert main(["sweep", str(other), "--local", "--out", str(out)]) == 2
    assert "holds another sweep" in one_line_error(capsys)


def test_sweep_run_is_one_trial_with_wandb_style_parameters(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("task: {family: mnist1d, arch: mlp}\ncontroller: linear-pacing\n")
    run_dir = tmp_path / "trial"
    rc = main(["sweep-run", "train", "controller_kwargs.pace=0.5", "task.control_steps=2", "task.inner_steps=2",
               "--config", str(base), "--out", str(run_dir), "--wandb", "disabled", "--metric", "final_val_acc"])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["status"] == "finished" and 0 <= last["metric"] <= 1
    assert yaml.safe_load((run_dir / "trial-config.yaml").read_text())["controller_kwargs"] == {"pace": 0.5}
    # an override that makes the config invalid is a usage error: exit 2, one line, no trial folder
    rc = main(["sweep-run", "train", "controller_kwargs.pace=9", "--config", str(base), "--out", str(tmp_path / "bad"),
               "--wandb", "disabled"])
    assert rc == 2 and not (tmp_path / "bad").exists()
    assert "pace must be in (0, 1], got 9" in capsys.readouterr().err


# --- online paths, with W&B's API faked (no network in tests) ----------------------------------------


def test_online_sweep_creation_prints_the_agent_command(tmp_path, capsys, monkeypatch):
    import wandb

    import metacurr.sweeps.online as online

    sent = {}

    def fake_sweep(sweep, entity=None, project=None):
        sent.update(config=sweep, entity=entity, project=project)
        return "abc123"

    class FakeApi:
        def __init__(self, *a, **k):
            self.default_entity = "me"

    monkeypatch.setattr(online, "require_online", lambda action: None)
    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    path = tiny_sweep(tmp_path)
    assert main(["sweep", str(path), "--project", "proj"]) == 0
    out = capsys.readouterr().out
    assert "wandb agent me/proj/abc123" in out and "metacurr agent me/proj/abc123" in out
    assert sent["project"] == "proj" and sent["config"] == yaml.safe_load(path.read_text())


def test_agent_runs_wandb_agent_in_command_mode(monkeypatch, tmp_path):
    import wandb

    import metacurr.sweeps.online as online

    calls = []
    monkeypatch.setattr(online, "require_online", lambda action: None)
    monkeypatch.setattr(wandb, "agent", lambda sid, **kw: calls.append((sid, kw)))
    monkeypatch.setenv(online.OUT_ROOT_ENV, "restored-after-the-test")
    assert main(["agent", "me/proj/abc123", "--count", "3", "--out-root", str(tmp_path)]) == 0
    assert calls == [("abc123", {"entity": "me", "project": "proj", "count": 3})]
    assert os.environ[online.OUT_ROOT_ENV] == str(tmp_path)  # inherited by the trial processes


def test_a_crashing_target_is_a_failed_trial_with_its_traceback_logged(tmp_path, monkeypatch):
    import dataclasses

    import wandb

    from metacurr.sweeps import TrialCommand, run_trial
    from metacurr.sweeps.targets import TARGETS

    def crash(config_path, run_dir, **tracking):
        wandb.init(mode="offline", dir=str(tmp_path), settings=wandb.Settings(silent=True))  # left open
        raise RuntimeError("boom\ndetails")

    monkeypatch.setitem(TARGETS, "train", dataclasses.replace(TARGETS["train"], run=crash))
    res = run_trial(TrialCommand("train"), {"task.seed": 1}, tmp_path / "t", metric="final_val_loss")
    assert res.status == "failed" and res.error == "RuntimeError: boom"
    assert "Traceback" in (tmp_path / "t" / "output.log").read_text()
    assert wandb.run is None  # the target's unfinished W&B run was closed
    assert json.loads((tmp_path / "t" / "trial.json").read_text())["status"] == "failed"
