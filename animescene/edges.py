"""Learned edges: the HED edge detector on the HED VGG16 (lessons 02 and 05).

HED (Xie & Tu, ICCV 2015) reads five VGG16 stages (``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``,
``relu5_3``), turns each into a one-channel "side output" with a 1x1 conv, upsamples them to the input
size (bilinear), and fuses the five with another 1x1 conv; a sigmoid gives the edge probability. It is
the same file as ``VGGFeatures(weights="hed")``: what the pretrained backbone sees, made visible.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UsageError
from .vgg import FrozenModule, VGGFeatures, VGGWeights, load_vgg_state

SIDE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_SIDE_WIDTHS = (64, 128, 256, 512, 512)


class HED(FrozenModule):
    """The HED edge detector, frozen, in eval mode.

    Args:
        weights: ``VGGWeights.HED`` or its name ``"hed"`` (the converted BSDS500 model, from the verified
            cache; see :mod:`animescene.vgg`), or the path of a file holding the same layers.

    Shape:
        ``(B, 3, H, W)`` RGB in [-1, 1] -> ``(B, 1, H, W)`` edge probability in [0, 1].
    """

    def __init__(self, weights=VGGWeights.HED):
        super().__init__()
        self.backbone = VGGFeatures("vgg16", layer=SIDE_LAYERS, weights=weights)
        if not self.backbone.caffe:
            raise UsageError(f"weights {str(weights)!r} hold no HED side/fuse layers: not a HED weights file; "
                             f"use weights='hed' ({VGGWeights.HED.how_to_get()})")
        state, _ = load_vgg_state(self.backbone.weights, "vgg16")
        self.sides = nn.ModuleList(nn.Conv2d(width, 1, 1) for width in _SIDE_WIDTHS)
        self.fuse = nn.Conv2d(5, 1, 1)
        for i, side in enumerate(self.sides, start=1):
            side.load_state_dict({"weight": state[f"side{i}.weight"], "bias": state[f"side{i}.bias"]})
        self.fuse.load_state_dict({"weight": state["fuse.weight"], "bias": state["fuse.bias"]})
        self.requires_grad_(False)
        self.eval()

    def side_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five side-output logits, each upsampled to ``(B, 1, H, W)``; coarse stages see bigger edges."""
        size = x.shape[-2:]
        logits = []
        for features, side in zip(self.backbone(x), self.sides):
            logit = side(features)
            if logit.shape[-2:] != size:
                logit = F.interpolate(logit, size=size, mode="bilinear", align_corners=False)
            logits.append(logit)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fuse(torch.cat(self.side_outputs(x), dim=1)))


_CACHED: dict[str, HED] = {}


def hed(x: torch.Tensor) -> torch.Tensor:
    """HED edge probabilities of ``x``: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 1, H, W)`` in [0, 1].

    Loads the model once per device (``animescene download vgg16-hed`` provides it) and
    runs without gradients.
    """
    key = str(x.device)
    if key not in _CACHED:
        _CACHED[key] = HED().to(x.device)
    with torch.no_grad():
        return _CACHED[key](x)
