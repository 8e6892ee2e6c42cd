"""A learned rebalancing policy steering *your own* PyTorch training loop (not metacurr's trainer).

    python experiments/custom_loop.py [--controller policy:default] [--steps 20] [--seed 0]

The loop below is plain PyTorch: its own model, its own DataLoaders per stage, its own optimiser.
metacurr contributes two objects: a controller (``metacurr.load_controller``) and a `LearningMonitor`
that reads the learner's state from fixed probe batches at each control step. The per-stage training
losses the loop measured are handed to the monitor, so the controller sees the same `LearningState`
layout it was trained on.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import metacurr
from metacurr.config import MonitorConfig
from metacurr.monitors import FeatureModel, LearningMonitor


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="learned controller in a custom PyTorch loop")
    p.add_argument("--controller", default="policy:default")
    p.add_argument("--steps", type=int, default=20, help="control steps")
    p.add_argument("--inner", type=int, default=10, help="optimiser steps per control step")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    cur = metacurr.build_curriculum("mnist1d", n_stages=3, seed=args.seed, params={"label_noise": [0.0, 0.0, 0.3]})
    # --- the user's own model, data pipeline and optimiser --------------------------------------
    body = nn.Sequential(nn.Linear(40, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU())
    head = nn.Linear(64, cur.n_classes)
    model = FeatureModel(body, head)  # lets the monitors read features and head gradients
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loaders = [DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, drop_last=True) for x, y in cur.stages]
    iters = [iter(dl) for dl in loaders]

    def next_batch(s: int):
        try:
            return next(iters[s])
        except StopIteration:
            iters[s] = iter(loaders[s])
            return next(iters[s])

    # --- metacurr: controller + monitor ---------------------------------------------------------
    ctrl = metacurr.load_controller(args.controller)
    monitor = LearningMonitor(cur, MonitorConfig(), torch.Generator().manual_seed(args.seed))
    n = cur.n_stages
    w = ctrl.reset(n, np.random.default_rng(args.seed))
    state = monitor.measure(model, 0, 0.0, w, np.full(n, np.log(cur.n_classes)), 0.0)
    trajectory = []
    for t in range(args.steps):
        w = ctrl.update(state)
        sums = np.zeros(n)
        for _ in range(args.inner):
            losses = [nn.functional.cross_entropy(model(xb), yb) for xb, yb in (next_batch(s) for s in range(n))]
            loss = sum(float(w[s]) * losses[s] for s in range(n))
            opt.zero_grad()
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0))
            opt.step()
            sums += [float(v.detach()) for v in losses]
        state = monitor.measure(model, t + 1, (t + 1) / args.steps, w, sums / args.inner, gnorm)
        trajectory.append([round(float(v), 4) for v in w])
    result = {
        "controller": args.controller,
        "val_acc": state.glob["val_acc"],
        "val_loss": state.glob["val_loss"],
        "final_weights": trajectory[-1],
        "monitor_s": monitor.seconds,
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
