"""Evaluation figures: the weights figure shows where controllers differ most; labels are short."""

from __future__ import annotations

from metacurr.evaluation import figures


def _rec(ctrl: str, task: str, seed: int, w0: float, n: int = 3, steps: int = 4) -> dict:
    rest = (1 - w0) / (n - 1)
    rows = [{"step": t, "inner/val_acc": 0.5 + 0.01 * t,
             **{f"curriculum/w_stage{s}": (w0 if s == 0 else rest) for s in range(n)},
             **{f"monitor/stage{s}/{k}": 0.1 + 0.01 * t for s in range(n) for k in ("entropy", "grad_var", "drift")}}
            for t in range(steps)]
    return {"task": task, "seed": seed, "rows": rows, "summary": {"n_stages": n}, "spec": {"label": ctrl}}


def test_most_different_ranks_tasks_by_weight_spread():
    recs = [_rec("uniform", "same", s, 1 / 3) for s in (1, 2)] + [_rec("x", "same", s, 0.34) for s in (1, 2)]
    recs += [_rec("uniform", "apart", 1, 1 / 3), _rec("x", "apart", 1, 0.6), _rec("uniform", "apart", 2, 1 / 3),
             _rec("x", "apart", 2, 0.9)]
    assert figures.most_different(recs, k=1) == [("apart", 2)]  # the task, and its seed, where weights differ most
    assert [t for t, _ in figures.most_different(recs, k=2)] == ["apart", "same"]


def test_short_labels():
    assert figures.short_label("policy:runs/main/agent/policy") == "policy:…/agent/policy"
    assert figures.short_label("open-loop:policy:runs/main/agent/policy") == "open-loop:policy:…/agent/policy"
    assert figures.short_label("policy:default") == "policy:default" and figures.short_label("dwa") == "dwa"


def test_figures_write_pngs(tmp_path):
    recs = [_rec(c, t, 1, w) for t in ("a", "b") for c, w in (("uniform", 1 / 3), ("dwa", 0.34), ("policy:r/x/y/policy", 0.7))]
    out = figures.plot_weight_trajectories(recs, tmp_path / "w.png", "t", figures.most_different(recs))
    figures.plot_indicator_traces([r for r in recs if r["task"] == "a"], tmp_path / "i.png", "t")
    ctrls = ["uniform", "dwa", "policy:r/x/y/policy"]
    poi = {ref: {c: {"p": 0.5, "low": 0.4, "high": 0.6} for c in ctrls if c != ref} for ref in ("uniform", "dwa")}
    figures.plot_probability_of_improvement({"poi": poi, "controllers": ctrls}, tmp_path / "p.png")
    for name in ("w.png", "i.png", "p.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert out == tmp_path / "w.png"
