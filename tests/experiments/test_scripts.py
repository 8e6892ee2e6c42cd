"""Every experiments/ script runs end to end with a tiny budget (CleanRL-style smoke tests).

The scripts are thin (arguments -> one library call -> printing); these tests prove each still parses,
reaches the library and prints what it promises. The numbers of the full budgets are not checked here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
TINY_EVAL = ["--tasks", "quick", "--seeds", "1", "--control-steps", "2", "--inner-steps", "2", "--workers", "1"]


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def tiny_agent(folder: Path) -> Path:
    cfg = folder / "agent.yaml"
    cfg.write_text(
        "name: tiny\n"
        "env: {distribution: default-mlp, control_steps: 2, inner_steps: 2}\n"
        "train: {total_timesteps: 24, n_envs: 2, vec_env: dummy, checkpoint_every: 24}\n"
        "ppo: {n_steps: 12, batch_size: 12, n_epochs: 1}\n"
    )
    return cfg


def test_every_script_has_a_smoke_test():
    scripts = {p.stem for p in EXPERIMENTS.glob("*.py")}
    tested = {"main_job", "design_ablation", "train_default_policy", "noise_kinds", "heuristic_terms", "custom_loop",
              "transfer", "claims", "readme_figure"}
    assert scripts == tested, f"experiments/ scripts without a smoke test: {sorted(scripts - tested)}"


def test_main_job_trains_evaluates_and_writes_the_headline(tmp_path, capsys):
    out = tmp_path / "main"
    assert script("main_job").main(["--out", str(out), "--agent-config", str(tiny_agent(tmp_path)), *TINY_EVAL]) == 0
    printed = capsys.readouterr().out
    head = (out / "headline.md").read_text()
    assert "Held-out set `quick`" in head and "learned policy, open-loop" in head and "heuristic (paper)" in head
    assert head in printed and (out / "agent" / "policy" / "manifest.json").is_file()
    assert (out / "eval" / "quick" / "report.md").is_file()


def test_main_job_refuses_a_bad_task_set_in_one_line(tmp_path, capsys):
    assert script("main_job").main(["--out", str(tmp_path / "m"), "--tasks", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid choices" in err and len(err.splitlines()) == 1 and not (tmp_path / "m").exists()


def test_design_ablation_trains_each_variant_and_compares_them(tmp_path, capsys):
    design = tmp_path / "design.yaml"
    design.write_text(
        f"base: {tiny_agent(tmp_path)}\n"
        "eval: {tasks: quick, seeds: 1, baselines: uniform, control_steps: 2, inner_steps: 2}\n"
        "variants:\n"
        "  - {name: rel, description: relative, overrides: {env: {mapping: {mode: relative}}}}\n"
        "  - {name: abs, description: absolute, overrides: {env: {mapping: {mode: absolute}}}}\n"
    )
    out = tmp_path / "design"
    assert script("design_ablation").main(["--config", str(design), "--out", str(out), "--workers", "1"]) == 0
    text = (out / "summary.md").read_text()
    assert "| rel |" in text and "| abs |" in text and "Closed-loop minus open-loop" in text
    assert text in capsys.readouterr().out
    assert script("design_ablation").main(["--config", str(design), "--out", str(out), "--only", "nope"]) == 2


def tiny_transfer(folder: Path) -> Path:
    cfg = folder / "transfer.yaml"
    cfg.write_text(
        f"base: {tiny_agent(folder)}\n"
        "agent: {name: tiny-transfer, policy: equivariant, env: {observation_version: 3}, ppo: {policy_kwargs: {hidden: 8}}}\n"
        "seeds: [1]\n"
        "fallback: {fallback: shrink, fallback_z: [2.0, 4.0]}\n"
        "eval: {baselines: uniform, control_steps: 2, inner_steps: 2}\n"
    )
    return cfg


def test_transfer_trains_derives_the_fallback_and_writes_the_summary(tmp_path, capsys):
    out = tmp_path / "transfer"
    argv = ["--config", str(tiny_transfer(tmp_path)), "--out", str(out), "--tasks", "quick", "--seeds", "1",
            "--workers", "1", "--timesteps", "24"]
    assert script("transfer").main(argv) == 0
    printed = capsys.readouterr().out
    text = (out / "summary-quick.md").read_text()
    assert "## `quick`" in text and "| learned |" in text and "| learned + fallback |" in text
    assert "The fallback changed the final weights of" in text and text in printed
    assert "[transfer] training seed 1 (24 steps)" in printed
    assert (out / "agents" / "seed1" / "policy-fallback" / "manifest.json").is_file()
    assert (out / "eval" / "quick" / "report.md").is_file()
    assert script("transfer").main(argv) == 0  # resumed: nothing trains again, the same summary
    assert "training seed" not in capsys.readouterr().out and (out / "summary-quick.md").read_text() == text


def test_transfer_compares_with_another_recipe_over_agent_seeds(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    cfg = tiny_transfer(tmp_path)
    cfg.write_text(cfg.read_text() + f"compare:\n  plain: {{config: {tiny_transfer(other)}, out: {tmp_path / 'plain'}}}\n")
    out = tmp_path / "transfer"
    argv = ["--config", str(cfg), "--out", str(out), "--tasks", "quick", "--seeds", "1", "--workers", "1", "--timesteps", "24"]
    assert script("transfer").main(argv) == 0
    text = (out / "summary-quick.md").read_text()
    assert "| plain |" in text and "| plain + fallback |" in text
    assert "| learned + fallback − plain + fallback |" in text
    assert (tmp_path / "plain" / "agents" / "seed1" / "policy" / "manifest.json").is_file()  # trained where named
    # --no-compare leaves the other recipe out; eval.plain: false evaluates only the fallback variants
    cfg.write_text(cfg.read_text().replace("inner_steps: 2}", "inner_steps: 2, plain: false}"))
    argv[argv.index(str(out))] = str(tmp_path / "alone")
    assert script("transfer").main([*argv, "--no-compare", "--baselines", "uniform,heuristic"]) == 0
    alone = (tmp_path / "alone" / "summary-quick.md").read_text()
    assert "| learned + fallback |" in alone and "| learned |" not in alone and "plain" not in alone
    assert "| heuristic |" in alone  # --baselines replaces the YAML's eval.baselines (uniform)
    cfg.write_text(cfg.read_text().replace("compare:\n  plain: {config", "compare:\n  plain: {cfg"))
    capsys.readouterr()
    assert script("transfer").main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "compare" in err and len(err.splitlines()) == 1


def test_transfer_refuses_a_bad_task_set_in_one_line(tmp_path, capsys):
    out = tmp_path / "t"
    assert script("transfer").main(["--config", str(tiny_transfer(tmp_path)), "--out", str(out), "--tasks", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid choices" in err and len(err.splitlines()) == 1 and not out.exists()


def test_train_default_policy_installs_the_bundle_where_asked(tmp_path, capsys):
    dest = tmp_path / "installed" / "default"
    dest.parent.mkdir()
    rc = script("train_default_policy").main(["--config", str(tiny_agent(tmp_path)), "--out", str(tmp_path / "run"),
                                              "--dest", str(dest)])
    assert rc == 0 and (dest / "manifest.json").is_file() and (dest / "model.zip").is_file()  # plain PPO.load works
    import metacurr

    assert metacurr.load_controller(f"policy:{dest}") is not None
    assert f"installed {dest}" in capsys.readouterr().out


def test_train_default_policy_ships_a_transfer_recipes_fallback_variant(tmp_path, capsys):
    import json

    dest = tmp_path / "default"
    argv = ["--transfer", str(tiny_transfer(tmp_path)), "--seed", "1", "--timesteps", "24", "--out", str(tmp_path / "study"),
            "--dest", str(dest)]
    assert script("train_default_policy").main(argv) == 0
    man = json.loads((dest / "manifest.json").read_text())
    assert man["policy_kwargs"]["fallback"] == "shrink" and man["policy_class"] == "equivariant"
    assert (tmp_path / "study" / "agents" / "seed1" / "policy-fallback").is_dir() and (dest / "model.zip").is_file()
    capsys.readouterr()
    assert script("train_default_policy").main([*argv[:2], "--seed", "7", "--dest", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid choices: 1" in err and len(err.splitlines()) == 1 and not (tmp_path / "no").exists()


def test_noise_kinds_prints_its_table(capsys):
    assert script("noise_kinds").main(["--seeds", "1", "--control-steps", "2", "--inner-steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "uniform" in lines[2] and "systematic" in lines[3]


def test_heuristic_terms_writes_one_row_per_switch_setting(tmp_path):
    out = tmp_path / "terms.jsonl"
    script("heuristic_terms").main(["--seeds", "1", "--control-steps", "2", "--inner-steps", "2", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and all(len(r["diffs"]) == 4 for r in rows)


def test_custom_loop_steers_a_plain_pytorch_loop():
    res = script("custom_loop").main(["--controller", "heuristic", "--steps", "2", "--inner", "2"])
    assert res["controller"] == "heuristic" and len(res["final_weights"]) == 3 and 0 <= res["val_acc"] <= 1


def test_readme_figure_draws_three_runs(tmp_path, capsys):
    png = tmp_path / "fig" / "overview.png"
    assert script("readme_figure").main(["--out", str(png), "--control-steps", "2", "--inner-steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and printed.startswith(f"wrote {png}")
    assert all(label in printed for label in ("uniform", "heuristic (paper)", "learned policy"))


def test_claims_script_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    assert script("claims").main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("claims: error:") and len(err.splitlines()) == 1
