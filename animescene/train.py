"""Training: content-only pretraining, then the five-loss adversarial training (lesson 06).

``Trainer(TrainConfig(...)).fit()`` runs White-box's recipe:

1. **pretraining** (``pretrain_steps``): the generator learns to reconstruct photos (L1 between ``G(x)``
   and ``x``), so the adversarial phase starts from an identity-like mapping instead of noise;
2. **adversarial training** (``steps``): per step, one generator update with
   ``β1·L_tv + β2·L_surface + β3·L_structure + β4·L_texture + β5·L_content`` on
   ``fake = guided_filter(x, G(x), 1, 1e-2)``, then one update of both discriminators (LSGAN).

Engineering that the lesson does not need to show, but a real run does:

- **the structure representation off the critical path**: superpixels run on the CPU in worker
  processes. While step ``k`` runs on the accelerator, the workers already compute the target of step
  ``k+1`` from ``G(x_{k+1})`` with the weights before step ``k``'s update (one update old, which the
  loss does not notice), so the accelerator waits only when the workers are too slow. The share of
  time spent waiting is logged as ``structure_wait``.
- **mixed precision** (``amp``: bf16 or fp16 autocast, the guided filter stays fp32) and
  channels-last memory on the GPU;
- **exact resume**: a checkpoint folder holds the models, the optimizers, the step, every random state
  and the pending structure target; data order depends only on (seed, step). Resuming gives the same
  numbers as never stopping (bit-identical on the CPU);
- a NaN/inf guard that stops with a message; atomic checkpoints keeping the last ``keep_checkpoints``;
  ``metrics.csv`` (and optionally TensorBoard); a progress bar; sample grids every ``sample_every`` steps.

Under ``torchrun`` the same code trains with DistributedDataParallel (see :mod:`animescene.distributed`).
``batch_size`` is per process: the global batch is ``batch_size * world_size``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from . import distributed
from .data import ImageFolderDataset, UnpairedImages
from .filters import guided_filter, post_process
from .images import write_image
from .losses import Betas, GeneratorLoss, discriminator_loss
from .models import PatchDiscriminator, UNetGenerator
from .representations import StructurePool, sample_color_shift, structure
from .runtime import resolve_device, smoke_mode
from .vgg import VGGFeatures, resolve_weights


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything a run depends on; saved with every checkpoint. Defaults follow White-box's code.

    Load one from YAML or JSON with :meth:`from_file`; ``animescene train --config FILE`` does.
    """

    # data: unpaired folders of photos and cartoons; the thesis mixes scenery with faces
    photo_dirs: list[str] = field(default_factory=list)
    cartoon_dirs: list[str] = field(default_factory=list)
    face_photo_dirs: list[str] = field(default_factory=list)
    face_cartoon_dirs: list[str] = field(default_factory=list)
    face_ratio: float = 0.0  # share of face items; White-box trains one batch in five (0.2) on faces
    size: int = 256
    batch_size: int = 16  # per process
    num_workers: int = 2  # data-loading processes
    # schedule
    pretrain_steps: int = 50_000
    steps: int = 100_000
    lr: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.99)
    # losses
    betas: dict = field(default_factory=lambda: Betas().as_dict())
    train_filter_eps: float = 1e-2  # guided_filter(x, G(x), r=1, eps) before every loss
    structure_method: str = "selective"
    segments: int = 200
    structure_workers: int = -1  # -1: one per CPU core but one; 0: compute in this process
    vgg_arch: str = "vgg16"
    vgg_layer: str | None = None  # None: conv4_3 for vgg16, conv4_4 for vgg19
    vgg_weights: str | None = "auto"
    # generator
    channels: int = 32
    num_blocks: int = 4
    bounded: bool = True
    tf_mode: bool = False  # TensorFlow padding/resize, to fine-tune the official weights
    # run
    device: str = "auto"
    amp: str = "auto"  # "auto" (bf16 on a GPU that has it), "bf16", "fp16", "none"
    channels_last: bool | None = None  # None: on the GPU only
    seed: int = 0
    out_dir: str = "runs/whitebox"
    log_every: int = 50  # 0 turns logging, sample grids or checkpoints off
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    tensorboard: bool = False

    def __post_init__(self):
        self.betas = Betas(**{**Betas().as_dict(), **self.betas}).as_dict()  # fills defaults, rejects typos
        self.adam_betas = tuple(self.adam_betas)

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path) -> "TrainConfig":
        """Read a ``.yaml``/``.yml`` or ``.json`` file of field values."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields, got {type(values).__name__}")
        return cls.from_dict(values)


class _StepSampler(Sampler):
    """An endless index stream for one process that starts at any step: the data order is a function of
    (seed, step, rank) only, which is what makes resume exact.

    Each epoch is a ``DistributedSampler`` permutation (disjoint shards per rank, reshuffled by
    ``set_epoch``); indices are offset by ``epoch * len`` so the dataset draws fresh crops every epoch.
    """

    def __init__(self, length: int, batch_size: int, start_step: int, rank: int, world_size: int, seed: int):
        self.length, self.batch_size, self.start_step = length, batch_size, start_step
        self.rank, self.world_size, self.seed = rank, world_size, seed

    def __iter__(self):
        epoch_sampler = DistributedSampler(
            range(self.length), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=self.seed, drop_last=True
        )
        per_epoch = len(epoch_sampler)
        epoch, offset = divmod(self.start_step * self.batch_size, per_epoch)
        while True:
            epoch_sampler.set_epoch(epoch)
            for index in list(epoch_sampler)[offset:]:
                yield epoch * self.length + index
            epoch, offset = epoch + 1, 0


class Trainer:
    """Runs a :class:`TrainConfig`; ``fit()`` trains, ``Trainer.resume(folder)`` continues a run.

    ``dataset`` replaces the config's folders with any dataset of ``(photo, cartoon)`` pairs whose items
    are a function of their index (the β widget fine-tunes on photos held in memory this way).
    """

    def __init__(self, config: TrainConfig, dataset=None):
        self.config = config
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        self.device = distributed.device() if self.world_size > 1 else resolve_device(config.device)
        self.out_dir = Path(config.out_dir)
        torch.manual_seed(config.seed)  # same initial weights on every rank
        self.generator = UNetGenerator(
            config.channels, config.num_blocks, tf_mode=config.tf_mode, bounded=config.bounded
        ).to(self.device)
        self.disc_surface = PatchDiscriminator(3).to(self.device)
        self.disc_texture = PatchDiscriminator(1).to(self.device)
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cuda"
        if self.channels_last:
            for model in (self.generator, self.disc_surface, self.disc_texture):
                model.to(memory_format=torch.channels_last)
        self.g_model, self.ds_model, self.dt_model = (
            distributed.wrap(m, self.device) for m in (self.generator, self.disc_surface, self.disc_texture)
        )
        self.g_opt = self._adam(self.generator)
        self.d_opt = self._adam(self.disc_surface, self.disc_texture)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.vgg = VGGFeatures(config.vgg_arch, config.vgg_layer, weights=_vgg_weights(config)).to(self.device)
        self.g_loss = GeneratorLoss(config.betas, vgg=self.vgg)
        self.texture_rng = torch.Generator().manual_seed(config.seed + 1)
        self.dataset = dataset if dataset is not None else UnpairedImages(
            config.photo_dirs,
            config.cartoon_dirs,
            config.size,
            face_photo_dirs=config.face_photo_dirs,
            face_cartoon_dirs=config.face_cartoon_dirs,
            face_ratio=config.face_ratio,
            seed=config.seed,
        )
        self.step = 0
        self.pending_structure: torch.Tensor | Future | None = None
        self.structure_workers = _structure_workers(config.structure_workers)
        self.structure_pool: StructurePool | None = None  # started by fit(), stopped when it returns
        self._batches = None
        self._metrics = defaultdict(list)
        self._wait = 0.0
        self._busy = 0.0
        self._writer = None
        self._sample_photos = None

    # ----------------------------------------------------------------------------------------- run
    def fit(self, max_steps: int | None = None) -> dict:
        """Train up to ``config.total_steps`` (or ``max_steps`` more steps); returns the last metrics.

        Ctrl-C or an error saves nothing half-written and leaves the last checkpoint as it was.
        """
        from tqdm.auto import tqdm

        stop = self.config.total_steps if max_steps is None else min(self.config.total_steps, self.step + max_steps)
        last: dict = {}
        progress = tqdm(total=self.config.total_steps, initial=self.step, disable=not self.is_main, desc="train")
        if self.structure_workers > 0:
            self.structure_pool = StructurePool(self.structure_workers)
        try:
            while self.step < stop:
                last = self.train_step()
                progress.update(1)
                if self._due(self.config.log_every, stop):
                    last = self._log()
                    progress.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k in ("g_total", "d_total", "recon")})
                if self._due(self.config.sample_every, stop):
                    self.save_samples()
                if self._due(self.config.checkpoint_every, stop):
                    self.save_checkpoint()
        finally:
            progress.close()
            if self.structure_pool is not None:
                self.structure_pool.close()  # waits for a pending target, which the next fit() uses
                self.structure_pool = None
            if self._writer is not None:
                self._writer.close()
        return last

    def _due(self, every: int, stop: int) -> bool:
        """Every ``every`` steps and at the end of ``fit``; ``every=0`` means never."""
        return every > 0 and (self.step % every == 0 or self.step == stop)

    def train_step(self) -> dict:
        """One optimisation step (pretraining or adversarial, by ``self.step``); returns its losses."""
        started = time.perf_counter()
        photo, cartoon = self._next_batch()
        if self.step < self.config.pretrain_steps:
            values = self._pretrain_step(photo)
        else:
            values = self._adversarial_step(photo, cartoon)
        self.step += 1
        self._busy += time.perf_counter() - started
        for name, value in values.items():
            self._metrics[name].append(value)
        return values

    def _pretrain_step(self, photo: torch.Tensor) -> dict:
        with self._autocast():
            recon = F.l1_loss(self.g_model(photo).float(), photo)
        self._guard({"recon": recon})
        self.g_opt.zero_grad(set_to_none=True)
        self.scaler.scale(recon).backward()
        self.scaler.step(self.g_opt)
        self.scaler.update()
        if self.step + 1 == self.config.pretrain_steps:
            self.g_opt = self._adam(self.generator)  # White-box restarts Adam for the adversarial phase
        return {"recon": recon.item()}

    def _adversarial_step(self, photo: torch.Tensor, cartoon: torch.Tensor) -> dict:
        target = self._take_structure(photo)
        # look ahead: the workers start on the next batch's target while this step runs
        self.pending_structure = self._submit_structure(self._peek_photo())
        # The generator step reads the discriminators without training them: their unwrapped modules
        # (no DDP gradient sync) with gradients off (no wasted weight gradients).
        self._discriminators_trainable(False)
        with self._autocast():
            fake = self._cartoonize(photo)
            g_terms = self.g_loss(photo, fake, target, self.disc_surface, self.disc_texture, self._color_weights(1))
        self._guard(g_terms)
        self.g_opt.zero_grad(set_to_none=True)
        self.scaler.scale(g_terms["total"]).backward()
        self.scaler.step(self.g_opt)
        self._discriminators_trainable(True)
        with self._autocast():
            d_terms = discriminator_loss(self.ds_model, self.dt_model, fake.detach(), cartoon, self._color_weights(2))
        self._guard(d_terms)
        self.d_opt.zero_grad(set_to_none=True)
        self.scaler.scale(d_terms["total"]).backward()
        self.scaler.step(self.d_opt)
        self.scaler.update()
        values = {f"g_{name}" if name == "total" else name: v.item() for name, v in g_terms.items()}
        values.update({f"d_{name}": v.item() for name, v in d_terms.items()})
        return values

    def _cartoonize(self, photo: torch.Tensor, generator: torch.nn.Module | None = None) -> torch.Tensor:
        """``guided_filter(x, G(x), 1, eps)``: White-box trains on the filtered output (in fp32)."""
        generator = self.g_model if generator is None else generator
        return guided_filter(photo, generator(photo).float(), 1, self.config.train_filter_eps)

    def _color_weights(self, batches: int) -> torch.Tensor:
        """Colour-shift weights for ``batches`` stacked per-process batches.

        Every rank draws the weights of the whole global batch from the same generator and keeps the
        rows of its own samples (rank ``r`` holds global positions ``r, r + W, ...``, as the sampler
        deals them), so a W-process run draws exactly what a one-process run of the global batch does.
        """
        per_rank = self.config.batch_size
        weights = sample_color_shift(batches * per_rank * self.world_size, self.texture_rng)
        blocks = weights.view(batches, per_rank * self.world_size, 3)[:, self.rank :: self.world_size]
        return blocks.reshape(batches * per_rank, 3)

    def _discriminators_trainable(self, trainable: bool) -> None:
        self.disc_surface.requires_grad_(trainable)
        self.disc_texture.requires_grad_(trainable)

    # ------------------------------------------------------------------------- structure targets
    def _submit_structure(self, photo: torch.Tensor) -> Future | torch.Tensor:
        # the plain module: a forward without gradients must not go through DDP
        with torch.no_grad(), self._autocast():
            fake = self._cartoonize(photo, self.generator).float().clamp(-1, 1)
        options = {"segments": self.config.segments, "method": self.config.structure_method}
        if self.structure_pool is None:  # computed right here: all of it is time the step waits
            started = time.perf_counter()
            target = structure(fake, **options)
            self._wait += time.perf_counter() - started
            return target
        return self.structure_pool.submit(fake, **options)

    def _take_structure(self, photo: torch.Tensor) -> torch.Tensor:
        """The structure target of this step: the pending one, or computed now (first step, after resume)."""
        pending = self.pending_structure
        if pending is None:
            pending = self._submit_structure(photo)
        started = time.perf_counter()
        target = pending.result() if isinstance(pending, Future) else pending
        self._wait += time.perf_counter() - started
        self.pending_structure = None
        return target.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------------------------- data
    def _loader(self):
        sampler = _StepSampler(
            len(self.dataset), self.config.batch_size, self.step, self.rank, self.world_size, self.config.seed
        )
        loader = DataLoader(
            self.dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.config.num_workers > 0,
        )
        return iter(loader)

    def _next_batch(self):
        if self._batches is None:
            self._batches = self._loader()
            self._upcoming = next(self._batches)
        batch, self._upcoming = self._upcoming, next(self._batches)
        return tuple(self._to_device(t) for t in batch)

    def _peek_photo(self) -> torch.Tensor:
        return self._to_device(self._upcoming[0])

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # -------------------------------------------------------------------------------- bookkeeping
    def _adam(self, *models) -> torch.optim.Adam:
        params = [p for m in models for p in m.parameters()]
        return torch.optim.Adam(params, lr=self.config.lr, betas=tuple(self.config.adam_betas))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def _guard(self, terms: dict) -> None:
        bad = {name: float(v) for name, v in terms.items() if not torch.isfinite(v.detach()).all()}
        # every rank stops together: a rank that raised alone would leave the others hanging in a collective
        if distributed.any_rank(bool(bad), self.device):
            last = self.latest_checkpoint()
            raise TrainingDiverged(
                f"step {self.step}: loss became non-finite {bad}. Try a lower learning rate (lr={self.config.lr}), "
                f"bounded=True, or amp='none'; the last good checkpoint is {last or 'none yet'}"
            )

    def _log(self) -> dict:
        means = {name: sum(v) / len(v) for name, v in self._metrics.items() if v}
        means["structure_wait"] = self._wait / self._busy if self._busy else 0.0
        means["lr"] = self.g_opt.param_groups[0]["lr"]
        self._metrics.clear()
        self._wait = self._busy = 0.0
        if not self.is_main:
            return means
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "metrics.csv"
        row = {"step": self.step, "phase": "pretrain" if self.step <= self.config.pretrain_steps else "adversarial"}
        row.update(means)
        columns = ["step", "phase", "recon", "g_total", *GeneratorLoss.TERMS, "d_total", "d_surface", "d_texture",
                   "structure_wait", "lr"]
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.config.tensorboard:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(self.out_dir / "tensorboard")
            for name, value in means.items():
                self._writer.add_scalar(name, value, self.step)
        return means

    def sample_grid(self, count: int = 4) -> torch.Tensor:
        """``(2, count)`` grid of fixed photos (top) and their cartoons (bottom) as a ``(3, H, W)`` tensor."""
        from torchvision.utils import make_grid

        if self._sample_photos is None:
            folder = ImageFolderDataset(self.config.photo_dirs, size=self.config.size)
            self._sample_photos = torch.stack([folder[i][0] for i in range(min(count, len(folder)))])
        photos = self._sample_photos.to(self.device)
        was_training = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            cartoons = post_process(photos, self.generator(photos))
        self.generator.train(was_training)
        return make_grid(torch.cat([photos, cartoons]).float().cpu(), nrow=len(photos), padding=2, pad_value=1.0)

    def save_samples(self) -> None:
        if self.is_main:
            write_image(self.out_dir / "samples" / f"step_{self.step:07d}.png", self.sample_grid())

    # -------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        pending = self.pending_structure
        if isinstance(pending, Future):
            pending = pending.result()
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "generator_config": self.generator.config(),
            "generator": self.generator.state_dict(),
            "disc_surface": self.disc_surface.state_dict(),
            "disc_texture": self.disc_texture.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rng_texture": self.texture_rng.get_state(),
            "world_size": self.world_size,
            "pending_structure": None if pending is None else pending.cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.generator.load_state_dict(state["generator"])
        self.disc_surface.load_state_dict(state["disc_surface"])
        self.disc_texture.load_state_dict(state["disc_texture"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.texture_rng.set_state(state["rng_texture"])
        self.pending_structure = state["pending_structure"]
        self._batches = None  # the data stream restarts at self.step

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_NNNNNNN/`` atomically and keep the newest ``keep_checkpoints``.

        Rank 0 writes the models, optimizers and shared state; every rank writes its own pending
        structure target (``pending_rank{r}.pt``: each rank's batch differs). Several machines need a
        shared file system for ``out_dir``.
        """
        state = self.state_dict()  # every rank waits for its pending target, keeping ranks in step
        root = self.out_dir / "checkpoints"
        final = root / f"step_{self.step:07d}"
        partial = root / f".partial_step_{self.step:07d}"
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        distributed.barrier()
        torch.save({"pending_structure": state.pop("pending_structure")}, partial / f"pending_rank{self.rank}.pt")
        distributed.barrier()
        if self.is_main:
            models = {k: state.pop(k) for k in ("config", "generator_config", "generator", "disc_surface", "disc_texture")}
            models["step"] = state["step"]
            optimizers = {k: state.pop(k) for k in ("g_opt", "d_opt", "scaler")}
            torch.save(models, partial / "models.pt")
            torch.save(optimizers, partial / "optimizers.pt")
            torch.save(state, partial / "state.pt")
            (partial / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
            for old in sorted(root.glob("step_*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        distributed.barrier()
        return final if self.is_main else None

    def latest_checkpoint(self) -> Path | None:
        found = sorted((self.out_dir / "checkpoints").glob("step_*"))
        return found[-1] if found else None

    @classmethod
    def resume(cls, path, **overrides) -> "Trainer":
        """Continue from a checkpoint folder, or from the newest one under a run folder.

        ``overrides`` change config fields that do not alter the model, e.g. ``steps`` or ``out_dir``.
        """
        path = Path(path)
        if not (path / "models.pt").is_file():
            found = sorted((path / "checkpoints").glob("step_*"))
            if not found:
                raise FileNotFoundError(f"{path}: no checkpoint folder (step_*/models.pt) here or under checkpoints/")
            path = found[-1]
        models = torch.load(path / "models.pt", map_location="cpu", weights_only=True)
        config = TrainConfig.from_dict({**models["config"], **overrides})
        trainer = cls(config)
        state = {**models, **torch.load(path / "optimizers.pt", map_location="cpu", weights_only=True)}
        state.update(torch.load(path / "state.pt", map_location="cpu", weights_only=True))
        if state["world_size"] != trainer.world_size:
            raise ValueError(
                f"{path} was written by {state['world_size']} process(es) but this run has {trainer.world_size}: "
                "resume onto the same world size (the data order and batch split depend on it)"
            )
        pending = path / f"pending_rank{trainer.rank}.pt"
        state.update(torch.load(pending, map_location="cpu", weights_only=True))
        trainer.load_state_dict(state)
        return trainer


def _amp_dtype(amp: str, device: torch.device):
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    choices = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
    if amp not in choices:
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'none', got {amp!r}")
    return choices[amp]


def _vgg_weights(config: TrainConfig):
    """The VGG weights of a run; a real run refuses random weights instead of silently using them."""
    weights = resolve_weights(config.vgg_weights)
    if weights is None and not smoke_mode():
        raise ValueError(
            "vgg_weights=None would train the structure and content losses on a random VGG, which is not the "
            "method. Get the pretrained VGG16 with `python -m data_scripts.download vgg16-hed` (vgg_weights='auto' "
            "then finds it), or set ANIMESCENE_SMOKE=1 for a plumbing test"
        )
    return weights


def _structure_workers(requested: int) -> int:
    return max((os.cpu_count() or 1) - 1, 0) if requested < 0 else requested

