"""`metacurr.evaluate`: the library call behind `metacurr evaluate`, its result object and its backend seam."""

import concurrent.futures as cf
import contextlib

import pandas as pd
import pytest

import metacurr
from metacurr.cli import main
from metacurr.evaluation.executors import local_backend

TINY = {"tasks": "quick", "seeds": 2, "control_steps": 2, "inner_steps": 2}
# run-to-run timing columns; everything else must match bit for bit
TIMING = ["wall_s", "train_s", "monitor_s", "monitor_time_fraction"]


def test_evaluate_returns_the_table_stats_and_paths_it_wrote(tmp_path):
    res = metacurr.evaluate("uniform,best-static", out=tmp_path / "api", **TINY)
    assert isinstance(res, metacurr.EvaluationResult)
    assert len(res.results) == 4 and set(res.results["controller"]) == {"uniform", "best-static"}
    assert res.ran == 4 and res.skipped == 0 and res.n_diverged == 0
    assert set(res.stats["controllers"]) == {"uniform", "best-static"}
    assert len(res.searches) == 1 and len(next(iter(res.searches.values()))["weights"]) == 3
    for key in ("results", "report", "stats", "plots"):
        assert res.paths[key].exists(), key
    on_disk = pd.read_csv(res.paths["results"])
    assert list(on_disk["final_val_acc"]) == list(res.results["final_val_acc"])
    again = metacurr.evaluate("uniform,best-static", out=tmp_path / "api", **TINY)  # resumes: nothing reruns
    assert again.ran == 0 and again.skipped == 4


def test_cli_and_library_give_the_same_numbers(tmp_path):
    res = metacurr.evaluate(["uniform", "heuristic"], out=tmp_path / "api", **TINY)
    assert main(["evaluate", "--controllers", "uniform,heuristic", "--tasks", "quick", "--seeds", "2",
                 "--control-steps", "2", "--inner-steps", "2", "--no-progress", "--out", str(tmp_path / "cli")]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "results.csv").drop(columns=TIMING)
    api = pd.read_csv(res.paths["results"]).drop(columns=TIMING)
    pd.testing.assert_frame_equal(cli, api)


def test_a_custom_backend_receives_every_job(tmp_path):
    submitted: list[str] = []

    class Recording(cf.Executor):
        def __init__(self, inner: cf.Executor):
            self.inner = inner

        def submit(self, fn, /, *args, **kwargs):
            submitted.append(fn.__name__)
            return self.inner.submit(fn, *args, **kwargs)

    @contextlib.contextmanager
    def backend(workers: int):
        with local_backend(workers) as ex:
            yield Recording(ex)

    res = metacurr.evaluate("uniform,best-static", out=tmp_path / "ev", backend=backend, **TINY)
    n_candidates = len(next(iter(res.searches.values()))["candidates"])
    assert submitted.count("run_cell") == 4 and submitted.count("search_job") == n_candidates


def test_bad_input_is_a_config_error_before_anything_is_written(tmp_path):
    with pytest.raises(metacurr.ConfigError, match="valid choices"):
        metacurr.evaluate("uniform,no-such-controller", out=tmp_path / "ev", **TINY)
    assert not (tmp_path / "ev").exists()


def test_a_policy_bundle_replaced_in_place_is_run_again_not_resumed(tmp_path):
    import shutil

    from metacurr.agents.bundle import derive_bundle
    from metacurr.agents.policy_controller import default_bundle_path

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    ctrls = f"uniform,policy:{bundle}"
    first = metacurr.evaluate(ctrls, out=tmp_path / "ev", **TINY)
    assert first.ran == 4
    # the same path now holds another bundle (same weights, the fallback off): its cells are stale
    derive_bundle(default_bundle_path(), bundle, {"fallback": "none"})
    second = metacurr.evaluate(ctrls, out=tmp_path / "ev", **TINY)
    assert second.ran == 2 and second.skipped == 2  # uniform resumed, the policy's cells run again
    third = metacurr.evaluate(ctrls, out=tmp_path / "ev", **TINY)
    assert third.ran == 0 and third.skipped == 4
