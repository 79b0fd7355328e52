"""Training: content-only pretraining, then the five-loss adversarial training (lesson 06).

``Trainer(TrainConfig(...)).fit()`` runs White-box's recipe:

1. **pretraining** (``pretrain_steps``): the generator learns to reconstruct photos (L1 between ``G(x)``
   and ``x``), so the adversarial phase starts from an identity-like mapping instead of noise;
2. **adversarial training** (``steps``): per step, one generator update with
   ``β1·L_tv + β2·L_surface + β3·L_structure + β4·L_texture + β5·L_content`` on
   ``fake = guided_filter(x, G(x), 1, 1e-2)``, then one update of both discriminators (LSGAN).

The recipe is :meth:`Trainer._pretrain_step` and :meth:`Trainer._adversarial_step`. The engineering a
real run needs, and the lesson does not, lives beside it:

- :class:`StructureTargets`, **the structure representation off the critical path**: superpixels run on
  the CPU in worker processes. While step ``k`` runs on the accelerator, the workers already compute the
  target of step ``k+1`` from ``G(x_{k+1})`` with the weights before step ``k``'s update (one update old,
  which the loss does not notice), so the accelerator waits only when the workers are too slow. The
  share of time spent waiting is ``trainer.structure_wait.share``, logged as ``structure_wait``;
- :class:`animescene.data.StepBatches`: the data order depends only on (seed, step), so a resumed run
  draws the batches it would have drawn;
- :mod:`animescene.checkpoint`: atomic checkpoints with a sha256 manifest, keeping the last
  ``keep_checkpoints``; resuming skips damaged ones and gives the same numbers as never stopping
  (bit-identical on the CPU);
- :class:`animescene.runlog.RunLog`: ``metrics.csv`` (and optionally TensorBoard);
- mixed precision (``amp``: bf16 or fp16 autocast, the guided filter stays fp32), channels-last memory
  on the GPU, a NaN/inf guard that stops with a message, a progress bar and sample grids every
  ``sample_every`` steps.

Under ``torchrun`` the same code trains with DistributedDataParallel (see :mod:`animescene.distributed`).
``batch_size`` is per process: the global batch is ``batch_size * world_size``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint, distributed
from .data import ImageFolderDataset, StepBatches, UnpairedImages
from .errors import UsageError
from .filters import guided_filter
from .images import write_image
from .losses import GeneratorLoss, discriminator_loss
from .models import PatchDiscriminator, UNetGenerator
from .representations import StructurePool, sample_color_shift, structure
from .runlog import RunLog, due, sample_grid
from .runtime import native_bf16, resolve_device, smoke_mode
from .train_config import TrainConfig
from .vgg import VGGFeatures, resolve_weights

__all__ = ["StructureTargets", "TrainConfig", "Trainer", "TrainingDiverged", "WaitShare"]

LOG_COLUMNS = ("step", "phase", "recon", "g_total", *GeneratorLoss.TERMS, "d_total", "d_surface", "d_texture",
               "structure_wait", "lr")


class TrainingDiverged(RuntimeError):
    """A loss, the weights or the optimizer state became NaN or infinite."""


@dataclass
class WaitShare:
    """Time spent in training steps (``busy_s``), and the part of it spent on structure targets."""

    waited_s: float = 0.0
    busy_s: float = 0.0

    @property
    def share(self) -> float:
        """``waited_s / busy_s`` in [0, 1]; 0 before any step."""
        return self.waited_s / self.busy_s if self.busy_s else 0.0

    def reset(self) -> None:
        self.waited_s = self.busy_s = 0.0

    @contextmanager
    def waiting(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.waited_s += time.perf_counter() - started


class StructureTargets:
    """Structure targets computed one step ahead, in worker processes (or here with ``workers=0``).

    ``take(photo, upcoming)`` returns the target of this step's ``(B, 3, H, W)`` photos (the one started a
    step ago, else computed now) and starts the one of the ``upcoming`` photos, which the next call takes.
    A target is :func:`animescene.representations.structure` of ``render(photos)``, the generator's
    outputs. The time the caller waits for targets is added to ``timer.waited_s``. ``open()`` starts the
    workers, ``close()`` stops them; a target still to be taken stays in ``pending`` (and checkpoints).
    """

    def __init__(self, render, segments: int, method: str, workers: int, timer: WaitShare):
        self.render, self.options = render, {"segments": segments, "method": method}
        self.workers, self.timer = workers, timer
        self.pool: StructurePool | None = None
        self.pending: torch.Tensor | Future | None = None

    def open(self) -> None:
        if self.workers > 0:
            self.pool = StructurePool(self.workers)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()  # waits for the pending target, which the next fit() uses
            self.pool = None

    def _submit(self, fake: torch.Tensor) -> None:
        if self.pool is None:
            with self.timer.waiting():
                self.pending = structure(fake, **self.options)
        else:
            self.pending = self.pool.submit(fake, **self.options)

    def take(self, photo: torch.Tensor, upcoming: torch.Tensor) -> torch.Tensor:
        if self.pending is None:  # the first adversarial step (or a resume from before it)
            self._submit(self.render(photo))
        with self.timer.waiting():
            target = self.pending.result() if isinstance(self.pending, Future) else self.pending
        self.pending = None
        self._submit(self.render(upcoming))
        return target.to(photo.device, non_blocking=True)

    def pending_tensor(self) -> torch.Tensor | None:
        """The pending target on the CPU (waiting for it), for a checkpoint."""
        pending = self.pending.result() if isinstance(self.pending, Future) else self.pending
        return None if pending is None else pending.cpu()


class Trainer:
    """Runs a :class:`TrainConfig`; ``fit()`` trains, ``Trainer.resume(folder)`` continues a run.

    ``dataset`` replaces the config's folders with any dataset of ``(photo, cartoon)`` pairs whose items
    are a function of their index (the β widget fine-tunes on photos held in memory this way).
    """

    def __init__(self, config: TrainConfig, dataset=None):
        self.config = config
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        # checked before anything is built: a missing device or folder stops the run at once
        self.device = distributed.device() if self.world_size > 1 else resolve_device(config.device)
        self.dataset = dataset if dataset is not None else _dataset(config)
        self.out_dir = Path(config.out_dir)
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cuda"
        models = _models(config, self.device, self.channels_last)
        self.generator, self.disc_surface, self.disc_texture = models
        self.g_model, self.ds_model, self.dt_model = (distributed.wrap(m, self.device) for m in models)
        self.g_opt = _adam(self.config, self.generator)
        self.d_opt = _adam(self.config, self.disc_surface, self.disc_texture)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.vgg = VGGFeatures(config.vgg_arch, config.vgg_layer, weights=_vgg_weights(config)).to(self.device)
        self.g_loss = GeneratorLoss(config.betas, vgg=self.vgg)
        self.texture_rng = torch.Generator().manual_seed(config.seed + 1)
        self.step = 0
        self.structure_wait = WaitShare()
        self.structure = StructureTargets(self._structure_input, config.segments, config.structure_method,
                                          _structure_workers(config.structure_workers), self.structure_wait)
        self.log = RunLog(self.out_dir, LOG_COLUMNS, tensorboard=config.tensorboard, enabled=self.is_main)
        self.batches: StepBatches | None = None  # started at self.step by the first train_step
        self._sample_photos = None

    def fit(self, max_steps: int | None = None) -> dict:
        """Train up to ``config.total_steps`` (or ``max_steps`` more steps); returns the last metrics.

        Ctrl-C or an error saves nothing half-written and leaves the last checkpoint as it was.
        """
        from tqdm.auto import tqdm

        _check_max_steps(max_steps)
        total = self.config.total_steps
        stop = total if max_steps is None else min(total, self.step + max_steps)
        last: dict = {}
        progress = tqdm(total=total, initial=self.step, disable=not self.is_main, desc="train")
        self.structure.open()
        try:
            while self.step < stop:
                last = self.train_step()
                progress.update(1)
                if due(self.config.log_every, self.step, stop):
                    last = self._log()
                    progress.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k in ("g_total", "d_total", "recon")})
                if due(self.config.sample_every, self.step, stop):
                    self.save_samples()
                if due(self.config.checkpoint_every, self.step, stop):
                    self.save_checkpoint()
        finally:
            progress.close()
            self.structure.close()
            self.log.close()
        return last

    def train_step(self) -> dict:
        """One optimisation step (pretraining or adversarial, by ``self.step``); returns its losses."""
        started = time.perf_counter()
        if self.batches is None:
            self.batches = StepBatches(self.dataset, self.config.batch_size, self.step, rank=self.rank,
                                       world_size=self.world_size, seed=self.config.seed,
                                       num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda")
        photo, cartoon = (self._to_device(t) for t in next(self.batches))
        if self.step < self.config.pretrain_steps:
            values = self._pretrain_step(photo)
        else:
            values = self._adversarial_step(photo, cartoon)
        self.step += 1
        self.structure_wait.busy_s += time.perf_counter() - started
        self.log.add(values)
        return values

    # -------------------------------------------------------------------------------- the recipe
    def _pretrain_step(self, photo: torch.Tensor) -> dict:
        """Content-only pretraining: ``G`` learns to give the photo back (L1)."""
        with self._autocast():
            recon = F.l1_loss(self.g_model(photo).float(), photo)
        self._guard({"recon": recon})
        self._descend(self.g_opt, recon)
        self.scaler.update()
        if self.step + 1 == self.config.pretrain_steps:
            self.g_opt = _adam(self.config, self.generator)  # White-box restarts Adam for the adversarial phase
        return {"recon": recon.item()}

    def _adversarial_step(self, photo: torch.Tensor, cartoon: torch.Tensor) -> dict:
        """One generator update on the five losses, then one update of both discriminators (LSGAN)."""
        # this batch's target (looked ahead during the last step); the workers start on the next batch's
        target = self.structure.take(photo, upcoming=self._to_device(self.batches.upcoming[0]))
        # The generator step reads the discriminators without training them: their unwrapped modules
        # (no DDP gradient sync) with gradients off (no wasted weight gradients).
        self._discriminators_trainable(False)
        with self._autocast():
            fake = self._cartoonize(photo)
            g_terms = self.g_loss(photo, fake, target, self.disc_surface, self.disc_texture, self._color_weights(1))
        self._guard(g_terms)
        self._descend(self.g_opt, g_terms["total"])
        self._discriminators_trainable(True)
        with self._autocast():
            d_terms = discriminator_loss(self.ds_model, self.dt_model, fake.detach(), cartoon, self._color_weights(2))
        self._guard(d_terms)
        self._descend(self.d_opt, d_terms["total"])
        self.scaler.update()
        values = {f"g_{name}" if name == "total" else name: v.item() for name, v in g_terms.items()}
        values.update({f"d_{name}": v.item() for name, v in d_terms.items()})
        return values

    def _cartoonize(self, photo: torch.Tensor, generator: torch.nn.Module | None = None) -> torch.Tensor:
        """``guided_filter(x, G(x), 1, eps)``: White-box trains on the filtered output (in fp32)."""
        generator = self.g_model if generator is None else generator
        return guided_filter(photo, generator(photo).float(), 1, self.config.train_filter_eps)

    def _structure_input(self, photo: torch.Tensor) -> torch.Tensor:
        # the plain module: a forward without gradients must not go through DDP
        with torch.no_grad(), self._autocast():
            return self._cartoonize(photo, self.generator).float().clamp(-1, 1)

    def _color_weights(self, batches: int) -> torch.Tensor:
        return _rank_color_weights(batches, self.config.batch_size, self.rank, self.world_size, self.texture_rng)

    def _discriminators_trainable(self, trainable: bool) -> None:
        self.disc_surface.requires_grad_(trainable)
        self.disc_texture.requires_grad_(trainable)

    def _descend(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One (gradient-scaled) optimizer step on ``loss``."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def _guard(self, terms: dict) -> None:
        bad = {name: float(v.detach()) for name, v in terms.items() if not torch.isfinite(v.detach()).all()}
        # every rank stops together: a rank that raised alone would leave the others hanging in a collective
        if distributed.any_rank(bool(bad), self.device):
            raise _diverged(self, f"loss became non-finite {bad}")

    def _log(self) -> dict:
        phase = "pretrain" if self.step <= self.config.pretrain_steps else "adversarial"
        means = self.log.write(self.step, phase, structure_wait=self.structure_wait.share,
                               lr=self.g_opt.param_groups[0]["lr"])
        self.structure_wait.reset()
        return means

    def sample_grid(self, count: int = 4) -> torch.Tensor:
        """``(2, count)`` grid of fixed photos (top) and their cartoons (bottom) as a ``(3, H, W)`` tensor."""
        if self._sample_photos is None:
            self._sample_photos = _first_photos(self.config, count)
        return sample_grid(self.generator, self._sample_photos.to(self.device))

    def save_samples(self) -> None:
        if self.is_main:
            write_image(self.out_dir / "samples" / f"step_{self.step:07d}.png", self.sample_grid())

    def state_dict(self) -> dict:
        """Everything a checkpoint holds (:func:`animescene.checkpoint.capture`; ``restore`` puts it back)."""
        return checkpoint.capture(self)

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_NNNNNNN/`` atomically (:func:`animescene.checkpoint.write`; rank 0 gets
        the folder). Non-finite weights or optimizer state raise :class:`TrainingDiverged` instead."""
        state = self.state_dict()  # every rank waits for its pending target, keeping ranks in step
        finite = checkpoint.all_finite([state[k] for k in checkpoint.MODEL_KEYS + checkpoint.OPTIMIZER_KEYS])
        if distributed.any_rank(not finite, self.device):
            raise _diverged(self, "the weights or the optimizer state became non-finite (not saved)")
        return checkpoint.write(self.out_dir / "checkpoints", state, rank=self.rank, keep=self.config.keep_checkpoints)

    @classmethod
    def resume(cls, path, **overrides) -> Trainer:
        """Continue from a checkpoint folder, or from the newest usable one of a run folder, skipping damaged
        ones with a warning (:func:`animescene.checkpoint.resume_state`). ``overrides`` change fields such as
        ``steps``, ``lr``, ``betas`` or ``out_dir`` (by default the run folder the checkpoint is in)."""
        folder, state = checkpoint.resume_state(path, rank=distributed.rank(), world_size=distributed.world_size())
        run = checkpoint.run_folder(folder)  # the run goes on where its checkpoint is, even in a copied folder
        trainer = cls(TrainConfig.resumed(state["config"], {"out_dir": str(run), **overrides} if run else overrides))
        checkpoint.restore(trainer, state)
        return trainer


