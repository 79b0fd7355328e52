"""Lesson 08: the Fréchet distance."""

from __future__ import annotations

from .common import _report


def check_frechet_distance(fn) -> None:
    """Lesson 08: ``fn(mu1, sigma1, mu2, sigma2)`` is the Fréchet distance of two Gaussians (a float).

    Checked on a hand-computed case (diagonal covariances, where the matrix square root is the square
    root of each entry) and on random full covariances against :func:`animescene.metrics.frechet_distance`.
    """
    import numpy as np

    from ..metrics import frechet_distance

    # N(0, I) vs N(1, 4I) in 2-D: |mu1 - mu2|^2 = 2, and each axis adds 1 + 4 - 2 * sqrt(4) = 1
    cases = [(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2), 4.0)]
    rng = np.random.default_rng(8)
    for dim in (3, 16):
        a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
        mu1, mu2, sigma1, sigma2 = rng.normal(size=dim), rng.normal(size=dim), a @ a.T, b @ b.T
        cases.append((mu1, sigma1, mu2, sigma2, frechet_distance(mu1, sigma1, mu2, sigma2)))
    for mu1, sigma1, mu2, sigma2, expected in cases:
        got = fn(mu1, sigma1, mu2, sigma2)
        if np.ndim(got) != 0 or np.iscomplexobj(got):
            raise AssertionError(f"Fréchet distance: return one real number, got {got!r}")
        if abs(float(got) - expected) > 1e-6 * max(1.0, expected):
            _report(False, "Fréchet distance", f"for a {len(mu1)}-d pair expected {expected:.6g}, got {float(got):.6g}")
    _report(True, "Fréchet distance")
