"""The tracking layer: offline W&B runs as written on disk, TensorBoard, tracking.json, never-raise."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest

from metacurr.cli import main
from metacurr.errors import ConfigError
from metacurr.tracking import (
    CompositeTracker,
    WandbProcessTracker,
    WandbTracker,
    fetch_artifact,
    make_tracker,
    require_online,
    resolve_mode,
    run_name,
)


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """No network, no credentials, W&B's own files in tmp."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    empty = tmp_path / "netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))


def wandb_records(run_file: Path) -> list:
    """Records of a ``run-*.wandb`` file (W&B's LevelDB-style log of protobuf ``Record`` messages).

    wandb 0.31 ships no Python reader, so this is the format: a 7-byte header (``:W&B``, magic 0xBEE1,
    version), then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) | type (1) | data``; type 1 is
    a whole record, 2/3/4 the first/middle/last piece of one.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    block, pos, buf, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # zero padding at a block's end
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
    recs = []
    for raw in out:
        r = pb.Record()
        r.ParseFromString(raw)
        recs.append(r)
    return recs


def offline_run_file(out: Path) -> Path:
    files = list(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    return files[0]


def items(update) -> dict:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in update}


def test_train_writes_offline_wandb_run_tensorboard_and_record(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--controller", "uniform", "--control-steps", "2", "--inner-steps", "2",
               "--no-progress", "--group", "study-1", "--tags", "extra,more"])
    assert rc == 0
    recs = wandb_records(offline_run_file(out))
    run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    assert run.display_name.startswith("mnist1d__uniform__0__")
    assert run.run_group == "study-1"
    assert {"uniform", "mnist1d", "mlp", "extra", "more"} <= set(run.tags)
    config = items(run.config.update)
    assert config["controller"] == "uniform"
    assert config["task"]["control_steps"] == 2 and config["task"]["inner_steps"] == 2
    assert set(config) >= {"task", "monitor", "device", "controller_kwargs"}
    history = [items(r.history.item) for r in recs if r.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history] == [0, 1, 2]
    for key in ("inner/val_acc", "inner/val_loss", "curriculum/w_stage0", "monitor/stage0/entropy",
                "monitor/stage2/grad_var"):
        assert key in history[-1], key
    summary: dict = {}
    for r in recs:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["final_val_loss"] == pytest.approx(json.loads((out / "summary.json").read_text())["final_val_loss"])
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0 for r in recs)

    record = json.loads((out / "tracking.json").read_text())
    assert record["status"] == "finished" and record["group"] == "study-1"
    assert record["wandb"]["mode"] == "offline"
    assert Path(record["wandb"]["run_dir"]) == offline_run_file(out).parent
    assert record["summary"]["final_val_acc"] == pytest.approx(summary["final_val_acc"])
    # metrics.jsonl is not duplicated into the record: only last values
    assert "rows" not in record and record["summary"]["_step"] == 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"inner/val_acc", "curriculum/w_stage1", "monitor/stage0/entropy", "summary/final_val_loss"} <= tags
    assert [e.step for e in acc.Scalars("inner/val_acc")] == [0, 1, 2]


def test_tracker_never_raises_when_wandb_init_fails(tmp_path, monkeypatch, caplog):
    import wandb

    def boom(*a, **k):
        raise RuntimeError("simulated W&B outage\nsecond line")

    monkeypatch.setattr(wandb, "init", boom)
    with caplog.at_level(logging.WARNING):
        t = make_tracker("offline", tmp_path, name="n", config={"a": 1})
    assert t.wandb_info == {"mode": "disabled"}
    assert any("simulated W&B outage" in r.getMessage() for r in caplog.records)
    assert not any("second line" in r.getMessage() for r in caplog.records)
    t.log({"inner/val_acc": 0.5}, 0)
    t.summary({"final_val_acc": 0.5})
    t.log_artifact(tmp_path / "missing", "x")
    t.finish()
    rec = json.loads((tmp_path / "tracking.json").read_text())
    assert rec["status"] == "finished" and rec["summary"]["final_val_acc"] == 0.5
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_online_failure_falls_back_to_offline(tmp_path, monkeypatch):
    import wandb

    real_init = wandb.init
    modes = []

    def init(*a, **k):
        modes.append(k["mode"])
        if k["mode"] == "online":
            raise wandb.errors.UsageError("No API key configured")
        return real_init(*a, **k)

    monkeypatch.setattr(wandb, "init", init)
    t = make_tracker("online", tmp_path, name="n", tensorboard=False)
    try:
        assert modes == ["online", "offline"]
        assert t.wandb_info["mode"] == "offline"
    finally:
        t.finish()


def test_log_failures_are_swallowed(tmp_path, monkeypatch, caplog):
    """A failing W&B log raises nothing, warns once, and the other trackers still record every value."""
    t = make_tracker("offline", tmp_path, name="n", tensorboard=False)
    wb = t.member(WandbTracker)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(wb.run, "log", broken)
    with caplog.at_level("WARNING"):
        t.log({"x": 1.0}, 0)
        t.log({"x": 2.0}, 1)
    t.finish()
    warned = [r.getMessage() for r in caplog.records if "W&B log failed" in r.getMessage()]
    assert len(warned) == 1 and "disk full" in warned[0]
    record = json.loads((tmp_path / "tracking.json").read_text())
    assert record["status"] == "finished" and record["summary"]["x"] == 2.0 and record["summary"]["_step"] == 1


def test_adopts_an_active_run_and_leaves_finishing_to_its_owner(tmp_path):
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="metacurr", settings=wandb.Settings(silent=True))
    try:
        t = make_tracker("offline", tmp_path / "trial", name="trial-name", config={"task": {"seed": 3}},
                         tags=["t1"], tensorboard=False)
        assert t.member(WandbTracker).run is run
        t.log({"inner/val_acc": 0.25}, 1)
        t.finish()
        assert wandb.run is run  # still the owner's
        assert run.config["task"] == {"seed": 3} and run.name == "trial-name" and "t1" in run.tags
    finally:
        run.finish()


def test_log_artifact_is_recorded_in_the_offline_run(tmp_path):
    bundle = tmp_path / "policy"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    out = tmp_path / "run"
    t = make_tracker("offline", out, name="agent", tensorboard=False)
    t.log_artifact(bundle, "my agent/policy", type="policy")
    t.finish()
    arts = [r.artifact for r in wandb_records(offline_run_file(out)) if r.WhichOneof("record_type") == "artifact"]
    assert [(a.name, a.type) for a in arts] == [("my-agent-policy", "policy")]


def test_disabled_mode_writes_local_files_only(tmp_path):
    t = make_tracker("disabled", tmp_path, name="n")
    t.log({"a": 1}, 0)
    t.finish()
    assert not (tmp_path / "wandb").exists()
    assert isinstance(t, CompositeTracker) and t.wandb_info == {"mode": "disabled"}
    assert json.loads((tmp_path / "tracking.json").read_text())["wandb"] == {"mode": "disabled"}


def test_resolve_mode(monkeypatch, tmp_path):
    assert resolve_mode("auto") == "offline"  # WANDB_MODE=offline (fixture)
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_mode("auto") == "offline"  # no key anywhere
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "netrc2"
    netrc.write_text("machine api.example.org\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.example.org")
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    assert resolve_mode("off") == "disabled" and resolve_mode("offline") == "offline"
    with pytest.raises(ConfigError, match="valid choices"):
        resolve_mode("sometimes")


def test_online_only_actions_fail_fast_with_one_line(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="WANDB_MODE=offline") as e:
        require_online("fetching x")
    assert "\n" not in str(e.value)
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(ConfigError, match="wandb login"):
        fetch_artifact("wandb:me/metacurr/agent-policy:v3", root=tmp_path / "cache")
    with pytest.raises(ConfigError, match="ENTITY/PROJECT/NAME:VERSION"):
        fetch_artifact("wandb:agent-policy")


def test_fetch_artifact_reuses_a_pinned_download_offline(tmp_path):
    root = tmp_path / "cache"
    folder = root / "me" / "metacurr" / "agent-policy" / "v3"
    folder.mkdir(parents=True)
    (folder.parent / "v3.complete").write_text("me/metacurr/agent-policy:v3\n")
    assert fetch_artifact("wandb:me/metacurr/agent-policy:v3", root=root) == folder


def test_run_name_is_path_safe():
    assert run_name("mnist1d", "policy:runs/a b/policy", 3, when=100) == "mnist1d__policy-runs-a-b-policy__3__100"


def test_train_cli_rejects_bad_wandb_mode(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path), "--wandb", "sometimes"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def summary_of(recs) -> dict:
    out: dict = {}
    for r in recs:
        if r.WhichOneof("record_type") == "summary":
            out.update(items(r.summary.update))
    return out


def test_evaluate_is_one_tracker_run_with_table_summary_plots_and_report(tmp_path):
    import pandas as pd

    out = tmp_path / "ev"
    rc = main(["evaluate", "--controllers", "uniform,heuristic", "--tasks", "quick", "--seeds", "2",
               "--control-steps", "2", "--inner-steps", "2", "--no-progress", "--out", str(out),
               "--name", "my-eval", "--group", "study-2", "--tags", "t1"])
    assert rc == 0
    recs = wandb_records(offline_run_file(out))
    run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    assert run.display_name == "my-eval" and run.run_group == "study-2"
    assert {"evaluate", "quick", "t1"} <= set(run.tags)
    assert items(run.config.update)["job"] == "evaluate"

    # the results table: one row per controller x task x seed, every column of results.csv
    logged: dict = {}
    for r in recs:
        if r.WhichOneof("record_type") == "history":
            logged.update(items(r.history.item))
    ref = {k.split("/")[-1]: v for k, v in logged.items() if k.startswith("eval/results/")}
    assert ref["_type"] == "table-file" and ref["nrows"] == 4
    table = json.loads((offline_run_file(out).parent / "files" / ref["path"]).read_text())
    csv = pd.read_csv(out / "results.csv")
    assert table["columns"] == list(csv.columns)
    rows = pd.DataFrame(table["data"], columns=table["columns"])
    assert sorted(zip(rows["controller"], rows["seed"], rows["final_val_acc"])) == \
        sorted(zip(csv["controller"], csv["seed"], csv["final_val_acc"]))

    # the statistics as summary values, equal to stats.json
    stats = json.loads((out / "stats.json").read_text())
    summary = summary_of(recs)
    for c in ("uniform", "heuristic"):
        for k in ("iqm", "iqm_low", "iqm_high"):
            assert summary[f"eval/aggregate/{c}/{k}"] == pytest.approx(stats["aggregate"][c][k])
    assert summary["eval/paired/uniform/heuristic/mean"] == pytest.approx(stats["paired"]["uniform"]["heuristic"]["mean"])
    assert summary["eval/poi/uniform/heuristic/p"] == pytest.approx(stats["poi"]["uniform"]["heuristic"]["p"])
    assert summary["eval/runs"] == 4

    # every plot as an image, the report files as one artifact
    pngs = {p.stem for p in (out / "plots").glob("*.png")}
    assert pngs and {f"plots/{s}" for s in pngs} == {k.rsplit("/", 1)[0] for k in logged if k.startswith("plots/")}
    assert all(logged[f"plots/{s}/_type"] == "image-file" for s in pngs)
    arts = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "evaluation"]
    assert [a.name for a in arts] == ["evaluation-ev"]
    paths = {e.path for a in arts for e in a.manifest.contents}
    assert {"results.csv", "report.md", "stats.json"} <= paths and any(p.startswith("plots/") for p in paths)
    assert not any(p.startswith(("runs/", "wandb/")) for p in paths)

    record = json.loads((out / "tracking.json").read_text())
    assert record["status"] == "finished" and record["summary"]["eval/runs"] == 4


def test_evaluate_goes_on_when_wandb_cannot_start_or_reach_its_server(tmp_path, monkeypatch):
    import wandb

    import metacurr

    def boom(*a, **k):
        raise RuntimeError("simulated W&B outage")

    monkeypatch.setattr(wandb, "init", boom)
    res = metacurr.evaluate("uniform", out=tmp_path / "a", tasks="quick", seeds=1, control_steps=2, inner_steps=2,
                            wandb="offline")
    assert res.wandb_info == {"mode": "disabled"} and len(res.results) == 1
    monkeypatch.undo()
    # an online run with an unreachable server falls back to offline; the evaluation completes
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr("metacurr.tracking.wandb_tracker.ONLINE_INIT_TIMEOUT_S", 3.0)  # seconds, not 20
    res = metacurr.evaluate("uniform", out=tmp_path / "b", tasks="quick", seeds=1, control_steps=2, inner_steps=2,
                            wandb="online")
    assert len(res.results) == 1 and res.wandb_info["mode"] in ("offline", "disabled")


def test_evaluate_rejects_a_bad_wandb_mode_before_writing(tmp_path):
    import metacurr

    with pytest.raises(ConfigError, match="unknown W&B mode .sometimes.; valid choices"):
        metacurr.evaluate("uniform", out=tmp_path / "x", tasks="quick", seeds=1, wandb="sometimes")
    assert not (tmp_path / "x").exists()


def test_a_run_in_a_child_process_is_written_like_one_in_this_process(tmp_path, monkeypatch):
    """WandbProcessTracker: history, summary, exit code and where the run lives, as WandbTracker writes them.

    An empty WANDB_MODE (as `export WANDB_MODE=` leaves it) means unset: wandb itself rejects it.
    """
    monkeypatch.setenv("WANDB_MODE", "")
    out = tmp_path / "run"
    t = make_tracker("auto", out, name="child", config={"task": {"seed": 1}}, tensorboard=False, wandb_process=True)
    assert isinstance(t.member(WandbProcessTracker), WandbProcessTracker)
    for step in range(3):
        t.log({"inner/val_acc": 0.25 * step, "curriculum/weights": [1, 2]}, step)
    t.summary({"final_val_acc": 0.5})
    t.finish(exit_code=1)
    recs = wandb_records(offline_run_file(out))
    run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    assert run.display_name == "child" and items(run.config.update)["task"] == {"seed": 1}
    history = [items(r.history.item) for r in recs if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], h["inner/val_acc"]) for h in history] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    summary: dict = {}
    for r in recs:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["final_val_acc"] == 0.5
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 1 for r in recs)
    record = json.loads((out / "tracking.json").read_text())
    assert record["status"] == "failed" and record["wandb"]["mode"] == "offline"
    assert Path(record["wandb"]["run_dir"]) == offline_run_file(out).parent == Path(t.wandb_info["run_dir"])


def test_a_child_process_that_cannot_start_wandb_warns_here_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "sometimes")  # wandb's settings reject it in the child
    with caplog.at_level(logging.WARNING):
        t = make_tracker("offline", tmp_path, name="n", tensorboard=False, wandb_process=True)
        t.log({"inner/val_acc": 0.5}, 0)
        t.finish()
    assert any("W&B unavailable" in r.getMessage() for r in caplog.records)
    assert t.wandb_info == {"mode": "disabled"}
    record = json.loads((tmp_path / "tracking.json").read_text())
    assert record["status"] == "finished" and record["wandb"] == {"mode": "disabled"}
    assert record["summary"]["inner/val_acc"] == 0.5 and not (tmp_path / "wandb").exists()


def test_a_run_active_in_this_process_is_adopted_even_when_a_child_process_is_asked_for(tmp_path):
    """A sweep agent's W&B run lives in this process: `train_run` logs into it, not into a child's run."""
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="metacurr", settings=wandb.Settings(silent=True))
    try:
        t = make_tracker("offline", tmp_path / "trial", name="trial", tensorboard=False, wandb_process=True)
        assert t.member(WandbProcessTracker) is None and t.member(WandbTracker).run is run
        t.finish()
        assert wandb.run is run
    finally:
        run.finish()
