r"""Feature extractors: frozen networks that map each image to one vector, for :mod:`animescene.metrics`.

They share one interface (:class:`FeatureExtractor`: ``name``, ``dim``, and images ``(B, 3, H, W)`` in
``[-1, 1]`` -> ``(B, dim)`` float64):

- :class:`InceptionFeatures`: torchvision's ImageNet Inception-v3, 2048-d pool3 features. This is what
  FID means, but torchvision's weights are not the TensorFlow Inception that published FIDs use
  (pytorch-fid ports that one), so absolute values differ from published FIDs; compare them only with
  each other. The weights must be in torch hub's cache (they cannot be downloaded on an offline machine).
- :class:`HEDVGGFeatures`: the offline VGG16 of the HED edge detector (see :mod:`animescene.vgg`),
  1024-d. Its distances are reported as ``FD-HED-VGG16`` and ``KID-HED-VGG16``, never as FID.

:func:`features_of_tensors` and :func:`features_of_folder` run an extractor over many images, a batch
at a time; the folder version first brings every image to one scale (:func:`~animescene.data.centre_square`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import check_batch, check_range
from .runtime import torch_hub_checkpoint
from .vgg import FrozenModule


class FeatureExtractor(FrozenModule):
    """A frozen network that maps images to one feature vector each.

    Subclasses set ``name`` (used in the metric names), ``dim``, and implement :meth:`embed`.

    Shape:
        ``(B, 3, H, W)`` RGB in ``[-1, 1]`` -> ``(B, dim)`` float64, on the CPU.
    """

    name = "features"
    dim = 0

    @property
    def fd_label(self) -> str:
        """How tables call the Fréchet distance over these features."""
        return f"FD-{self.name}"

    @property
    def kid_label(self) -> str:
        """How tables call the kernel distance over these features."""
        return f"KID-{self.name}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Checked ``(B, 3, H, W)`` images in ``[-1, 1]`` -> ``(B, dim)`` features (any float dtype)."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, f"{self.name} input", channels=3)
        check_range(x, f"{self.name} input")
        # float64 on the CPU: the statistics need it, and not every accelerator has float64
        return self.embed(x).cpu().double()


HED_LAYERS = ("relu4_3", "relu5_3")


class HEDVGGFeatures(FeatureExtractor):
    """The HED VGG16's ``relu4_3`` and ``relu5_3`` maps, averaged over space, scaled, concatenated: 1024-d.

    Global average pooling keeps *what* is in the image (how strongly each channel fires) and drops
    *where*, like Inception's pool3, and makes the vector independent of the image size. ``relu4_3``
    responds to textures and local edges, ``relu5_3`` to larger parts and contours.

    Each layer's pooled vector is then scaled to unit RMS (norm ``sqrt(512)``), as LPIPS normalises
    its channel vectors. Raw, the two layers differ in scale, so the larger one would dominate; and
    KID's kernel ``(x . y / d + 1)^3`` is made for features of order 1 (Inception's): on raw HED
    features ``x . y / d`` reaches tens, the cube blows the differences up, and on the course's data
    KID's std over subsets came out larger than its mean. Scaled, ``x . y / d`` is the mean of the two
    layers' cosine similarities, in ``[0, 1]``. The distances then compare which channels fire, not
    how strongly overall.

    Args:
        weights: ``"hed"`` (the offline pretrained VGG16; ``animescene download vgg16-hed``),
            ``None`` (random: tests and smoke runs only), or anything else
            :class:`~animescene.vgg.VGGFeatures` takes. ``name`` says which: ``"HED-VGG16"``,
            ``"random-VGG16"``, ``"ImageNet-VGG16"``.

    Example:
        >>> HEDVGGFeatures(weights=None)(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1024])
    """

    dim = 1024

    def __init__(self, weights="hed"):
        super().__init__()
        from .vgg import VGGFeatures

        self.vgg = VGGFeatures("vgg16", HED_LAYERS, weights=weights)
        names = {"hed": "HED-VGG16", None: "random-VGG16", "imagenet": "ImageNet-VGG16"}
        self.name = names.get(self.vgg.weights, "VGG16")
        self.eval()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [fmap.mean(dim=(2, 3)) for fmap in self.vgg(x)]
        # clamp: an all-zero vector (e.g. a black image on a random VGG) stays zero instead of NaN
        scaled = [v * v.shape[1] ** 0.5 / v.norm(dim=1, keepdim=True).clamp_min(1e-12) for v in pooled]
        return torch.cat(scaled, dim=1)


INCEPTION_SIZE = 299


class InceptionFeatures(FeatureExtractor):
    """torchvision's ImageNet Inception-v3, 2048-d pool3 features: the network FID and KID are defined on.

    Images are resized to 299x299 (bilinear) and normalised with ImageNet's mean and std; the final
    ``fc`` layer is replaced by the identity so the network returns the pooled features.

    Absolute values differ from published FIDs: those use the TensorFlow Inception graph
    (``pt_inception-2015-12-05``, ported by pytorch-fid), whose weights and resizing differ from
    torchvision's ``Inception_V3_Weights.IMAGENET1K_V1``. Compare numbers from this class only with
    each other.

    Args:
        weights: ``"imagenet"`` (torchvision's ``Inception_V3_Weights.IMAGENET1K_V1``, read from torch
            hub's cache, downloaded into it when online) or ``None`` (random: tests only).

    Raises:
        FileNotFoundError: the weights are neither cached nor downloadable; the message says where to
            put the file, or to use :class:`HEDVGGFeatures`, which works offline.
    """

    dim = 2048

    def __init__(self, weights="imagenet"):
        super().__init__()
        from torchvision.models import Inception_V3_Weights, inception_v3

        if weights not in ("imagenet", None):
            raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
        if weights is None:
            # the pretrained model's configuration, with PyTorch's default initialisation (fast)
            model = inception_v3(weights=None, transform_input=True, init_weights=False)
        else:
            try:
                model = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1, progress=False)
            except OSError as err:  # URLError is an OSError: offline, and nothing in the cache
                url = Inception_V3_Weights.IMAGENET1K_V1.url
                cached = torch_hub_checkpoint(url)
                raise FileNotFoundError(
                    f"torchvision's Inception-v3 weights are not cached ({cached}) and cannot be downloaded "
                    f"here ({err}). Copy {cached.name} from a machine that has it (or from {url}) "
                    "to that path, or use the offline HED VGG16 features (HEDVGGFeatures, --features hed)"
                ) from err
        # pool3 features: no classifier, and no auxiliary head (the pretrained file holds one)
        model.fc, model.AuxLogits, model.aux_logits = nn.Identity(), None, False
        self.model = model
        self.name = "Inception-v3" if weights else "random-Inception-v3"
        mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
        # [-1, 1] -> [0, 1] -> (x - mean) / std, folded into one scale and shift
        self.register_buffer("scale", (0.5 / std).view(1, 3, 1, 1))
        self.register_buffer("shift", ((0.5 - mean) / std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def fd_label(self) -> str:
        return "FID" if self.name == "Inception-v3" else super().fd_label

    @property
    def kid_label(self) -> str:
        return "KID" if self.name == "Inception-v3" else super().kid_label

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        return self.model(x * self.scale + self.shift)


EXTRACTORS = {"hed": HEDVGGFeatures, "inception": InceptionFeatures}
"""Extractor classes by their command-line name (``--features``)."""


# ---------------------------------------------------------------------------------------- batching
def features_of_tensors(images: torch.Tensor, extractor, batch_size: int = 16) -> np.ndarray:
    """Features of ``(N, 3, H, W)`` images in ``[-1, 1]``, ``batch_size`` at a time: ``(N, dim)`` float64."""
    check_batch(images, "images", channels=3)
    return np.concatenate([_features_of_batch(images[start : start + batch_size], extractor)
                           for start in range(0, len(images), batch_size)])


def features_of_folder(folder, extractor, *, size: int = 256, limit: int | None = None, seed: int = 0,
                       batch_size: int = 16, transform=None, progress: bool = False) -> np.ndarray:
    """Features of the images of a folder: ``(N, dim)`` float64, in file-name order.

    Every image becomes its :func:`~animescene.data.centre_square` of side ``size`` (as in
    :class:`~animescene.data.ImageFolderDataset`), so all sets are compared at one scale.

    Args:
        folder: a folder of images (unreadable files are skipped with a warning).
        extractor: a :class:`FeatureExtractor` (or any module with the same contract).
        size: the side of the square each image becomes.
        limit: use at most this many images, drawn at random with ``seed`` (None: all of them).
            Folders with the same number of files get the same positions.
        batch_size: images per forward pass of the extractor.
        transform: maps each ``(1, 3, H, W)`` image at its own size, *before* the resize (e.g. a
            :class:`~animescene.inference.Cartoonizer`, which then works at the resolution it is used at).
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    from .data import ImageFolderDataset, centre_square

    dataset = ImageFolderDataset(folder)
    indices = range(len(dataset))
    if limit is not None and limit < len(dataset):
        indices = sorted(np.random.default_rng(seed).choice(len(dataset), limit, replace=False))
    device = _device_of(extractor)
    squares, features = [], []
    for index in tqdm(indices, desc=Path(folder).name, unit="image", disable=not progress):
        image = dataset[index][0][None].to(device)
        if transform is not None:
            image = transform(image).to(device)
        squares.append(centre_square(image, size))
        if len(squares) == batch_size or index == indices[-1]:
            features.append(_features_of_batch(torch.cat(squares), extractor))
            squares = []
    return np.concatenate(features)


def _device_of(extractor) -> torch.device:
    return next(iter(extractor.parameters()), torch.empty(0)).device


def _features_of_batch(images: torch.Tensor, extractor) -> np.ndarray:
    return extractor(images.to(_device_of(extractor))).cpu().double().numpy()
