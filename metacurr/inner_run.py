"""One inner training run, advanced one control step at a time.

`InnerRun` is the single implementation of "train for k steps with these weights, then read the
monitors, then stamp the weights into the state" shared by `metacurr.train`, the Gymnasium environment,
`metacurr evaluate` and incremental retraining (`InnerRun.play`, with ``continue_model`` for its rounds),
so a controller sees exactly the same states in all of them. `seeded_parts` is the seeding recipe of
every run, single or batched (`metacurr.batched`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import MonitorConfig, TaskSpec
from metacurr.controllers.base import Controller
from metacurr.models import StagedModel, build_model
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


@dataclass
class SeededParts:
    """What a run's seed fixes before training starts (`seeded_parts`)."""

    model: StagedModel  # initialised from derive_seeds(seed)["model"], on the run's device
    order: torch.Generator  # mini-batch order and augmentation noise (InnerTrainer)
    probe: torch.Generator  # probe subsets (LearningMonitor / probe_sets)


def seeded_parts(spec: TaskSpec, curriculum: Curriculum, device: str | torch.device = "cpu") -> SeededParts:
    """The recipe every run follows, single or batched: model and generators from `derive_seeds`.

    Generators stay on the CPU whatever the device, so a CUDA run draws the same mini-batch order.
    """
    seeds = derive_seeds(spec.seed)
    model = build_model(
        spec.arch, layout=curriculum.layout, input_shape=curriculum.input_shape, n_classes=curriculum.n_classes,
        seed=seeds["model"], norm=spec.norm,
    ).to(device)  # fmt: skip
    return SeededParts(model, torch.Generator().manual_seed(seeds["order"]), torch.Generator().manual_seed(seeds["probe"]))


def seeded_probe(spec: TaskSpec) -> torch.Generator:
    """The probe-subset generator of `seeded_parts` alone (a new round of a continued run)."""
    return torch.Generator().manual_seed(derive_seeds(spec.seed)["probe"])


def stamp_weights(state: LearningState, weights: np.ndarray) -> LearningState:
    """Record the weights in force during the last control step in ``state`` (sanitised like every
    stage indicator: NaN -> 0, +-inf -> +-1e6)."""
    state.stage["weight"] = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
    return state


