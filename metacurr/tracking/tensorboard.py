"""`TensorBoardTracker`: the run's scalar metrics as TensorBoard events in ``out_dir/tb``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from metacurr.tracking.base import Tracker
from metacurr.tracking.values import scalars

log = logging.getLogger(__name__)


class TensorBoardTracker(Tracker):
    """Writes every scalar of every logged row with ``SummaryWriter.add_scalar`` (same keys as W&B).

    The summary's scalars go under ``summary/`` at the last logged step. SB3's own TensorBoard logs of
    an agent run live beside these, in ``out_dir/tb/ppo_*``.

    Args:
        log_dir: the events folder (conventionally ``out_dir/tb``).
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self.last_step = 0
        self._broken = False

    def _writer(self) -> Any:
        # created on first use: a run that logs nothing leaves no empty events file
        if self.writer is None and not self._broken:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.log_dir))
            except Exception as e:
                log.warning("TensorBoard logging off (%s)", e)
                self._broken = True
        return self.writer

    def log(self, metrics: dict[str, Any], step: int) -> None:
        w = self._writer()
        if w is None:
            return
        self.last_step = max(self.last_step, int(step))
        try:
            for k, v in scalars(metrics).items():
                w.add_scalar(k, v, int(step))
        except Exception as e:
            log.warning("TensorBoard logging off (%s)", e)
            self._broken, self.writer = True, None

    def summary(self, summary: dict[str, Any]) -> None:
        self.log({f"summary/{k}": v for k, v in summary.items()}, self.last_step)

    def finish(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as e:
                log.warning("TensorBoard close failed (%s)", e)
            self.writer = None
