r"""The five generator losses, the LSGAN pair, and their weighted sum (lessons 04-06).

.. math::
    L_G = \beta_1 L_{tv} + \beta_2 L_{surface} + \beta_3 L_{structure} + \beta_4 L_{texture}
          + \beta_5 L_{content}

- :math:`L_{tv}`: total variation of the output (smoothness);
- :math:`L_{surface}`: LSGAN generator loss of the surface discriminator on ``surface(G(x))``;
- :math:`L_{structure} = |VGG(G(x)) - VGG(F_{sr}(G(x)))|`: the output should look like its own
  flat-coloured superpixel version;
- :math:`L_{texture}`: LSGAN generator loss of the texture discriminator on ``texture(G(x))``;
- :math:`L_{content} = |VGG(G(x)) - VGG(x)|`: keep the photo's content (the thesis's "superpixel loss").

Normalisation follows White-box's code so that its weights (tv 1e4, surface 0.1, structure 200,
texture 1, content 200) keep their balance: the VGG L1 is the mean absolute difference divided again by
the feature map's ``C*H*W``, and the total variation is the mean squared neighbour difference divided by
``3*H*W``. Both were tuned with Caffe-scaled VGG features (0..255 input), which the HED weights share;
torchvision's ImageNet-normalised features are about 58x smaller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .representations import color_shift, structure, surface, texture


@dataclass(frozen=True)
class Betas:
    """β1..β5 of the generator loss; defaults from White-box's training code."""

    tv: float = 1e4
    surface: float = 0.1
    structure: float = 200.0
    texture: float = 1.0
    content: float = 200.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    r"""Total variation: mean squared difference of vertical and of horizontal neighbours, / (3 H W).

    Shape: ``(B, C, H, W) -> ()``.
    """
    height, width = x.shape[-2:]
    tv_h = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).mean()
    tv_w = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()
    return (tv_h + tv_w) / (3 * height * width)


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""LSGAN discriminator loss :math:`\frac12(E[(D(real)-1)^2] + E[D(fake)^2])` (Mao et al., 2017)."""
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""LSGAN generator loss :math:`E[(D(fake)-1)^2]`: make the judge call fakes real."""
    return (fake_logits - 1).pow(2).mean()


def feature_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """White-box's VGG distance: mean |a - b| divided by the feature map's ``C*H*W``.

    Shape: ``(B, C, H, W), (B, C, H, W) -> ()``.
    """
    channels, height, width = a.shape[1:]
    return (a - b).abs().mean() / (channels * height * width)


def content_loss(vgg: nn.Module, photo: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``feature_l1(VGG(fake), VGG(photo))``: the output keeps the photo's content."""
    return feature_l1(vgg(fake), vgg(photo))


def structure_loss(vgg: nn.Module, fake: torch.Tensor, fake_structure: torch.Tensor) -> torch.Tensor:
    """``feature_l1(VGG(fake), VGG(structure(fake)))``: the output looks like its flat-coloured regions."""
    return feature_l1(vgg(fake), vgg(fake_structure))


def surface_loss(disc: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The surface discriminator's LSGAN generator loss on ``surface(fake)`` (the guided-filter view)."""
    return lsgan_g_loss(disc(surface(fake)))


def texture_loss(disc: nn.Module, fake: torch.Tensor, color_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The texture discriminator's LSGAN generator loss on ``texture(fake)`` (random colour shift to gray).

    ``color_weights``: ``(B, 3)`` colour-shift weights (:func:`sample_color_shift`), or None to draw them.
    """
    gray = texture(fake) if color_weights is None else color_shift(fake, color_weights)
    return lsgan_g_loss(disc(gray))


class GeneratorLoss(nn.Module):
    r"""The weighted sum of the five generator losses, returning the total and every term.

    Args:
        betas: :class:`Betas` (or a dict with its field names).
        vgg: the frozen feature extractor (``VGGFeatures``) for the content and structure terms.

    ``forward(photo, fake, fake_structure, disc_surface, disc_texture, color_weights=None)`` takes the
    photo batch ``x``, the generator's output ``G(x)``, its structure representation (computed off the
    gradient path, e.g. by worker processes; ``None`` computes it here), both discriminators and
    optionally the ``(B, 3)`` colour-shift weights of the texture term (drawn when None). It returns a
    dict with ``total`` and the unweighted ``tv``, ``surface``, ``structure``, ``texture`` and ``content``
    terms (all scalars).
    """

    TERMS = ("tv", "surface", "structure", "texture", "content")

    def __init__(self, betas: Betas | dict = Betas(), vgg: nn.Module | None = None):
        super().__init__()
        self.betas = betas if isinstance(betas, Betas) else Betas(**betas)
        self.vgg = vgg

    def forward(self, photo, fake, fake_structure, disc_surface, disc_texture, color_weights=None) -> dict:
        if self.vgg is None:
            raise ValueError("GeneratorLoss needs a VGG feature extractor: GeneratorLoss(betas, vgg=VGGFeatures(...))")
        if fake_structure is None:
            fake_structure = structure(fake.detach())
        # one VGG pass over the three batches instead of four passes (VGG(fake) serves two terms)
        fake_features, structure_features, photo_features = self.vgg(
            torch.cat([fake, fake_structure.to(fake.dtype), photo.to(fake.dtype)])
        ).chunk(3)
        terms = {
            "tv": tv_loss(fake),
            "surface": surface_loss(disc_surface, fake),
            "structure": feature_l1(fake_features, structure_features),
            "texture": texture_loss(disc_texture, fake, color_weights),
            "content": feature_l1(fake_features, photo_features),
        }
        weights = self.betas.as_dict()
        terms["total"] = sum(weights[name] * terms[name] for name in self.TERMS)
        return terms


def discriminator_loss(disc_surface, disc_texture, fake, cartoon, color_weights=None) -> dict:
    """Both discriminators' LSGAN losses on detached fakes: ``{"total", "surface", "texture"}``.

    Each discriminator sees real and fake in one batch (one forward pass, as DistributedDataParallel
    requires, and one kernel launch instead of two). ``color_weights``: ``(2B, 3)`` colour-shift weights
    for the cartoons then the fakes, or None to draw them.
    """
    both = torch.cat([cartoon, fake.detach().to(cartoon.dtype)])
    count = cartoon.shape[0]
    real_s, fake_s = disc_surface(surface(both)).split(count)
    gray = texture(both) if color_weights is None else color_shift(both, color_weights)
    real_t, fake_t = disc_texture(gray).split(count)
    surface_d, texture_d = lsgan_d_loss(real_s, fake_s), lsgan_d_loss(real_t, fake_t)
    return {"total": surface_d + texture_d, "surface": surface_d, "texture": texture_d}
