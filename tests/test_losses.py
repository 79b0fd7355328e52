"""Each loss against a value computed by hand on a small tensor; gradients reach the generator."""

import pytest
import torch
import torch.nn as nn

from animescene.losses import (
    Betas,
    GeneratorLoss,
    content_loss,
    discriminator_loss,
    feature_l1,
    lsgan_d_loss,
    lsgan_g_loss,
    structure_loss,
    surface_loss,
    texture_loss,
    tv_loss,
)
from animescene.models import PatchDiscriminator, UNetGenerator
from animescene.vgg import VGGFeatures


class ChannelMean(nn.Module):
    """A stand-in 'discriminator' whose logit is the channel mean: easy to compute by hand."""

    def forward(self, x):
        return x.mean(dim=1, keepdim=True)


def test_tv_loss_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs 2, 3 -> mean square 6.5; horizontal 1, 2 -> 2.5; (6.5 + 2.5) / (3 * 2 * 2)
    assert tv_loss(x).item() == pytest.approx(0.75)


def test_lsgan_losses_by_hand():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -0.5])
    assert lsgan_d_loss(real, fake).item() == pytest.approx(0.5 * (0.5 + 0.25))
    assert lsgan_g_loss(fake).item() == pytest.approx((0.25 + 2.25) / 2)


def test_feature_l1_by_hand():
    a = torch.zeros(1, 2, 1, 2)
    b = torch.tensor([[[[1.0, 2.0]], [[3.0, -4.0]]]])
    assert feature_l1(a, b).item() == pytest.approx(2.5 / 4)  # mean |a-b| / (C*H*W)


def test_content_and_structure_losses_compare_features():
    identity = nn.Identity()
    photo = torch.zeros(1, 3, 2, 2)
    fake = torch.full((1, 3, 2, 2), 0.5)
    flat = torch.full((1, 3, 2, 2), 0.25)
    assert content_loss(identity, photo, fake).item() == pytest.approx(0.5 / 12)
    assert structure_loss(identity, fake, flat).item() == pytest.approx(0.25 / 12)


def test_adversarial_losses_on_flat_images_by_hand():
    # a flat image is its own surface (guided filter of a constant) and its own texture (equal channels)
    fake = torch.full((2, 3, 16, 16), 0.5)
    assert surface_loss(ChannelMean(), fake).item() == pytest.approx(0.25, abs=1e-6)
    assert texture_loss(ChannelMean(), fake).item() == pytest.approx(0.25, abs=1e-6)


def test_discriminator_loss_by_hand():
    fake, cartoon = torch.full((1, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), 1.0)
    losses = discriminator_loss(ChannelMean(), ChannelMean(), fake, cartoon)
    # real logit 1 -> (1-1)^2 = 0; fake logit 0.5 -> 0.25; 0.5 * (0 + 0.25) for each discriminator
    assert losses["surface"].item() == pytest.approx(0.125, abs=1e-6)
    assert losses["texture"].item() == pytest.approx(0.125, abs=1e-6)
    assert losses["total"].item() == pytest.approx(0.25, abs=1e-6)


def test_generator_loss_is_the_weighted_sum_of_its_terms():
    betas = Betas(tv=2.0, surface=3.0, structure=5.0, texture=7.0, content=11.0)
    loss = GeneratorLoss(betas, vgg=nn.Identity())
    photo = torch.rand(1, 3, 16, 16) * 2 - 1
    fake = torch.rand(1, 3, 16, 16) * 2 - 1
    flat = torch.zeros(1, 3, 16, 16)
    terms = loss(photo, fake, flat, ChannelMean(), ChannelMean())
    assert set(terms) == {"total", "tv", "surface", "structure", "texture", "content"}
    assert terms["tv"].item() == pytest.approx(tv_loss(fake).item())
    assert terms["content"].item() == pytest.approx(feature_l1(fake, photo).item())
    assert terms["structure"].item() == pytest.approx(feature_l1(fake, flat).item())
    expected = sum(getattr(betas, name) * terms[name].item() for name in GeneratorLoss.TERMS)
    assert terms["total"].item() == pytest.approx(expected)


def test_betas_default_to_the_reference_code():
    assert Betas().as_dict() == {"tv": 1e4, "surface": 0.1, "structure": 200.0, "texture": 1.0, "content": 200.0}


def test_every_term_sends_gradient_to_the_generator():
    torch.manual_seed(0)
    generator = UNetGenerator(channels=8, num_blocks=1)
    loss = GeneratorLoss(vgg=VGGFeatures("vgg16", "conv2_2", weights=None))
    disc_surface, disc_texture = PatchDiscriminator(3, 8), PatchDiscriminator(1, 8)
    photo = torch.rand(2, 3, 32, 32) * 2 - 1
    fake = generator(photo)
    terms = loss(photo, fake, None, disc_surface, disc_texture)
    for name in GeneratorLoss.TERMS:
        generator.zero_grad()
        terms[name].backward(retain_graph=True)
        norm = sum(p.grad.abs().sum() for p in generator.parameters() if p.grad is not None)
        assert norm > 0, f"no gradient from the {name} term"


def test_generator_loss_without_vgg_explains():
    with pytest.raises(ValueError, match="VGG"):
        GeneratorLoss()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), None, None)