def _dataset(config: TrainConfig) -> UnpairedImages:
    for name, flag in (("photo_dirs", "--photos"), ("cartoon_dirs", "--cartoons")):
        if not getattr(config, name):
            raise UsageError(f"no {name} given: pass {flag} DIR on the command line or set {name} in the config")
    return UnpairedImages(config.photo_dirs, config.cartoon_dirs, config.size, face_photo_dirs=config.face_photo_dirs,
                          face_cartoon_dirs=config.face_cartoon_dirs, face_ratio=config.face_ratio, seed=config.seed,
                          hold_out=config.hold_out)


def _models(config: TrainConfig, device: torch.device, channels_last: bool):
    """The generator and the surface and texture discriminators, seeded alike on every rank."""
    torch.manual_seed(config.seed)
    models = (_generator(config), PatchDiscriminator(3), PatchDiscriminator(1))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(model.to(device, memory_format=memory_format) for model in models)


def _generator(config: TrainConfig) -> UNetGenerator:
    """A fresh generator, or ``config.init_weights`` (fine-tuning) with ``config.freeze``'s parts frozen."""
    wanted = {"channels": config.channels, "num_blocks": config.num_blocks, "tf_mode": config.tf_mode,
              "bounded": config.bounded}
    if config.init_weights is None:
        generator = UNetGenerator(**wanted)
    else:
        generator = UNetGenerator.from_weights(config.init_weights).train()
        if generator.config() != wanted:
            raise UsageError(f"init_weights {config.init_weights!r} are a UNetGenerator({generator.config()}) but "
                             f"the config asks for {wanted}; set these fields to the weights' values "
                             "(animescene finetune does)")
    for name in config.freeze:
        getattr(generator, name).requires_grad_(False)
    return generator


