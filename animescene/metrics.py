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

The features come from :mod:`animescene.features` (``(N, D)`` arrays, one row per image); this
module only does the statistics on them, in float64.
"""

from __future__ import annotations

import numpy as np
import torch


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
