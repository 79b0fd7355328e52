"""Per-photo style and content distances of generators, compared in pairs with a bootstrap (lessons 06 and 07).

FD and KID (:mod:`animescene.metrics`) compare two *sets*; to say that one generator is closer to a style
than another on the same photos, the course compares them photo by photo:

- **style distance** of a cartoon: ``1 - max_j cos(f(cartoon), f(frame_j))`` over held-out frames of the
  target style, with ``f`` the pooled HED-VGG16 vector of :class:`~animescene.features.HEDVGGFeatures`
  (which channels fire, not where). The nearest frame, not the mean: a style is many kinds of shots, and
  a cartoon of a forest should look like the film's forests, not like its average frame.
- **content distance** to the photo: ``1 - cos`` between the channel vectors of the VGG ``relu4_3`` maps
  of cartoon and photo at each position, averaged over positions (LPIPS-like). It keeps *where*, so it
  grows when the cartoon stops showing what the photo shows.

:func:`paired_bootstrap` resamples the photos to put a confidence interval on the mean per-photo
difference between two generators; "closer in style" means its lower end is above zero.
"""

from __future__ import annotations

import numpy as np
import torch

from .features import HEDVGGFeatures, features_of_tensors
from .filters import post_process

__all__ = ["compare_generators", "content_distances", "paired_bootstrap", "style_distances"]


def style_distances(cartoons: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``(N,)`` distance of each cartoon's feature vector to its nearest frame: ``1 - max cos``.

    Args:
        cartoons: ``(N, D)`` feature vectors of the cartoons.
        frames: ``(M, D)`` feature vectors of the style's (held-out) frames.
    """
    a = np.asarray(cartoons, np.float64)
    b = np.asarray(frames, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - (a @ b.T).max(axis=1)


@torch.no_grad()
def content_distances(cartoons: torch.Tensor, photos: torch.Tensor, extractor: HEDVGGFeatures,
                      batch_size: int = 8) -> np.ndarray:
    """``(N,)`` mean over positions of ``1 - cos`` between the ``relu4_3`` channel vectors of each cartoon
    and its photo; both ``(N, 3, H, W)`` in ``[-1, 1]``."""
    out = []
    for start in range(0, len(photos), batch_size):
        pair = torch.cat([cartoons[start:start + batch_size], photos[start:start + batch_size]])
        maps = extractor.vgg(pair.to(next(extractor.parameters()).device))[0].double()
        maps = maps / maps.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cartoon, photo = maps.chunk(2)
        out.append((1.0 - (cartoon * photo).sum(dim=1)).mean(dim=(1, 2)).cpu().numpy())
    return np.concatenate(out)


def paired_bootstrap(before: np.ndarray, after: np.ndarray, *, rounds: int = 10_000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``before - after`` over photos and its percentile bootstrap interval ``(mean, low, high)``.

    Both arrays hold one value per photo, in the same order; the photos are resampled with replacement
    ``rounds`` times. A positive mean with ``low > 0`` says ``after`` is smaller on photos like these.
    """
    diff = np.asarray(before, np.float64) - np.asarray(after, np.float64)
    if diff.ndim != 1 or len(diff) < 2:
        raise ValueError(f"paired_bootstrap needs two equal 1-D arrays of at least 2 values, got {diff.shape}")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


@torch.no_grad()
def cartoonize_batch(generator: torch.nn.Module, photos: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """``post_process(x, G(x))`` of ``(N, 3, H, W)`` photos, a few at a time, on the generator's device."""
    device = next(generator.parameters()).device
    out = [post_process(x, generator(x)).cpu() for x in photos.to(device).split(batch_size)]
    return torch.cat(out)


def compare_generators(generators: dict, photos: torch.Tensor, frames: torch.Tensor,
                       extractor: HEDVGGFeatures) -> dict[str, dict]:
    """Style and content distances of each generator's cartoons of the same photos.

    Args:
        generators: ``{name: generator}``; each cartoonizes with :func:`cartoonize_batch`.
        photos: ``(N, 3, H, W)`` photos in ``[-1, 1]`` none of the generators trained on.
        frames: ``(M, 3, H', W')`` frames of the target style none of them trained on.
        extractor: the features of both distances (HED-VGG16 for real numbers).

    Returns:
        ``{name: {"style": (N,), "content": (N,), "cartoons": (N, 3, H, W)}}``, plus ``"photo"`` (the
        photos themselves: the style distance before any cartoonization, content distance 0).
    """
    reference = features_of_tensors(frames, extractor)
    rows = {"photo": {"style": style_distances(features_of_tensors(photos, extractor), reference),
                      "content": np.zeros(len(photos)), "cartoons": photos}}
    for name, generator in generators.items():
        cartoons = cartoonize_batch(generator, photos)
        rows[name] = {"style": style_distances(features_of_tensors(cartoons, extractor), reference),
                      "content": content_distances(cartoons, photos, extractor), "cartoons": cartoons}
    return rows