def _rank_color_weights(batches: int, per_rank: int, rank: int, world_size: int, rng) -> torch.Tensor:
    """Colour-shift weights, ``(batches * per_rank, 3)``, for ``batches`` stacked per-process batches.

    Every rank draws the weights of the whole global batch from the same generator and keeps the rows
    of its own samples (rank ``r`` holds global positions ``r, r + W, ...``, as the sampler deals them),
    so a W-process run draws exactly what a one-process run of the global batch does.
    """
    weights = sample_color_shift(batches * per_rank * world_size, rng)
    blocks = weights.view(batches, per_rank * world_size, 3)[:, rank::world_size]
    return blocks.reshape(batches * per_rank, 3)


def _diverged(trainer: Trainer, what: str) -> TrainingDiverged:
    """The error that stops a diverged run, naming the newest checkpoint with finite weights."""
    good, lr = checkpoint.newest_usable(trainer.out_dir, world_size=trainer.world_size), trainer.config.lr
    advice = (f"The newest checkpoint with finite weights is {good}: resume from it with a lower learning rate "
              f"(animescene train --resume {good} --lr {lr / 2:g}); bounded=True or amp='none' may help too"
              if good else f"No checkpoint with finite weights yet: start again with a lower learning rate (lr={lr})")
    return TrainingDiverged(f"step {trainer.step}: {what}. {advice}")


