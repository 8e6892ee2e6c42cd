"""Which terms of the paper's heuristic help? A grid over its switches on TRAINING seeds (200-202).

    python experiments/heuristic_terms.py [--seeds 3] [--out runs/heuristic_terms.jsonl]

For each label-noise setting (none; 40% on stage 2; on stage 0; on stage 1) of the default MNIST-1D task,
prints the mean paired difference of final val loss (heuristic - uniform; negative = heuristic better)
for every combination of alpha (entropy spikes), gamma (gradient instability), lam (stability) and tau_d.
Seeds are < 10000, so this tuning never touches evaluation seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

import metacurr

SETTINGS = [0.0, [0, 0, 0.4], [0.4, 0, 0], [0, 0.4, 0]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="runs/heuristic_terms.jsonl")
    p.add_argument("--control-steps", type=int, help="budget override (default: the task's)")
    p.add_argument("--inner-steps", type=int, help="budget override (default: the task's)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = range(200, 200 + args.seeds)

    def loss(ctrl, ln, s, kw=None):
        return metacurr.train("mnist1d", controller=ctrl, controller_kwargs=kw, seed=s, params={"label_noise": ln},
                              control_steps=args.control_steps, inner_steps=args.inner_steps)["final_val_loss"]

    base = [[loss("uniform", ln, s) for s in seeds] for ln in SETTINGS]
    rows = []
    for tau_d, gamma, lam, alpha in itertools.product([0.01, 0.1], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]):
        kw = {"tau_d": tau_d, "gamma": gamma, "lam": lam, "alpha": alpha}
        diffs = [float(np.mean(np.array([loss("heuristic", ln, s, kw) for s in seeds]) - np.array(base[i])))
                 for i, ln in enumerate(SETTINGS)]
        rows.append({**kw, "diffs": [round(d, 4) for d in diffs], "mean": round(float(np.mean(diffs)), 4)})
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
