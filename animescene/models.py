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
The mode is part of a checkpoint's config.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .images import check_batch

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


def load_generator(path, map_location="cpu") -> UNetGenerator:
    """A :class:`UNetGenerator` from a file this library wrote (a checkpoint or exported weights).

    Accepts ``{"config": ..., "generator": state_dict}`` (training checkpoints and exported weights)
    or a bare state dict of the default architecture. Loaded with ``weights_only=True``.
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if "generator" in payload:
        config = payload.get("generator_config", {})
        state = payload["generator"]
    else:
        config, state = {}, payload
    model = UNetGenerator(**config)
    model.load_state_dict(state)
    return model.eval()


def load_official_whitebox(path=None) -> UNetGenerator:
    """The official White-box Cartoonization weights in a TF-mode :class:`UNetGenerator`, eval mode.

    RGB ``[-1, 1]`` in and out like every model here (the original's BGR order is folded into the first
    and last conv). Unbounded, like the original: clip the output, and apply the guided filter as the
    original does: ``guided_filter(x, G(x), 1, 5e-3)``.

    Args:
        path: a converted ``.pt`` state dict or the ``.tflite`` file; default: the converted file in
            the cache (``python -m data_scripts.download whitebox-official`` makes it).

    The weights are CC BY-NC-SA 4.0 (Xinrui Wang): non-commercial use only, with attribution.
    """
    from pathlib import Path

    from .downloads import WHITEBOX_WEIGHTS, weights_dir

    path = Path(path) if path is not None else weights_dir() / WHITEBOX_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the official White-box weights are not here. Get them with "
            "`python -m data_scripts.download whitebox-official` (non-commercial licence), or pass the "
            "path of whitebox_cartoon_gan_fp16.tflite"
        )
    if path.suffix == ".tflite":
        from .convert import whitebox_state_dict_from_tflite

        state = whitebox_state_dict_from_tflite(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = UNetGenerator(tf_mode=True, bounded=False)
    model.load_state_dict(state)
    return model.eval()
