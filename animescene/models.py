"""The generator and the discriminators (lessons 04 and 07).

``UNetGenerator`` is White-box Cartoonization's ``unet_generator`` (1,467,075 parameters at the
defaults); ``PatchDiscriminator`` is its spectral-norm patch discriminator (``disc_sn``), used twice in
training: on the surface representation (3 channels) and on the texture representation (1 channel).

TensorFlow and PyTorch differ in two places that matter when official weights are loaded:

- **stride-2 "SAME" padding**: TF pads a 3x3 stride-2 convolution of an even-sized input by one pixel at
  the bottom/right only; PyTorch's ``padding=1`` pads one on every side, which shifts the sampling grid
  by a pixel.
- **bilinear upsampling**: TF1's ``resize_bilinear`` (the original's) samples ``src = dst / 2`` (no
  half-pixel centres); PyTorch's ``interpolate(align_corners=False)`` samples ``src = (dst + 0.5) / 2 - 0.5``.

Either difference alone changes about 90% of the official model's output pixels. ``tf_mode=True``
reproduces TensorFlow exactly; the default ``tf_mode=False`` uses PyTorch's conventions (symmetric
padding, half-pixel bilinear), which are faster, export cleanly and are what models trained here use.

So weights are never loaded without their conventions. :meth:`UNetGenerator.from_weights` takes a
name from :class:`GeneratorWeights` (``"official"``), whose entry holds ``tf_mode``, the output bound,
source and licence; a file written by :func:`save_generator` or a training checkpoint, which record
them; White-box's ``.tflite``; or a bare state dict the registry recognises by its fingerprint. Any
other bare state dict is refused: its padding cannot be known.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .downloads import WHITEBOX_WEIGHTS
from .errors import UsageError
from .images import atomic_output, check_batch
from .runtime import cache_dir
from .weights import MissingWeightsError, Weights, WeightsEnum, is_state_dict, quote_error

SIZE_MULTIPLE = 8


class ResBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))``: White-box's residual block (no activation after the sum)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class UNetGenerator(nn.Module):
    r"""White-box Cartoonization's UNet generator.

    k7 3→C, [k3 s2 C→C, k3 C→2C], [k3 s2 2C→2C, k3 2C→4C], ``num_blocks`` residual blocks at 4C,
    k3 4C→2C, bilinear ×2 + skip, k3 2C→2C, k3 2C→C, bilinear ×2 + skip, k3 C→C, k7 C→3;
    LeakyReLU(0.2) after every conv but the last and the residual blocks' second.

    Args:
        channels: C, the width of the first stage (32 in the paper: 1,467,075 parameters).
        num_blocks: residual blocks at the bottleneck (4 in the paper).
        tf_mode: reproduce TensorFlow's stride-2 padding and TF1 bilinear resize (see the module
            docstring); needed for the official weights.
        bounded: end with ``tanh`` so the output stays in [-1, 1]. The original is unbounded and is
            clipped afterwards; values beyond [-1, 1] are where its colour noise comes from.

    Shape:
        ``(B, 3, H, W) -> (B, 3, H, W)``, RGB in [-1, 1], ``H`` and ``W`` multiples of 8.

    Example:
        >>> g = UNetGenerator()
        >>> sum(p.numel() for p in g.parameters())
        1467075
        >>> g(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, channels: int = 32, num_blocks: int = 4, tf_mode: bool = False, bounded: bool = True):
        super().__init__()
        c = channels
        self.channels, self.num_blocks, self.tf_mode, self.bounded = channels, num_blocks, tf_mode, bounded
        down_padding = 0 if tf_mode else 1  # TF mode pads bottom/right by hand in forward
        self.head = nn.Conv2d(3, c, 7, padding=3)
        self.down1 = nn.Conv2d(c, c, 3, stride=2, padding=down_padding)
        self.conv1 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=down_padding)
        self.conv2 = nn.Conv2d(2 * c, 4 * c, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(4 * c) for _ in range(num_blocks)])
        self.reduce = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.up1a = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.up1b = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up2 = nn.Conv2d(c, c, 3, padding=1)
        self.tail = nn.Conv2d(c, 3, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            check_generator_input(x)
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x0 = act(self.head(x))
        x1 = act(self.conv1(act(self.down1(self._pad_down(x0)))))
        x2 = act(self.conv2(act(self.down2(self._pad_down(x1)))))
        x2 = act(self.reduce(self.blocks(x2)))
        x3 = act(self.up1b(act(self.up1a(self._upsample(x2) + x1))))
        x4 = act(self.up2(self._upsample(x3) + x0))
        out = self.tail(x4)
        return torch.tanh(out) if self.bounded else out

    def _pad_down(self, x: torch.Tensor) -> torch.Tensor:
        # TF "SAME" for a 3x3 stride-2 conv on an even size pads 0 before and 1 after.
        return F.pad(x, (0, 1, 0, 1)) if self.tf_mode else x

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_mode:
            return upsample2x_tf1(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    @classmethod
    def from_weights(cls, weights) -> UNetGenerator:
        """A generator built with the conventions its weights carry, in eval mode.

        Args:
            weights: a :class:`GeneratorWeights` member or its name (``"official"``: the cached file,
                verified); or the path of a file :func:`save_generator` wrote, a training checkpoint's
                ``models.pt``, White-box's ``.tflite``, or a bare state dict of weights the registry
                knows (recognised by :func:`~animescene.weights.state_fingerprint`); or a
                ``UNetGenerator``, returned as it is.

        Raises:
            MissingWeightsError: ``weights`` is neither a name nor an existing file, or the named weights
                are not downloaded (the message gives the ``animescene download`` command).
            UsageError: a bare state dict of unknown origin (its ``tf_mode`` and output bound cannot be
                known), a damaged cached file, or a file that holds no generator.

        Example:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "g.pt"
            >>> _ = save_generator(UNetGenerator(tf_mode=True, bounded=False), path, licence="MIT", source="doc")
            >>> UNetGenerator.from_weights(path).config()  # the conventions come back with the weights
            {'channels': 32, 'num_blocks': 4, 'tf_mode': True, 'bounded': False}
        """
        if isinstance(weights, UNetGenerator):
            return weights
        found = GeneratorWeights.resolve(weights)
        if isinstance(found, GeneratorWeights):
            config, state = dict(found.config), found.load_state_dict()
        else:
            config, state = _generator_file(found)
        try:
            model = cls(**config)
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:  # other architecture, or keys of another model
            raise UsageError(f"{weights}: these weights do not fit UNetGenerator({config}) "
                             f"({quote_error(err)})") from err
        return model.eval()

    def config(self) -> dict:
        """The constructor arguments, stored next to the weights in every checkpoint."""
        return {
            "channels": self.channels,
            "num_blocks": self.num_blocks,
            "tf_mode": self.tf_mode,
            "bounded": self.bounded,
        }


def upsample2x_tf1(x: torch.Tensor) -> torch.Tensor:
    """TF1 ``resize_bilinear`` to twice the size (``align_corners=False``, no half-pixel centres).

    Output pixel ``2i`` copies input pixel ``i`` and ``2i+1`` averages pixels ``i`` and ``i+1``; the last
    one repeats the edge. Written with slicing so it exports to ONNX and compiles.

    Shape: ``(B, C, H, W) -> (B, C, 2H, 2W)``.
    """

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        following = torch.cat([t.narrow(dim, 1, t.shape[dim] - 1), t.narrow(dim, t.shape[dim] - 1, 1)], dim)
        return torch.stack([t, (t + following) * 0.5], dim=dim + 1).flatten(dim, dim + 1)

    return along(along(x, 2), 3)


def check_generator_input(x: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is ``(B, 3, H, W)`` float with ``H`` and ``W`` multiples of 8."""
    check_batch(x, "generator input", channels=3)
    height, width = x.shape[-2:]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"the generator needs height and width that are multiples of {SIZE_MULTIPLE}, got {height}x{width}; "
            f"pad the image (animescene.inference pads and crops back for you) or crop it"
        )


class PatchDiscriminator(nn.Module):
    """White-box's spectral-norm patch discriminator: three stages of [k3 s2, k3], then a 1x1 head.

    Stage ``i`` has ``channels * 2**i`` filters; LeakyReLU(0.2) after every conv but the head. Each
    output logit judges one patch of the input (receptive field 43 px at stride 8): LSGAN training
    pushes it to 1 on real patches and 0 on generated ones.

    Args:
        in_channels: 3 for the surface representation, 1 for the texture representation.
        channels: width of the first stage (32 in the paper).

    Shape:
        ``(B, in_channels, H, W) -> (B, 1, ceil(H/8), ceil(W/8))``.
    """

    def __init__(self, in_channels: int = 3, channels: int = 32):
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        layers: list[nn.Module] = []
        previous = in_channels
        for stage in range(3):
            width = channels * 2**stage
            layers += [
                spectral_norm(nn.Conv2d(previous, width, 3, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Conv2d(width, width, 3, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            previous = width
        layers.append(spectral_norm(nn.Conv2d(previous, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            check_batch(x, "discriminator input", channels=self.in_channels)
        return self.net(x)


# ---------------------------------------------------------------------------------------------- weights
class GeneratorWeights(WeightsEnum):
    """Pretrained :class:`UNetGenerator` weights, each with the conventions it needs.

    ``config`` holds the constructor arguments: the official weights need TensorFlow's padding and
    resize (``tf_mode=True``) and are unbounded (clip after the post-process), like the original.

    Example:
        >>> GeneratorWeights("official") is GeneratorWeights.WHITEBOX_OFFICIAL
        True
        >>> GeneratorWeights.WHITEBOX_OFFICIAL.config["tf_mode"]
        True
    """

    WHITEBOX_OFFICIAL = "official", Weights(
        source="whitebox-official",
        filename=WHITEBOX_WEIGHTS,
        fingerprint="bbfd7f581b98998de3c3131f1bcc7e4c36d046d84fc5bd376b7396d36aad1b72",
        licence="CC BY-NC-SA 4.0 (c) Xinrui Wang: non-commercial use only, credit the authors, share derived "
                "weights under the same licence",
        preprocessing="RGB in [-1, 1] (the original's BGR order is folded into the first and last conv); apply "
                      "animescene.filters.post_process to the output (guided filter r=1, eps=5e-3, clip)",
        config={"channels": 32, "num_blocks": 4, "tf_mode": True, "bounded": False},
    )


    @classmethod
    def resolve(cls, spec) -> GeneratorWeights | Path:
        """:meth:`WeightsEnum.resolve`, and also the name of a generator made here: ``animescene finetune
        --name NAME`` and ``animescene distill --name NAME`` save ``made_generators_dir() / "NAME.pt"``."""
        try:
            return super().resolve(spec)
        except MissingWeightsError as err:
            made = made_generator_path(spec) if isinstance(spec, str) else None
            if made is not None and made.is_file():
                return made
            names = sorted(p.stem for p in made_generators_dir().glob("*.pt"))
            mine = f"; generators made here: {', '.join(names)}" if names else ""
            raise MissingWeightsError(f"{err}{mine}") from None


def made_generators_dir() -> Path:
    """Where the generators made on this machine are saved by name: ``cache_dir() / "generators"``."""
    return cache_dir() / "generators"


def made_generator_path(name: str) -> Path | None:
    """``made_generators_dir() / "NAME.pt"`` for a plain name (letters, digits, ``-``, ``_``, ``.``), else None."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        return None
    return made_generators_dir() / f"{name}.pt"


def conv_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-adds of ``model``'s convolutions on one ``(1, 3, height, width)`` image.

    Counted from the shapes each ``nn.Conv2d`` really sees (forward hooks on a meta-device copy, so no
    arithmetic is done): ``out_elements * in_channels / groups * kh * kw``. Resizes, activations and
    additions are left out; they are a rounding error next to the convolutions.

    Example:
        >>> conv_macs(nn.Conv2d(3, 8, 3, padding=1), 4, 4)  # 8 * 16 outputs, 27 multiply-adds each
        3456
    """
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    shadow = copy.deepcopy(model).to("meta")
    hooks = [m.register_forward_hook(count) for m in shadow.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            shadow(torch.zeros(1, 3, height, width, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def save_generator(generator: UNetGenerator, path, *, licence: str, source: str) -> Path:
    """Write a generator's weights with its conventions, licence and origin, for :meth:`UNetGenerator.from_weights`.

    The file holds ``generator`` (the state dict, on the CPU), ``generator_config`` (architecture,
    ``tf_mode``, ``bounded``: the keys training checkpoints use too), ``licence`` and ``source``. It is
    written atomically (:func:`~animescene.images.atomic_output`): a crash never leaves half a file.

    Args:
        generator: the model to save.
        path: the ``.pt`` file to write (its folder is created).
        licence: the weights' licence; weights derived from the official ones keep
            ``GeneratorWeights.WHITEBOX_OFFICIAL.licence``.
        source: where the weights come from, e.g. ``"trained on kodak24 + bigbuckbunny, run 003"``.
    """
    payload = {
        "generator_config": generator.config(),
        "generator": {name: tensor.detach().cpu() for name, tensor in generator.state_dict().items()},
        "licence": licence,
        "source": source,
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _generator_file(path: Path) -> tuple[dict, dict]:
    """``(config, state dict)`` of a generator file: its recorded conventions, or the registry's by fingerprint."""
    if path.suffix.lower() == ".tflite":
        # a TFLite file of White-box's graph, exported from TensorFlow: TF conventions, unbounded
        from .convert import whitebox_state_dict_from_tflite

        try:
            state = whitebox_state_dict_from_tflite(path)
        except ImportError as err:
            raise UsageError(f"{path}: reading .tflite files needs a TFLite interpreter: `pip install "
                             f"ai-edge-litert`, or use the converted weights: `animescene download "
                             f"{GeneratorWeights.WHITEBOX_OFFICIAL.source}` then --weights official") from err
        return dict(GeneratorWeights.WHITEBOX_OFFICIAL.config), state
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types; all mean "not a weights file torch reads safely"
        raise UsageError(f"{path} is not a generator file that torch can load safely ({quote_error(err)}); "
                         "pass a file written by save_generator or a training checkpoint's models.pt") from err
    if isinstance(payload, dict) and "generator" in payload and "generator_config" in payload:
        return dict(payload["generator_config"]), payload["generator"]
    state = payload.get("generator") if isinstance(payload, dict) and "generator" in payload else payload
    known = GeneratorWeights.recognise(state) if is_state_dict(state) else None
    if known is None:
        raise UsageError(
            f"{path}: the conventions of these weights are unknown (TF padding? output bound?) because the file "
            "holds only tensors, and they are not weights the registry knows. Save a generator with "
            "animescene.models.save_generator, which records them, or pass a training checkpoint's models.pt"
        )
    return dict(known.config), state


def load_generator(path) -> UNetGenerator:
    """Shorthand for :meth:`UNetGenerator.from_weights` on a file (a saved generator, checkpoint, ``.tflite``)."""
    return UNetGenerator.from_weights(Path(path))


def load_official_whitebox(path=None) -> UNetGenerator:
    """The official White-box Cartoonization generator: :meth:`UNetGenerator.from_weights` of
    ``GeneratorWeights.WHITEBOX_OFFICIAL`` (the verified cache), or of ``path``: a copy of the converted
    ``.pt`` or ``whitebox_cartoon_gan_fp16.tflite``.

    A TF-mode, unbounded :class:`UNetGenerator` in eval mode, RGB ``[-1, 1]`` in and out; apply
    :func:`animescene.filters.post_process` to its output as the original does. The weights are
    CC BY-NC-SA 4.0 (Xinrui Wang): non-commercial use only, with attribution.
    """
    return UNetGenerator.from_weights(GeneratorWeights.WHITEBOX_OFFICIAL if path is None else Path(path))
