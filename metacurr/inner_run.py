"""One inner training run, advanced one control step at a time.

`InnerRun` is the single implementation of "train for k steps with these weights, then read the
monitors" shared by `metacurr.train`, the Gymnasium environment and `metacurr evaluate`, so a controller
sees exactly the same states in all three.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import MonitorConfig, TaskSpec
from metacurr.models import build_model
from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.learning_monitor import LearningMonitor
from metacurr.monitors.state import LearningState
from metacurr.tasks import build_curriculum
from metacurr.tasks.curriculum import Curriculum
from metacurr.trainer import InnerTrainer


def derive_seeds(seed: int) -> dict[str, int]:
    """Independent sub-seeds for model init, mini-batch order, probes and the controller."""
    kids = np.random.SeedSequence(int(seed)).spawn(4)
    names = ("model", "order", "probe", "controller")
    return {n: int(k.generate_state(1)[0]) for n, k in zip(names, kids)}


class InnerRun:
    """A resettable inner training run.

    Args:
        spec: the task (family, arch, stages, seed, budget, optimiser).
        monitor: monitor settings.
        curriculum: use this curriculum instead of building ``spec.family`` (bring-your-own data).
        device: torch device.
    """

    def __init__(
        self,
        spec: TaskSpec,
        monitor: MonitorConfig | None = None,
        curriculum: Curriculum | None = None,
        device: str | torch.device = "cpu",
    ):
        self.spec = spec
        self.monitor_cfg = monitor or MonitorConfig()
        self.device = torch.device(device)
        self._given = curriculum
        self.curriculum: Curriculum | None = None
        self.state: LearningState | None = None

    @property
    def n_stages(self) -> int:
        return self._given.n_stages if self._given is not None else self.spec.n_stages

    def reset(self, weights: np.ndarray | None = None) -> LearningState:
        """Build data, model and optimiser from the seed; measure the initial state."""
        spec = self.spec
        self.wall_start = time.perf_counter()
        cur = self._given or build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
        self.curriculum = cur.to(self.device) if cur.val[0].device != self.device else cur
        seeds = derive_seeds(spec.seed)
        self.model = build_model(
            spec.arch,
            layout=cur.layout,
            input_shape=cur.input_shape,
            n_classes=cur.n_classes,
            seed=seeds["model"],
            norm=spec.norm,
        ).to(self.device)
        self.trainer = InnerTrainer(self.model, self.curriculum, spec, torch.Generator().manual_seed(seeds["order"]))
        self.monitor = LearningMonitor(self.curriculum, self.monitor_cfg, torch.Generator().manual_seed(seeds["probe"]))
        n = cur.n_stages
        w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
        self.t = 0
        self.diverged = False
        self.train_seconds = 0.0
        self.state = self.monitor.measure(self.model, 0, 0.0, w, np.full(n, np.nan), 0.0)
        self.state.stage["train_loss"] = self.state.stage["loss"].copy()
        return self.state

    @property
    def done(self) -> bool:
        return self.diverged or self.t >= self.spec.control_steps

    def step(self, weights: np.ndarray) -> LearningState:
        """Train one control step with ``weights``; return the new state. Divergence sets ``diverged``."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the run is over; call reset()")
        w = np.asarray(weights, dtype=np.float64)
        t0 = time.perf_counter()
        stats = self.trainer.run(w, self.spec.inner_steps)
        self.train_seconds += time.perf_counter() - t0
        self.t += 1
        train_loss = np.where(np.isnan(stats.train_loss), self.state.stage["train_loss"], stats.train_loss)
        self.state = self.monitor.measure(
            self.model, self.t, self.t / self.spec.control_steps, w, train_loss, stats.total_grad_norm
        )
        if not stats.finite or not stats.params_finite:
            self.diverged = True
        return self.state

    @property
    def monitor_seconds(self) -> float:
        return self.monitor.seconds

    @torch.no_grad()
    def final_metrics(self) -> dict:
        """Full evaluation at the end: val, shift, per-stage accuracy, calibration."""
        cur, model = self.curriculum, self.model
        model.eval()

        def evaluate(pair):
            x, y = pair
            logits = torch.cat([model(x[i : i + 2048]) for i in range(0, len(y), 2048)]).float()
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(-1) == y).float().mean()
            ece = expected_calibration_error(logits.softmax(-1)[None], y[None], self.monitor_cfg.ece_bins)[0]
            out = torch.stack([loss, acc, ece]).cpu().double().numpy()
            return [float(v) if np.isfinite(v) else None for v in out]

        val_loss, val_acc, val_ece = evaluate(cur.val)
        shift_loss = shift_acc = None
        if cur.shift is not None:
            shift_loss, shift_acc, _ = evaluate(cur.shift)
        tests = cur.stage_tests or [
            (x[: self.monitor.probe_size], y[: self.monitor.probe_size]) for x, y in cur.stages
        ]
        per_stage = [evaluate(p)[1] for p in tests]
        model.train()
        wall = time.perf_counter() - self.wall_start
        return {
            "final_val_loss": val_loss,
            "final_val_acc": val_acc,
            "val_ece": val_ece,
            "shift_loss": shift_loss,
            "shift_acc": shift_acc,
            "shift_drop": None if shift_acc is None or val_acc is None else val_acc - shift_acc,
            "per_stage_acc": per_stage,
            "control_steps_done": self.t,
            "diverged": bool(self.diverged),
            "wall_s": wall,
            "train_s": self.train_seconds,
            "monitor_s": self.monitor_seconds,
            "monitor_time_fraction": self.monitor_seconds / max(wall, 1e-9),
        }
