"""What a training run leaves to look at: the mean of each loss per logging interval, and sample grids.

:class:`RunLog` writes the rows to ``metrics.csv`` in the run folder (header once, then appended, so a
resumed run continues the same file) and, when asked, to TensorBoard (``tensorboard/``). In a
distributed run only rank 0 writes; every rank still computes the means, so all of them return the same
kind of dict. :func:`sample_grid` shows what the generator makes of a few fixed photos.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import torch

from .filters import post_process


class RunLog:
    """Collects per-step values with :meth:`add` and writes their means with :meth:`write`.

    Args:
        out_dir: the run folder.
        columns: the CSV columns, in order; values under other names go to TensorBoard only.
        tensorboard: also write every value as a TensorBoard scalar.
        enabled: False on the ranks that must not write (everything but rank 0).

    Example:
        >>> log = RunLog("runs/demo", ["step", "phase", "loss"])  # doctest: +SKIP
        >>> log.add({"loss": 0.5}); log.add({"loss": 0.3})         # doctest: +SKIP
        >>> log.write(step=2, phase="pretrain")                      # doctest: +SKIP
        {'loss': 0.4}
    """

    def __init__(self, out_dir, columns, *, tensorboard: bool = False, enabled: bool = True):
        self.path = Path(out_dir) / "metrics.csv"
        self.columns = list(columns)
        self.tensorboard, self.enabled = tensorboard, enabled
        self._values: dict[str, list[float]] = defaultdict(list)
        self._writer = None

    def add(self, values: dict[str, float]) -> None:
        """Record one step's values."""
        for name, value in values.items():
            self._values[name].append(value)

    def write(self, step: int, phase: str, **extra: float) -> dict[str, float]:
        """Append one row (the means since the last row, plus ``extra``) and start a new interval."""
        means = {name: sum(v) / len(v) for name, v in self._values.items() if v}
        means.update(extra)
        self._values.clear()
        if not self.enabled:
            return means
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({"step": step, "phase": phase, **means})
        if self.tensorboard:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(self.path.parent / "tensorboard")
            for name, value in means.items():
                self._writer.add_scalar(name, value, step)
        return means

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def due(every: int, step: int, stop: int) -> bool:
    """Whether a training loop logs, samples or checkpoints after ``step``: every ``every`` steps and at
    the end of the invocation (``step == stop``); ``every=0`` means never."""
    return every > 0 and (step % every == 0 or step == stop)


def sample_grid(generator: torch.nn.Module, photos: torch.Tensor, *others: torch.nn.Module) -> torch.Tensor:
    """Photos (top row) over their cartoons (a row per generator, after :func:`animescene.filters.post_process`).

    Args:
        generator: the generator, in any mode (it is put back in the mode it was in).
        photos: ``(N, 3, H, W)`` in [-1, 1], on the generator's device.
        others: more generators, a row each below (a teacher above its student, say).

    Returns:
        ``(3, (1 + G)(H + 2) + 2, N(W + 2) + 2)`` float CPU tensor in [-1, 1] for ``G`` generators
        (2-pixel white padding).
    """
    from torchvision.utils import make_grid

    rows = [photos]
    for model in (generator, *others):
        was_training = model.training
        with torch.no_grad():
            rows.append(post_process(photos, model.eval()(photos)))
        model.train(was_training)
    return make_grid(torch.cat(rows).float().cpu(), nrow=len(photos), padding=2, pad_value=1.0)
