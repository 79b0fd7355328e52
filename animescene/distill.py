"""Distillation: a small, fast generator that reproduces a teacher's cartoons (lesson 07).

The official generator spends about 115 G multiply-adds on a 720p frame. A student UNet with half the
channels does about a quarter of that (a convolution's cost grows with the square of its width), and a
student does not have to discover the style: it only has to copy a teacher, which is a much easier
problem than the GAN game. The recipe:

- **teacher outputs, computed once**: every training photo, its short side at ``cache_size``, goes through
  the teacher once; its raw output (before the post-process) is cached in the run folder
  (``teacher_cache.pt``), so each step costs only the student. Crops are taken from the whole-image
  outputs, so the student learns what the teacher does with the whole context, not with a crop's borders.
- **losses**: L1 between the two cartoons as a viewer sees them, after the post-process's guided filter
  (what PSNR measures), plus ``perceptual`` times the L1 between their VGG ``conv4_3`` features (edges
  and flat areas in the right places). Not L1 on the raw outputs: the official generator's raw values
  reach -3.5 and +2.7 and carry colour noise that the guided filter and the clip remove, so copying them
  asks for more than anyone sees (after 1,000 steps both losses gave the same PSNR: docs/benchmarks.md). The VGG costs about ten times the student, so
  it runs every ``perceptual_every``-th step.
- **bf16 where the hardware has it** (``amp="auto"``): on a CPU with AMX or AVX-512 BF16 (and on a GPU)
  the student and the VGG run in bfloat16 autocast, channels-last, about 2.4 times faster per step on an
  AMX CPU; the guided filter and the losses stay in float32, and the weights and Adam's state too.
- **student**: ``UNetGenerator(channels, num_blocks)`` in PyTorch's conventions (faster and exportable;
  nothing forces it to copy TensorFlow's padding) and, like the teacher, unbounded.

Any teacher works: the official weights, a fine-tuned generator (``--teacher NAME``), or any file
:meth:`~animescene.models.UNetGenerator.from_weights` reads. Runs resume exactly
(:mod:`animescene.checkpoint`): the batch of step ``k`` depends only on ``(seed, k)``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint
from .data import SkippedImageWarning, _scan, resize_short_side
from .errors import UsageError
from .filters import POST_PROCESS_EPS, POST_PROCESS_R, guided_filter, post_process
from .images import ImageReadError, atomic_output, read_image, write_image
from .models import SIZE_MULTIPLE, UNetGenerator
from .runlog import RunLog, due, sample_grid
from .runtime import native_bf16, resolve_device
from .train_config import _choice, _number, _text, _whole
from .vgg import VGGFeatures, resolve_weights
from .weights import quote_error, state_fingerprint

__all__ = ["AMP_CHOICES", "DistillConfig", "Distiller", "TeacherCache"]

LOG_COLUMNS = ("step", "phase", "l1", "perceptual", "total", "lr")
AMP_CHOICES = ("auto", "bf16", "none")


@dataclass
class DistillConfig:
    """Everything a distillation run depends on; saved with every checkpoint."""

    photo_dirs: list[str] = field(default_factory=list)
    teacher: str = "official"  # a generator name or file
    channels: int = 16  # the student's width (the teacher's is 32)
    num_blocks: int = 3  # with 16 channels: 0.23 of the official multiply-adds at 720p
    size: int = 128  # crop side, a multiple of 8
    cache_size: int = 256  # short side of the cached teacher outputs
    batch_size: int = 8
    steps: int = 5000  # 33 minutes on a 2-core CPU: 28.2 dB against the teacher, 26.4 after 1,500 (docs/benchmarks.md)
    lr: float = 1e-3
    final_lr: float = 2e-5  # cosine decay from lr to final_lr over the steps
    perceptual: float = 0.05
    perceptual_every: int = 4  # the VGG term costs ~10x the student's step; every 4th step keeps it cheap
    vgg_weights: str | None = "auto"
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # "auto": bf16 where the device computes it natively (AMX, AVX-512 BF16, GPU); "bf16", "none"
    out_dir: str = "runs/distill"
    log_every: int = 20
    sample_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 3

    def __post_init__(self):
        self.photo_dirs = [str(p) for p in ([self.photo_dirs] if isinstance(self.photo_dirs, (str, Path))
                                            else self.photo_dirs)]
        for name, low in (("channels", 1), ("num_blocks", 0), ("size", 8), ("cache_size", 8), ("batch_size", 1),
                          ("steps", 0), ("perceptual_every", 1), ("seed", 0), ("log_every", 0), ("sample_every", 0),
                          ("checkpoint_every", 0), ("keep_checkpoints", 1)):
            _whole(name, getattr(self, name), low=low)
        if self.size % SIZE_MULTIPLE or self.size > self.cache_size:
            raise UsageError(f"size must be a multiple of {SIZE_MULTIPLE} no larger than cache_size "
                             f"({self.cache_size}), got {self.size}")
        self.lr = _number("lr", self.lr, low=0.0, positive=True)
        self.final_lr = _number("final_lr", self.final_lr, low=0.0)
        self.perceptual = _number("perceptual", self.perceptual, low=0.0)
        _choice("amp", self.amp, AMP_CHOICES)
        for name in ("teacher", "device", "out_dir"):
            _text(name, getattr(self, name))
        _text("vgg_weights", self.vgg_weights, optional=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def student(self) -> UNetGenerator:
        return UNetGenerator(self.channels, self.num_blocks, tf_mode=False, bounded=False)


class TeacherCache:
    """The training photos and the teacher's raw outputs on them, each ``(3, H, W)`` float16 on the CPU.

    Built once per (teacher weights, photo files, ``cache_size``) and kept in ``path``; a cache made for
    other weights or photos is rebuilt, never reused.
    """

    def __init__(self, photos: list[torch.Tensor], outputs: list[torch.Tensor]):
        self.photos, self.outputs = photos, outputs

    @classmethod
    def build(cls, teacher: UNetGenerator, files: list[Path], cache_size: int, path: Path,
              device: torch.device) -> TeacherCache:
        from tqdm.auto import tqdm

        key = {"teacher": state_fingerprint(teacher.state_dict()), "files": [str(f) for f in files],
               "cache_size": cache_size}
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # truncated or overwritten: it is only a cache, so rebuild it
                warnings.warn(f"{path} is damaged ({quote_error(err)}); computing the teacher outputs again")
                saved = {}
            if saved.get("key") == key:
                return cls(saved["photos"], saved["outputs"])
        photos, outputs = [], []
        teacher = teacher.to(device).eval()
        for file in tqdm(files, desc="teacher outputs", unit="photo"):
            try:
                image = read_image(file)
            except ImageReadError as err:  # one bad photo does not stop the run; it is named and left out
                warnings.warn(f"skipped: {err}", SkippedImageWarning)
                continue
            photo = _multiple_of_8(resize_short_side(image, cache_size).clamp(-1, 1))
            with torch.no_grad():
                output = teacher(photo.to(device)).float().cpu()
            photos.append(photo[0].half())
            outputs.append(output[0].half())
        if not photos:
            raise UsageError(f"none of the {len(files)} photos could be read; check the photo folders")
        with atomic_output(path) as tmp:
            torch.save({"key": key, "photos": photos, "outputs": outputs}, tmp)
        return cls(photos, outputs)

    def batch(self, seed: int, step: int, batch_size: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(photos, teacher outputs)``, each ``(batch_size, 3, size, size)`` float32: random crops and
        flips that depend only on ``(seed, step)``."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7, step]))
        pairs = []
        for index in rng.integers(0, len(self.photos), batch_size):
            photo, output = self.photos[index], self.outputs[index]
            top = int(rng.integers(0, photo.shape[1] - size + 1))
            left = int(rng.integers(0, photo.shape[2] - size + 1))
            pair = torch.stack([photo, output])[:, :, top:top + size, left:left + size].float()
            pairs.append(pair.flip(-1) if rng.random() < 0.5 else pair)
        both = torch.stack(pairs)
        return both[:, 0].contiguous(), both[:, 1].contiguous()


class Distiller:
    """Runs a :class:`DistillConfig`: ``fit()`` trains the student, ``Distiller.resume(folder)`` continues."""

    def __init__(self, config: DistillConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.out_dir = Path(config.out_dir)
        self.teacher = UNetGenerator.from_weights(config.teacher).to(self.device).eval().requires_grad_(False)
        files = sorted(_scan(config.photo_dirs, "photo", []))  # folders checked, unreadable files named
        self.cache = TeacherCache.build(self.teacher, files, config.cache_size, self.out_dir / "teacher_cache.pt",
                                        self.device)
        self.bf16 = config.amp == "bf16" or (config.amp == "auto" and native_bf16(self.device))
        # channels-last pays with bf16 (oneDNN's AMX and AVX-512 kernels) and costs with float32 on a CPU
        self.memory = torch.channels_last if self.bf16 else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.generator = config.student().to(self.device, memory_format=self.memory)
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr)
        vgg_weights = resolve_weights(config.vgg_weights) if config.perceptual else None
        self.vgg = (VGGFeatures("vgg16", "conv4_3", weights=vgg_weights).to(self.device, memory_format=self.memory)
                    if config.perceptual else None)
        self.step = 0
        self.log = RunLog(self.out_dir, LOG_COLUMNS)
        self._sample = [p.float() for p in self.cache.photos[:4]]

    def lr_at(self, step: int) -> float:
        """Cosine decay from ``lr`` to ``final_lr`` over ``steps``."""
        c = self.config
        # a Python float: a numpy scalar in the optimizer state would not load with weights_only=True
        return c.final_lr + 0.5 * (c.lr - c.final_lr) * (1 + math.cos(math.pi * min(step / max(c.steps, 1), 1.0)))

    def train_step(self) -> dict:
        c = self.config
        photo, target = (t.to(self.device, memory_format=self.memory)
                         for t in self.cache.batch(c.seed, self.step, c.batch_size, c.size))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        wanted = post_process(photo, target)  # the teacher's cartoon, as a viewer sees it
        # the student's, before the final clip: the clip would stop the gradient wherever it overshoots; the
        # guided filter computes in float32 inside the autocast region
        with self._autocast():
            out = guided_filter(photo, self.generator(photo), POST_PROCESS_R, POST_PROCESS_EPS)
        l1 = F.l1_loss(out, wanted)
        total, values = l1, {"l1": l1.item()}
        if self.vgg is not None and self.step % c.perceptual_every == 0:
            with self._autocast():
                with torch.no_grad():
                    wanted_features = self.vgg(wanted).float()
                out_features = self.vgg(out).float()
            perceptual = F.l1_loss(out_features, wanted_features)
            total = total + c.perceptual * perceptual
            values["perceptual"] = perceptual.item()
        if not torch.isfinite(total):
            raise UsageError(f"step {self.step}: the distillation loss became {total.item()}; lower lr ({c.lr})")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.step += 1
        values.update(total=total.item(), lr=self.optimizer.param_groups[0]["lr"])
        self.log.add(values)
        return values

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def fit(self, max_steps: int | None = None) -> dict:
        """Train to ``config.steps`` (or ``max_steps`` more); a progress bar, log rows, grids, checkpoints."""
        from tqdm.auto import tqdm

        stop = self.config.steps if max_steps is None else min(self.config.steps, self.step + max_steps)
        last: dict = {}
        with tqdm(total=self.config.steps, initial=self.step, desc="distill") as progress:
            while self.step < stop:
                last = self.train_step()
                progress.update(1)
                progress.set_postfix(l1=f"{last['l1']:.4f}")
                if due(self.config.log_every, self.step, stop):
                    last = self.log.write(self.step, "distill")
                if due(self.config.sample_every, self.step, stop):
                    self.save_samples()
                if due(self.config.checkpoint_every, self.step, stop):
                    self.save_checkpoint()
        return last

    def save_samples(self) -> None:
        """Photos, the teacher's cartoons and the student's, in ``samples/step_NNNNNNN.png``."""
        grid = torch.cat([sample_grid(self.teacher, p[None].to(self.device), self.generator) for p in self._sample], 2)
        write_image(self.out_dir / "samples" / f"step_{self.step:07d}.png", grid)

    def state_dict(self) -> dict:
        return {"config": self.config.to_dict(), "step": self.step, "generator_config": self.generator.config(),
                "generator": self.generator.state_dict(), "g_opt": self.optimizer.state_dict(),
                "rng_cpu": torch.get_rng_state(), "world_size": 1, "pending_structure": None}

    def save_checkpoint(self) -> Path | None:
        state = self.state_dict()
        if not checkpoint.all_finite([state["generator"], state["g_opt"]]):
            raise UsageError(f"step {self.step}: the student's weights became non-finite (not saved); resume "
                             "from the last checkpoint with a lower lr")
        return checkpoint.write(self.out_dir / "checkpoints", state, keep=self.config.keep_checkpoints)

    @classmethod
    def resume(cls, path, **overrides) -> Distiller:
        """Continue from a checkpoint folder or the newest usable one of a run folder; ``overrides`` may
        change ``steps``, ``lr`` and the logging fields, not the student's shape."""
        folder, state = checkpoint.resume_state(path)
        saved = dict(state["config"])
        changed = [k for k in ("channels", "num_blocks", "teacher") if k in overrides and overrides[k] != saved[k]]
        if changed:
            raise UsageError(f"--resume cannot change {', '.join(changed)}: the checkpoint's student and teacher "
                             "are fixed; start a new run with another --out")
        run = checkpoint.run_folder(folder)
        distiller = cls(DistillConfig(**{**saved, **({"out_dir": str(run)} if run else {}), **overrides}))
        distiller.generator.load_state_dict(state["generator"])
        distiller.optimizer.load_state_dict(state["g_opt"])
        distiller.step = int(state["step"])
        torch.set_rng_state(state["rng_cpu"])
        return distiller


def _multiple_of_8(image: torch.Tensor) -> torch.Tensor:
    """Crop ``(1, 3, H, W)`` to the largest multiple of 8 in each side (from the centre)."""
    height, width = image.shape[-2:]
    h, w = height // SIZE_MULTIPLE * SIZE_MULTIPLE, width // SIZE_MULTIPLE * SIZE_MULTIPLE
    top, left = (height - h) // 2, (width - w) // 2
    return image[..., top:top + h, left:left + w]