def _adam(config: TrainConfig, *models) -> torch.optim.Adam:
    params = [p for m in models for p in m.parameters() if p.requires_grad]  # frozen parts stay out
    return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.adam_betas))


def _check_max_steps(max_steps) -> None:
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
        raise UsageError(f"max_steps must be a whole number >= 0 or None, got {max_steps!r}")


def _first_photos(config: TrainConfig, count: int) -> torch.Tensor:
    """The first ``count`` photos of the run's folders, centre squares, as a ``(count, 3, S, S)`` batch."""
    folder = ImageFolderDataset(config.photo_dirs, size=config.size)
    return torch.stack([folder[i][0] for i in range(min(count, len(folder)))])


def _amp_dtype(amp: str, device: torch.device):
    if amp == "auto":
        # GPU only: the GAN recipes (fine-tuning included) were measured in float32 on CPUs
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


def _vgg_weights(config: TrainConfig):
    """The VGG weights of a run; a real run refuses random weights instead of silently using them."""
    weights = resolve_weights(config.vgg_weights)
    if weights is None and not smoke_mode():
        raise UsageError(
            "vgg_weights=None would train the structure and content losses on a random VGG, which is not the "
            "method. Get the pretrained VGG16 with `animescene download vgg16-hed` (vgg_weights='auto' "
            "then finds it), or set ANIMESCENE_SMOKE=1 for a plumbing test"
        )
    return weights


def _structure_workers(requested: int) -> int:
    return max((os.cpu_count() or 1) - 1, 0) if requested < 0 else requested
