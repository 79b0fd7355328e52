"""The configuration of a training run (lesson 06): a dataclass, checked whole before any work starts.

A run is described by one :class:`TrainConfig`; ``animescene train --config FILE`` reads it from YAML or
JSON, every checkpoint saves it. Each field is checked when the config is made (or read), so that a typo
in a file, a string where a number belongs or a negative step count stops the run at once with one line
naming the field and the fix (a :class:`~animescene.errors.UsageError`), not hours later or never.
What only the machine can tell (is the device there, do the folders exist) is checked by the trainer
before it builds anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UsageError
from .losses import Betas
from .models import UNetGenerator
from .segmentation import METHODS, STRUCTURE_DEFAULTS
from .vgg import layer_names

AMP_CHOICES = ("auto", "bf16", "fp16", "none")
VGG_ARCHS = ("vgg16", "vgg19")
# The model and data-shape fields: a checkpoint's weights, optimizer state and pending structure target
# only fit the values they were trained with, so a resumed run may not change them.
SHAPE_FIELDS = ("size", "batch_size", "channels", "num_blocks", "bounded", "tf_mode", "freeze")


@dataclass
class TrainConfig:
    """Everything a run depends on; saved with every checkpoint. Defaults follow White-box's code.

    Load one from YAML or JSON with :meth:`from_file`; ``animescene train --config FILE`` does. A bad
    value raises :class:`~animescene.errors.UsageError` naming the field.
    """

    # data: unpaired folders of photos and cartoons; the thesis mixes scenery with faces
    photo_dirs: list[str] = field(default_factory=list)
    cartoon_dirs: list[str] = field(default_factory=list)
    face_photo_dirs: list[str] = field(default_factory=list)
    face_cartoon_dirs: list[str] = field(default_factory=list)
    face_ratio: float = 0.0  # share of face items; White-box trains one batch in five (0.2) on faces
    hold_out: float = 0.0  # share of each film's last frames kept out of training (data.split_by_film_and_time)
    size: int = 256  # a multiple of 8 (the generator halves the image three times)
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
    structure_method: str = STRUCTURE_DEFAULTS.method
    segments: int = STRUCTURE_DEFAULTS.segments
    structure_workers: int = -1  # -1: one per CPU core but one; 0: compute in this process
    vgg_arch: str = "vgg16"
    vgg_layer: str | None = None  # None: conv4_3 for vgg16, conv4_4 for vgg19
    vgg_weights: str | None = "auto"
    # generator
    channels: int = 32
    num_blocks: int = 4
    bounded: bool = True
    tf_mode: bool = False  # TensorFlow padding/resize, to fine-tune the official weights
    init_weights: str | None = None  # start from these generator weights (a name or file), e.g. "official"
    freeze: list[str] = field(default_factory=list)  # generator parts left as they are, e.g. ["head", "down1"]
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
        for name in ("photo_dirs", "cartoon_dirs", "face_photo_dirs", "face_cartoon_dirs"):
            setattr(self, name, _folders(name, getattr(self, name)))
        self.face_ratio = _number("face_ratio", self.face_ratio, low=0.0, high=1.0)
        self.hold_out = _number("hold_out", self.hold_out, low=0.0, high=0.95)
        _whole("size", self.size, low=8)
        if self.size % 8:
            raise UsageError(f"size must be a multiple of 8 (the generator halves the image three times), "
                             f"got {self.size}; use e.g. {max(8, self.size // 8 * 8)}")
        for name, low in (("batch_size", 1), ("num_workers", 0), ("pretrain_steps", 0), ("steps", 0),
                          ("segments", 1), ("structure_workers", -1), ("channels", 1), ("num_blocks", 0),
                          ("seed", 0), ("log_every", 0), ("sample_every", 0), ("checkpoint_every", 0),
                          ("keep_checkpoints", 1)):
            _whole(name, getattr(self, name), low=low)
        self.lr = _number("lr", self.lr, low=0.0, positive=True)
        self.train_filter_eps = _number("train_filter_eps", self.train_filter_eps, low=0.0, positive=True)
        self.adam_betas = _adam_betas(self.adam_betas)
        self.betas = _betas(self.betas)
        _choice("structure_method", self.structure_method, METHODS)
        _choice("amp", self.amp, AMP_CHOICES)
        self.freeze = _generator_parts(self.freeze)
        for name in ("vgg_layer", "vgg_weights", "init_weights"):
            _text(name, getattr(self, name), optional=True)
        _choice("vgg_arch", self.vgg_arch, VGG_ARCHS)
        if self.vgg_layer is not None and self.vgg_layer not in layer_names(self.vgg_arch):
            raise UsageError(f"vgg_layer {self.vgg_layer!r} is not a layer of {self.vgg_arch}; use null for the "
                             f"default or one of {', '.join(layer_names(self.vgg_arch))}")
        if isinstance(self.device, torch.device):
            self.device = str(self.device)  # a name, so that the config stays JSON and YAML
        for name in ("device", "out_dir"):
            _text(name, getattr(self, name))
        for name in ("bounded", "tf_mode", "tensorboard"):
            _flag(name, getattr(self, name))
        _flag("channels_last", self.channels_last, optional=True)

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from field values; unknown names are refused with the nearest known one."""
        known = [f.name for f in dataclasses.fields(cls)]
        for name in values:
            if name not in known:
                near = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known fields: {', '.join(known)}"
                raise UsageError(f"unknown TrainConfig field {name!r}; {hint}")
        return cls(**values)

    @classmethod
    def resumed(cls, saved: dict, overrides: dict) -> TrainConfig:
        """The config of a resumed run: a checkpoint's ``saved`` config with ``overrides`` applied.

        ``steps``, ``lr``, ``betas``, ``out_dir``, ``device`` and the like may change; the
        :data:`SHAPE_FIELDS` may not, since the checkpoint's weights and pending target only fit them.
        """
        changed = [f"{k}={v!r} (it was trained with {saved[k]!r})" for k, v in overrides.items()
                   if k in SHAPE_FIELDS and v != saved.get(k)]
        if changed:
            raise UsageError(f"a resumed run keeps its model and batch shape, so it cannot take {', '.join(changed)}; "
                             "drop the option, or start a new run in another output folder")
        return cls.from_dict({**saved, **overrides})

    @classmethod
    def from_file(cls, path) -> TrainConfig:
        """Read a ``.yaml``/``.yml`` or ``.json`` file of field values."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise UsageError(f"cannot read the config file {path} ({err.strerror}); check the path") from err
        try:
            values = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as err:
            where = " ".join(str(err).split())  # PyYAML's messages span lines; the CLI prints one
            raise UsageError(f"{path} is not valid {'YAML' if path.suffix != '.json' else 'JSON'}: {where}; "
                             "fix the file") from err
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise UsageError(f"{path}: expected a mapping of TrainConfig fields (name: value), "
                             f"got a {type(values).__name__}")
        try:
            return cls.from_dict(values)
        except UsageError as err:
            raise UsageError(f"{path}: {err}") from None


def _whole(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}; write it without quotes or a decimal point")
    if value < low:
        raise UsageError(f"{name} must be >= {low}, got {value}")


def _number(name: str, value, low: float, high: float = math.inf, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} must be a number, got {value!r}; in YAML write e.g. 2.0e-4 or 0.0002 "
                         "(2e-4 without a decimal point is read as text)")
    if not (math.isfinite(value) and low <= value <= high) or (positive and value == low):
        bounds = f"> {low}" if positive else f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise UsageError(f"{name} must be a finite number {bounds}, got {value!r}")
    return float(value)


def _choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _text(name: str, value, optional: bool = False) -> None:
    if not (isinstance(value, str) or (optional and value is None)):
        raise UsageError(f"{name} must be {'null or ' if optional else ''}a string, got {value!r}")


def _flag(name: str, value, optional: bool = False) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise UsageError(f"{name} must be {'null, ' if optional else ''}true or false, got {value!r}")


def _folders(name: str, value) -> list[str]:
    """A list of folder names; one name alone (``photo_dirs: data/photos`` in YAML) is a list of one."""
    if isinstance(value, (str, Path)):
        return [str(value)]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
        raise UsageError(f"{name} must be a list of folder paths, got {value!r}")
    return [str(v) for v in value]


def _generator_parts(value) -> list[str]:
    parts = [name for name, _ in UNetGenerator(channels=1, num_blocks=0).named_children()]
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise UsageError(f"freeze must be a list of generator parts ({', '.join(parts)}), got {value!r}")
    unknown = [v for v in value if v not in parts]
    if unknown:
        raise UsageError(f"freeze names {unknown}, which are not parts of the generator; use some of {', '.join(parts)}")
    return list(value)


def _adam_betas(value) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UsageError(f"adam_betas must be two numbers in [0, 1), e.g. [0.5, 0.99]; got {value!r}")
    betas = tuple(_number("adam_betas", v, low=0.0, high=1.0) for v in value)
    if max(betas) >= 1.0:
        raise UsageError(f"adam_betas must be two numbers in [0, 1), e.g. [0.5, 0.99]; got {value!r}")
    return betas


def _betas(value) -> dict[str, float]:
    """The five loss weights with defaults filled in; typos and bad values are refused."""
    terms = Betas().as_dict()
    if not isinstance(value, dict):
        raise UsageError(f"betas must be a mapping of loss terms ({', '.join(terms)}) to weights, got {value!r}")
    for name in value:
        if name not in terms:
            raise UsageError(f"unknown loss term {name!r} in betas; the terms are {', '.join(terms)}")
    merged = {**terms, **value}
    return {name: _number(f"betas.{name}", weight, low=0.0) for name, weight in merged.items()}
