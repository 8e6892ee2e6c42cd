"""Studies: multi-step research jobs (train agents, then evaluate them) behind one library call each.

- `main_job`: the README's headline table: one agent against the baselines on held-out task sets.
- `design_ablation`: one agent per design variant, all compared in one evaluation.
- `transfer`: one agent per PPO seed, as trained and with its fallback toward uniform, paired with uniform
  per task set.
- `overview_figure`: the README's picture (three controllers on one noisy curriculum).

``experiments/`` scripts are thin wrappers: parse arguments, call one of these, print.
"""
