"""Fine-tuning: a new style from the official weights, on a CPU, in under an hour (lesson 06).

Training White-box from scratch takes a GPU-day; moving a trained generator towards a new style takes
a few hundred steps, because the generator already knows how to flatten and outline. The recipe:

- **start** from the official generator (TensorFlow conventions, unbounded output, as it was trained)
  and from *fresh* discriminators: they must learn the new frames, not the official ones;
- **data**: the student's own cartoon frames (e.g. ``python -m data_scripts.extract_frames`` from a film
  they own), with the last ``hold_out`` share of each film's frames in time kept out
  (:func:`~animescene.data.split_by_film_and_time`) to measure the style on frames it never saw;
- **size and steps**: ``FINETUNE_RECIPE``: 128-pixel crops in batches of 4 (a step is a few seconds on a
  laptop CPU, most of it the VGG16 of the structure and content losses), a lower learning rate than
  training from scratch (the weights are already good), no pretraining (the official weights are the
  pretrained state);
- **what moves**: the residual blocks and the decoder. The encoder (``head`` to ``conv2``) stays frozen: it
  describes the photo, which is the same whatever the style. Measured against training everything (150
  steps each): frozen, the style gain is larger and surer and the cartoons keep the official ones'
  abstraction; unfrozen, the generator drifts back towards the photo (content distance 0.65x);
- **which βs**: White-box's, with the two adversarial terms (surface and texture) raised, because the
  style lives there, while structure and content keep the cartoon tied to the photo;
- **how many steps**: 300. On Ghibli frames with the Kodak photos as judges (docs/benchmarks.md), the
  style gain over the official weights is already there after 50 steps but the content distance is
  then 11 % above the official's; by 150 steps the decoder has settled (content x1.01) and at 300 the
  gain's confidence interval is the tightest measured (+0.0036, CI [+0.0018, +0.0056], content x0.85);
  at 400 the mean gain stays but its interval widens to touch zero.

:func:`finetune_config` builds the :class:`~animescene.train_config.TrainConfig`; the trainer does the
rest (exact resume, progress bar, sample grids, checkpoints). :func:`save_made_generator` writes the
result with its conventions and the official weights' licence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import UsageError
from .images import atomic_output
from .models import GeneratorWeights, UNetGenerator, made_generator_path, save_generator
from .losses import Betas
from .train_config import TrainConfig

__all__ = ["FINETUNE_RECIPE", "finetune_config", "save_made_generator"]

ENCODER = ["head", "down1", "conv1", "down2", "conv2"]

FINETUNE_RECIPE = {
    "size": 128,
    "batch_size": 4,
    "pretrain_steps": 0,
    "steps": 300,
    "lr": 5e-5,
    "hold_out": 0.2,
    "freeze": ENCODER,
    "betas": {**Betas().as_dict(), "surface": 1.0, "texture": 10.0},
    "structure_method": "slic",
    "log_every": 10,
    "sample_every": 50,
    "checkpoint_every": 50,
    "structure_workers": 1,
}


def finetune_config(cartoon_dirs, photo_dirs, out_dir, start="official", **overrides) -> TrainConfig:
    """The fine-tuning run of ``start``'s weights on ``cartoon_dirs``: ``FINETUNE_RECIPE`` + ``overrides``.

    The generator's shape and conventions (``channels``, ``num_blocks``, ``tf_mode``, ``bounded``) are
    the starting weights' own, so the result loads wherever they do.
    """
    generator = UNetGenerator.from_weights(start)
    init = start.value if isinstance(start, GeneratorWeights) else str(start)
    values = {**FINETUNE_RECIPE, **generator.config(), "init_weights": init, "out_dir": str(out_dir),
              "cartoon_dirs": cartoon_dirs, "photo_dirs": photo_dirs, **overrides}
    return TrainConfig(**values)


def save_made_generator(generator: UNetGenerator, run_dir, name: str | None, *, source: str) -> list[Path]:
    """Save a generator made here as ``run_dir/generator.pt`` and, with a ``name``, as the named generator
    that ``--weights NAME`` finds (:func:`~animescene.models.made_generator_path`). Returns the files.

    The weights derive from the official ones, so they keep their licence (CC BY-NC-SA 4.0: non-commercial,
    share alike): they are made on the user's machine and never shipped with the course.
    """
    licence = GeneratorWeights.WHITEBOX_OFFICIAL.licence
    files = [save_generator(generator, Path(run_dir) / "generator.pt", licence=licence, source=source)]
    if name is not None:
        target = made_generator_path(name)
        if target is None:
            raise UsageError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only (it becomes a file name)")
        with atomic_output(target) as partial:  # --weights NAME never finds half a file
            shutil.copyfile(files[0], partial)
        files.append(target)
    return files