class InnerRun:
    """A resettable inner training run: THE control loop of one run.

    ``reset(w)`` builds data, model and optimiser from the seed and measures the initial state;
    ``step(w)`` trains k inner steps with ``w``, reads the monitors and stamps ``w`` into the state;
    `play` drives a whole episode with a `Controller`. ``weights`` holds the weights in force.

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
        self.weights: np.ndarray | None = None

    @property
    def n_stages(self) -> int:
        if self.curriculum is not None:
            return self.curriculum.n_stages
        return self._given.n_stages if self._given is not None else self.spec.n_stages

    def reset(
        self, weights: np.ndarray | None = None, *, curriculum: Curriculum | None = None, continue_model: bool = False
    ) -> LearningState:
        """Build data, model and optimiser from the seed; measure the initial state.

        Args:
            weights: the first control step's weights (default uniform).
            curriculum: train on this curriculum from now on (e.g. the stages that have arrived so far).
            continue_model: a new round of the same run (incremental retraining): keep the model, the
                mini-batch generator and the time counters; the optimiser, the monitors and the
                control-step count start afresh.
        """
        spec = self.spec
        if continue_model and self.curriculum is None:
            raise RuntimeError("continue_model needs a run that was reset before")
        cur = curriculum or self._given or build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
        self.curriculum = cur.to(self.device) if cur.val[0].device != self.device else cur
        if continue_model:
            self._monitor_seconds_before = self.monitor_seconds
            probe = seeded_probe(spec)
        else:
            self.wall_start = time.perf_counter()
            self.train_seconds = 0.0
            self._monitor_seconds_before = 0.0
            parts = seeded_parts(spec, self.curriculum, self.device)
            self.model, self._order, probe = parts.model, parts.order, parts.probe
        self.trainer = InnerTrainer(self.model, self.curriculum, spec, self._order)
        self.monitor = LearningMonitor(self.curriculum, self.monitor_cfg, probe)
        n = self.curriculum.n_stages
        self.weights = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
        self.t = 0
        self.diverged = False
        state = self.monitor.measure(self.model, 0, 0.0, None, np.full(n, np.nan), 0.0)
        state.stage["train_loss"] = state.stage["loss"].copy()
        self.state = stamp_weights(state, self.weights)
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
        self.weights = w = np.asarray(weights, dtype=np.float64)
        t0 = time.perf_counter()
        stats = self.trainer.run(w, self.spec.inner_steps)
        self.train_seconds += time.perf_counter() - t0
        self.t += 1
        train_loss = np.where(np.isnan(stats.train_loss), self.state.stage["train_loss"], stats.train_loss)
        state = self.monitor.measure(self.model, self.t, self.t / self.spec.control_steps, None, train_loss, stats.total_grad_norm)
        self.state = stamp_weights(state, w)
        if not stats.finite or not stats.params_finite:
            self.diverged = True
        return self.state

    def play(
        self,
        controller: Controller,
        rng: np.random.Generator,
        on_state: Callable[[InnerRun, LearningState], None] | None = None,
        *,
        curriculum: Curriculum | None = None,
        continue_model: bool = False,
    ) -> LearningState:
        """One episode under ``controller``: the control loop every single-run caller uses.

        ``w = controller.reset(S, rng)``; ``state = reset(w)``; then until `done`:
        ``w = controller.update(state)``, ``state = step(w)``, ``controller.after_step(state)``.
        ``on_state(self, state)`` sees every state, the initial one included (``self.t == 0``).
        ``curriculum`` / ``continue_model``: as in `reset`. Returns the last state.
        """
        n = curriculum.n_stages if curriculum is not None else self.n_stages
        state = self.reset(controller.reset(n, rng), curriculum=curriculum, continue_model=continue_model)
        if on_state is not None:
            on_state(self, state)
        while not self.done:
            state = self.step(controller.update(state))
            controller.after_step(state)
            if on_state is not None:
                on_state(self, state)
        return state

    @property
    def monitor_seconds(self) -> float:
        """Seconds in the monitors since the last fresh reset (all rounds of a continued run)."""
        return self._monitor_seconds_before + self.monitor.seconds

    @torch.no_grad()
    def evaluate(self, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[float | None, float | None, float | None, torch.Tensor]:
        """(loss, accuracy, calibration error, predicted labels) of the model on ``(x, y)`` in eval
        mode; a non-finite value is None."""
        model = self.model
        x, y = pair
        was_training = model.training
        model.eval()
        logits = torch.cat([model(x[i : i + 2048]) for i in range(0, len(y), 2048)]).float()
        model.train(was_training)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        ece = expected_calibration_error(logits.softmax(-1)[None], y[None], self.monitor_cfg.ece_bins)[0]
        out = torch.stack([loss, acc, ece]).cpu().double().numpy()
        return *[float(v) if np.isfinite(v) else None for v in out], logits.argmax(-1)

    @torch.no_grad()
    def final_metrics(self) -> dict:
        """Full evaluation at the end: val, shift, per-stage accuracy, calibration."""
        cur = self.curriculum

        def evaluate(pair):
            return self.evaluate(pair)[:3]

        val_loss, val_acc, val_ece = evaluate(cur.val)
        shift_loss = shift_acc = None
        if cur.shift is not None:
            shift_loss, shift_acc, _ = evaluate(cur.shift)
        tests = cur.stage_tests or [
            (x[: self.monitor.probe_size], y[: self.monitor.probe_size]) for x, y in cur.stages
        ]
        per_stage = [evaluate(p)[1] for p in tests]
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
