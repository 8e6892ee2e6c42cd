import json

import numpy as np
import pytest
import torch

import metacurr
from metacurr.config import MonitorConfig, TaskSpec
from metacurr.inner_run import InnerRun


def _spec(**kw):
    return TaskSpec(**{"family": "custom", "arch": "mlp", "control_steps": 3, "inner_steps": 2, "batch_size": 16, **kw})


def test_zero_weight_stage_is_not_trained(tiny_curriculum):
    """A stage with weight 0 has no effect on the parameters: replacing its data changes nothing."""
    cur = tiny_curriculum
    x2, y2 = cur.stages[2]
    g = torch.Generator().manual_seed(1)
    other = metacurr.Curriculum.from_tensors(
        [cur.stages[0], cur.stages[1], (torch.randn(x2.shape, generator=g) * 5, torch.randint(0, 3, y2.shape, generator=g))],
        val=cur.val, shift=cur.shift, name="tiny")

    def params_after(curriculum, weights):
        run = InnerRun(_spec(), MonitorConfig(probe_size=32), curriculum=curriculum)
        before = run.reset().stage["train_loss"].copy()
        state = run.step(np.array(weights))
        return torch.cat([p.detach().flatten() for p in run.model.parameters()]), before, state

    a, before, state = params_after(cur, [0.5, 0.5, 0.0])
    b, _, _ = params_after(other, [0.5, 0.5, 0.0])
    assert torch.equal(a, b)  # stage 2's data never reached the parameters
    c, _, _ = params_after(cur, [0.4, 0.4, 0.2])
    d, _, _ = params_after(other, [0.4, 0.4, 0.2])
    assert not torch.equal(c, d)  # ... which it does as soon as its weight is positive
    # The inactive stage keeps its previous train_loss; the active ones got fresh mini-batch losses.
    assert state.stage["train_loss"][2] == before[2]
    assert np.all(state.stage["train_loss"][:2] != before[:2]) and np.all(np.isfinite(state.stage["train_loss"]))


def test_weights_change_training(tiny_curriculum):
    a = metacurr.train(tiny_curriculum, controller="uniform", control_steps=3, inner_steps=3, batch_size=16)
    b = metacurr.train(tiny_curriculum, controller="sequential", control_steps=3, inner_steps=3, batch_size=16)
    assert a["final_val_loss"] != b["final_val_loss"]


def test_train_writes_artifacts_and_summary(tiny_curriculum, tmp_path):
    s = metacurr.train(tiny_curriculum, arch="mlp", controller="heuristic", seed=1, control_steps=4, inner_steps=2, out=tmp_path)
    for k in ("final_val_acc", "final_val_loss", "shift_acc", "per_stage_acc", "wall_s", "monitor_time_fraction", "diverged"):
        assert k in s
    assert len(s["per_stage_acc"]) == 3 and 0 <= s["monitor_time_fraction"] < 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(abs(sum(r[f"curriculum/w_stage{i}"] for i in range(3)) - 1) < 1e-9 for r in rows)
    assert {"inner/val_loss", "monitor/stage2/entropy", "monitor/stage0/drift", "monitor/stage1/grad_var"} <= set(rows[-1])
    assert {p.name for p in (tmp_path / "plots").glob("*.png")} == {"weights.png", "indicators.png", "stage_accuracy.png"}
    cfg = (tmp_path / "config.yaml").read_text()
    assert "controller: heuristic" in cfg and "curriculum:" in cfg
    assert json.loads((tmp_path / "summary.json").read_text())["final_val_acc"] == pytest.approx(s["final_val_acc"])


def test_same_seed_same_numbers(tiny_curriculum, tmp_path):
    def rows(out):
        metacurr.train(tiny_curriculum, controller="heuristic", seed=5, control_steps=3, inner_steps=3, out=out)
        return [{k: v for k, v in json.loads(line).items()} for line in (out / "metrics.jsonl").read_text().splitlines()]

    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    other = metacurr.train(tiny_curriculum, controller="heuristic", seed=6, control_steps=3, inner_steps=3)
    same = metacurr.train(tiny_curriculum, controller="heuristic", seed=5, control_steps=3, inner_steps=3)
    assert other["final_val_loss"] != same["final_val_loss"]


def test_divergence_is_recorded_not_raised():
    x = torch.full((64, 8), 3e38)  # finite, but the first linear layer overflows to inf
    y = torch.zeros(64, dtype=torch.long)
    y[::2] = 1
    cur = metacurr.Curriculum.from_tensors([(x, y), (x, y)], val=(x, y))
    s = metacurr.train(cur, controller="uniform", control_steps=4, inner_steps=2)
    # recorded at the first control step (the first forward overflows), and the run stops there
    assert s["diverged"] is True and s["control_steps_done"] == 1


def test_from_tensors_user_data_in_train(tiny_curriculum):
    s = metacurr.train(tiny_curriculum, arch="cnn", controller="linear-pacing", control_steps=2, inner_steps=2)
    assert s["task"] == "custom" and s["n_stages"] == 3


def test_incompatible_custom_layout():
    y = torch.arange(10) % 2  # two classes: a one-class curriculum is refused by from_tensors itself
    cur = metacurr.Curriculum.from_tensors([(torch.randn(10, 4, 3), y)] * 2, val=(torch.randn(10, 4, 3), y))
    cur.layout = "sequence"
    with pytest.raises(metacurr.ConfigError, match="cannot read"):
        metacurr.train(cur, arch="mlp", control_steps=1, inner_steps=1)
