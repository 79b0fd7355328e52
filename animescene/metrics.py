r"""Distances between sets of images: Fréchet distance and kernel (KID) distance over deep features.

Neither metric compares an image with its partner: each embeds every image of two sets with a frozen
network and asks how far apart the two *clouds* of feature vectors are.

- **Fréchet distance** (FID when the features are Inception-v3's; Heusel et al. 2017) fits a Gaussian
  to each cloud and measures the 2-Wasserstein distance between the Gaussians:

  .. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2
            + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big)

  It is biased: on few images it comes out larger than on many, so compare values computed from
  sets of the same sizes only.
- **Kernel distance** (KID; Bińkowski et al. 2018) is the unbiased squared maximum mean discrepancy
  with the cubic polynomial kernel :math:`k(x, y) = (x \cdot y / d + 1)^3`. It has no bias from the
  set size and comes with an error bar: the spread of its estimates over random subsets.

Feature extractors share one interface (:class:`FeatureExtractor`: ``name``, ``dim``, and images
``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, dim)`` float64):

- :class:`InceptionFeatures`: torchvision's ImageNet Inception-v3, 2048-d pool3 features. This is what
  FID means, but torchvision's weights are not the TensorFlow Inception that published FIDs use
  (pytorch-fid ports that one), so absolute values differ from published FIDs; compare them only with
  each other. The weights must be in torch hub's cache (they cannot be downloaded on an offline machine).
- :class:`HEDVGGFeatures`: the offline VGG16 of the HED edge detector (see :mod:`animescene.vgg`),
  1024-d. Its distances are reported as ``FD-HED-VGG16`` and ``KID-HED-VGG16``, never as FID.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import check_batch, check_range
from .vgg import FrozenModule


# --------------------------------------------------------------------------------- Fréchet distance
def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Fréchet (2-Wasserstein) distance of :math:`N(\mu_1, \Sigma_1)` and :math:`N(\mu_2, \Sigma_2)`.

    .. math:: \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2
              - 2 \operatorname{Tr}(\Sigma_1 \Sigma_2)^{1/2}

    Computed in float64. The trace of the matrix square root comes from the eigenvalues of
    :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}`, which are those of :math:`\Sigma_1 \Sigma_2`
    (``AB`` and ``BA`` share their eigenvalues) but belong to a *symmetric* positive semi-definite
    matrix: they are real, and rounding only turns the zero ones into tiny numbers of either sign,
    which are set back to 0. The usual ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` works on the
    non-symmetric product; when a covariance is singular (fewer images than feature dimensions, or
    constant features) its Schur decomposition meets tiny negative or complex eigenvalues and returns
    a complex matrix, or NaN and infinities, which FID code then patches with ``eps * I`` and by
    dropping imaginary parts.

    Args:
        mu1, mu2: means, ``(D,)`` arrays or tensors.
        sigma1, sigma2: covariances, ``(D, D)``, symmetric positive semi-definite (singular is fine).

    Returns:
        The distance, a float ``>= 0`` (the *squared* distance of the Gaussians, as FID reports it).

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 * (2 - 1)**2
        4.0
    """
    mu1, mu2 = _float64(mu1, "mu1"), _float64(mu2, "mu2")
    sigma1, sigma2 = _float64(sigma1, "sigma1"), _float64(sigma2, "sigma2")
    if mu1.ndim != 1:
        raise ValueError(f"mu1 must be a (D,) vector, got shape {mu1.shape}")
    dim = mu1.shape[0]
    expected = {"mu2": (mu2, (dim,)), "sigma1": (sigma1, (dim, dim)), "sigma2": (sigma2, (dim, dim))}
    for name, (value, shape) in expected.items():
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match mu1 {mu1.shape}, got {value.shape}")
    root1 = _psd_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(_drop_rounding(np.linalg.eigvalsh((product + product.T) / 2))).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    # equal Gaussians give 0 up to rounding, which may land a hair below it
    return float(max(distance, 0.0))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, float64) of ``(N, D)`` features, ``N >= 2``."""
    features = _check_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def frechet_distance_from_features(features1, features2) -> float:
    r""":func:`frechet_distance` between Gaussians fitted to two sets of features ``(N1, D)`` and ``(N2, D)``.

    Any ``N >= 2`` works, also ``N < D`` (the covariance is then singular); but the distance is biased
    upwards on small sets, so compare values from sets of equal sizes.

    When both sets have fewer images than dimensions, no ``D x D`` matrix is formed: with ``A_i`` the
    centred features divided by ``sqrt(N_i - 1)``, :math:`\Sigma_i = A_i^T A_i`, and the nonzero
    eigenvalues of :math:`\Sigma_1 \Sigma_2 = A_1^T (A_1 A_2^T) A_2` are those of :math:`M M^T` with
    :math:`M = A_1 A_2^T` (``N1 x N2``). So :math:`\operatorname{Tr}(\Sigma_1 \Sigma_2)^{1/2}` is the sum
    of the singular values of ``M``: exact, and far cheaper than eigendecompositions of ``D x D``
    matrices.
    """
    features1, features2 = _check_pair(features1, features2)
    if max(len(features1), len(features2)) >= features1.shape[1]:
        return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
    a1, a2 = (f - f.mean(axis=0) for f in (features1, features2))
    a1, a2 = a1 / np.sqrt(len(a1) - 1), a2 / np.sqrt(len(a2) - 1)
    trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    mean_term = np.sum((features1.mean(axis=0) - features2.mean(axis=0)) ** 2)
    return float(max(mean_term + np.sum(a1**2) + np.sum(a2**2) - 2 * trace_sqrt, 0.0))


# ---------------------------------------------------------------------------------- kernel distance
def polynomial_mmd2(x, y) -> float:
    r"""Unbiased squared MMD of ``x`` ``(m, D)`` and ``y`` ``(n, D)``, kernel :math:`(x \cdot y / D + 1)^3`.

    .. math:: \frac{\sum_{i \ne j} k(x_i, x_j)}{m(m-1)} + \frac{\sum_{i \ne j} k(y_i, y_j)}{n(n-1)}
              - \frac{2 \sum_{i, j} k(x_i, y_j)}{m n}

    Leaving out the diagonal ``k(x_i, x_i)`` makes it unbiased, so it can come out slightly negative.
    """
    x, y = _check_pair(x, y)
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(features1, features2, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: :func:`polynomial_mmd2` averaged over random subsets, as ``(mean, std)`` across the subsets.

    Each of the ``subsets`` rounds draws ``subset_size`` features from each set without replacement
    (Bińkowski et al. 2018 use 100 subsets of 1000 from 50,000 images). The std is the spread of the
    estimates between subsets: how much the number moves with other images, the uncertainty papers
    rarely report. It only means that while subsets differ, so ``subset_size`` is capped at half the
    smaller set: a subset that is a whole set every time would report a spread of 0. KID is unbiased,
    so smaller subsets widen the spread without moving the expected mean. It is the spread of one
    subset-sized estimate, so with a few dozen images it is a rough and rather cautious guide;
    hundreds of images make it tight. A fixed ``seed`` gives the same subsets every time.

    Args:
        features1, features2: ``(N1, D)`` and ``(N2, D)`` features, ``N1, N2 >= 4``.
        subsets: number of random subsets.
        subset_size: features drawn from each set per subset (at most half the smaller set).
        seed: seed of the subset draws.
    """
    features1, features2 = _check_pair(features1, features2)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    size = min(subset_size, len(features1) // 2, len(features2) // 2)
    if size < 2:
        raise ValueError(
            f"KID needs at least 4 images per set (subsets of half a set, 2 or more), got "
            f"{len(features1)} and {len(features2)}"
        )
    rng = np.random.default_rng(seed)
    estimates = [
        polynomial_mmd2(features1[rng.choice(len(features1), size, replace=False)],
                        features2[rng.choice(len(features2), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(estimates)), float(np.std(estimates))


def paired_kid_gain(before, after, reference, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """How much closer to ``reference`` a method moved a set: ``KID(before, ref) - KID(after, ref)``.

    Returns ``(mean, std)`` over random subsets. ``before[i]`` and ``after[i]`` must come from the
    same image (a photo and its cartoonized version). Each round draws one subset of those indices and
    one subset of the reference, and computes both KIDs on them, so the noise the two KIDs share
    (which photos, which reference images) cancels in the difference. The std is then the uncertainty
    of the comparison itself, much smaller than either KID's own std. Positive: ``after`` is closer.

    Args:
        before, after: ``(N, D)`` features of the same ``N`` images before and after a method.
        reference: ``(M, D)`` features of the target set.
        subsets, subset_size, seed: as in :func:`kernel_inception_distance`.
    """
    before, reference = _check_pair(before, reference)
    after, _ = _check_pair(after, reference)
    if before.shape != after.shape:
        raise ValueError(f"before {before.shape} and after {after.shape} must hold the same images, row by row")
    size = min(subset_size, len(before) // 2, len(reference) // 2)
    if subsets < 1 or size < 2:
        raise ValueError(f"need subsets >= 1 and at least 4 images per set, got {subsets}, {len(before)}, {len(reference)}")
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(subsets):
        rows = rng.choice(len(before), size, replace=False)
        target = reference[rng.choice(len(reference), size, replace=False)]
        gains.append(polynomial_mmd2(before[rows], target) - polynomial_mmd2(after[rows], target))
    return float(np.mean(gains)), float(np.std(gains))


def paired_fd_gain(before, after, reference, rounds: int = 100, seed: int = 0) -> tuple[float, float]:
    """``FD(before, ref) - FD(after, ref)`` on the full sets, and its bootstrap std.

    The std comes from ``rounds`` bootstrap resamples that draw the same image indices for ``before``
    and ``after`` (rows must correspond, as in :func:`paired_kid_gain`) and a resample of the
    reference: the uncertainty of the comparison, with the noise the two distances share cancelled.
    Positive: ``after`` is closer to the reference.
    """
    before, reference = _check_pair(before, reference)
    after, _ = _check_pair(after, reference)
    if before.shape != after.shape:
        raise ValueError(f"before {before.shape} and after {after.shape} must hold the same images, row by row")
    gain = frechet_distance_from_features(before, reference) - frechet_distance_from_features(after, reference)
    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(rounds):
        rows = rng.choice(len(before), len(before))
        target = reference[rng.choice(len(reference), len(reference))]
        resampled.append(frechet_distance_from_features(before[rows], target)
                         - frechet_distance_from_features(after[rows], target))
    return float(gain), float(np.std(resampled))


def _float64(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values; check the features it came from")
    return array


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix."""
    eigenvalues, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(_drop_rounding(eigenvalues))) @ vectors.T


def _drop_rounding(eigenvalues: np.ndarray) -> np.ndarray:
    """PSD eigenvalues with rounding noise set to 0: those below ``D * eps * largest`` (NumPy's rank cut-off).

    A zero eigenvalue comes out as about +-1e-16 times the largest; its square root, 1e-8, would add
    that much error per zero eigenvalue, and a negative one has no real root.
    """
    cutoff = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(initial=0.0), 0.0)
    return np.where(eigenvalues > cutoff, eigenvalues, 0.0)


def _check_features(features, name: str) -> np.ndarray:
    features = _float64(features, name)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name} must be an (N, D) array with N >= 2 images, got shape {features.shape}")
    return features


def _check_pair(features1, features2) -> tuple[np.ndarray, np.ndarray]:
    features1, features2 = _check_features(features1, "features1"), _check_features(features2, "features2")
    if features1.shape[1] != features2.shape[1]:
        raise ValueError(
            f"the two feature sets have different dimensions ({features1.shape[1]} and "
            f"{features2.shape[1]}); extract both with the same extractor"
        )
    return features1, features2


# ------------------------------------------------------------------------------- feature extractors
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
                cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
                raise FileNotFoundError(
                    f"torchvision's Inception-v3 weights are not cached ({cached}) and cannot be downloaded "
                    f"here ({err}). Copy {url.rsplit('/', 1)[-1]} from a machine that has it (or from {url}) "
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

    Every image is resized to short side ``size`` and centre-cropped to ``size x size`` (as
    :class:`~animescene.data.ImageFolderDataset` does), so all sets are compared at one scale.

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

    from .data import ImageFolderDataset, resize_short_side

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
        image = resize_short_side(image, size).clamp(-1, 1)
        top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
        squares.append(image[..., top : top + size, left : left + size])
        if len(squares) == batch_size or index == indices[-1]:
            features.append(_features_of_batch(torch.cat(squares), extractor))
            squares = []
    return np.concatenate(features)


def _device_of(extractor) -> torch.device:
    return next(iter(extractor.parameters()), torch.empty(0)).device


def _features_of_batch(images: torch.Tensor, extractor) -> np.ndarray:
    return extractor(images.to(_device_of(extractor))).cpu().double().numpy()
