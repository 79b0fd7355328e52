"""Fréchet and kernel distances against closed forms and float64 references."""

import numpy as np
import pytest
import torch

from animescene.metrics import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    kernel_inception_distance,
    polynomial_mmd2,
)


def _reference_frechet(mu1, sigma1, mu2, sigma2):
    """Tr (S1 S2)^(1/2) from the eigenvalues of the product itself (real for PSD S1, S2): another route."""
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt


def _random_covariance(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / dim


def test_frechet_of_diagonal_gaussians_is_the_closed_form():
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 0.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_of_commuting_covariances_is_the_closed_form():
    """Common eigenvectors: the trace term is sum (sqrt(a_i) - sqrt(b_i))^2, also with b singular."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 3.0, 6), np.array([2.0, 0.0, 0.5, 0.0, 1.0, 3.0])
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("rank1,rank2", [(None, None), (3, None), (3, 5), (1, 2)])
def test_frechet_matches_an_eigenvalue_reference_also_when_singular(rank1, rank2):
    rng = np.random.default_rng(1)
    sigma1, sigma2 = _random_covariance(rng, 12, rank1), _random_covariance(rng, 12, rank2)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    got = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert isinstance(got, float) and np.isfinite(got)
    assert got == pytest.approx(_reference_frechet(mu1, sigma1, mu2, sigma2), rel=1e-8, abs=1e-10)


def test_frechet_takes_tensors_and_is_zero_for_equal_gaussians():
    rng = np.random.default_rng(2)
    sigma = _random_covariance(rng, 8, rank=2)  # singular
    mu = rng.normal(size=8)
    assert frechet_distance(torch.from_numpy(mu).float(), torch.from_numpy(sigma).float(), mu, sigma) < 1e-5
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-10)


def test_frechet_from_large_samples_approaches_the_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    a, b = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.5, 2.0, 2.0, 1.0])
    f1 = rng.normal(size=(200_000, 4)) * np.sqrt(a) + mu1
    f2 = rng.normal(size=(200_000, 4)) * np.sqrt(b) + mu2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(expected, rel=0.02)


def test_frechet_is_stable_on_rank_deficient_features():
    """N < D makes both covariances singular: still no NaN, nothing complex, and a set to itself is 0."""
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(20, 128)), rng.normal(size=(30, 128)) + 0.3
    mu1, sigma1 = feature_statistics(f1)
    assert np.linalg.matrix_rank(sigma1) == 19
    distance = frechet_distance_from_features(f1, f2)  # the singular values of the 20 x 30 cross term
    assert isinstance(distance, float) and np.isfinite(distance) and distance > 0
    assert distance == pytest.approx(_reference_frechet(mu1, sigma1, *feature_statistics(f2)), rel=1e-6)
    # the route through the 128 x 128 covariances gives the same number
    assert distance == pytest.approx(frechet_distance(mu1, sigma1, *feature_statistics(f2)), rel=1e-9)
    assert frechet_distance_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_refuses_mismatched_and_non_finite_input():
    with pytest.raises(ValueError, match="sigma2 must have shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))
    with pytest.raises(ValueError, match="same extractor"):
        frechet_distance_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_polynomial_mmd_matches_a_loop_reference():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.5
    def k(u, v):
        return (u @ v / 3 + 1) ** 3

    within_x = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    within_y = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    between = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert polynomial_mmd2(x, y) == pytest.approx(within_x + within_y - 2 * between, rel=1e-12)


def test_kid_of_one_distribution_is_zero_within_its_std():
    rng = np.random.default_rng(6)
    f1, f2 = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    mean, std = kernel_inception_distance(f1, f2, subsets=50, subset_size=100, seed=0)
    assert std > 0 and abs(mean) < 2 * std


def test_kid_of_shifted_distributions_is_many_stds_above_zero():
    rng = np.random.default_rng(7)
    f1, f2 = rng.normal(size=(400, 16)), rng.normal(size=(400, 16)) + 0.5
    mean, std = kernel_inception_distance(f1, f2, subsets=50, subset_size=100, seed=0)
    assert mean > 5 * std > 0


def test_kid_is_repeatable_with_a_seed():
    rng = np.random.default_rng(8)
    f1, f2 = rng.normal(size=(30, 8)), rng.normal(size=(12, 8))
    def kid(seed):
        return kernel_inception_distance(f1, f2, subsets=5, subset_size=1000, seed=seed)

    assert kid(3) == kid(3) and kid(3) != kid(4)


def test_kid_subsets_are_at_most_half_a_set_so_their_spread_means_something():
    """Subsets as large as a whole set would be that set every time: the same estimate, a std of 0."""
    rng = np.random.default_rng(9)
    f1, f2 = rng.normal(size=(10, 8)), rng.normal(size=(10, 8)) + 0.3
    assert kernel_inception_distance(f1, f2, subsets=20, subset_size=10, seed=0)[1] > 0
    rng = np.random.default_rng(0)
    first = polynomial_mmd2(f1[rng.choice(10, 5, replace=False)], f2[rng.choice(10, 5, replace=False)])
    assert kernel_inception_distance(f1, f2, subsets=1, subset_size=10, seed=0)[0] == pytest.approx(first)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(f1, f2, subsets=5, subset_size=1)
    with pytest.raises(ValueError, match="at least 4 images"):
        kernel_inception_distance(f1[:3], f2, subsets=5, subset_size=10)


def test_paired_gains_of_an_unchanged_set_are_exactly_zero():
    from animescene.metrics import paired_fd_gain, paired_kid_gain

    rng = np.random.default_rng(5)
    before, reference = rng.normal(size=(40, 6)), rng.normal(1.0, 1.0, size=(60, 6))
    assert paired_fd_gain(before, before.copy(), reference, rounds=20) == (0.0, 0.0)
    assert paired_kid_gain(before, before.copy(), reference, subsets=20) == (0.0, 0.0)


def test_paired_gains_detect_a_move_towards_the_reference_with_a_tight_std():
    from animescene.metrics import frechet_distance_from_features, kernel_inception_distance, paired_fd_gain, paired_kid_gain

    rng = np.random.default_rng(6)
    reference = rng.normal(2.0, 1.0, size=(80, 8))
    before = rng.normal(0.0, 1.0, size=(40, 8))
    after = before + 1.0  # every image moved half way to the reference
    gain, std = paired_fd_gain(before, after, reference, rounds=50)
    expected = frechet_distance_from_features(before, reference) - frechet_distance_from_features(after, reference)
    assert gain == pytest.approx(expected) and gain > 3 * std
    kid_gain, kid_std = paired_kid_gain(before, after, reference, subsets=50)
    assert kid_gain > 3 * kid_std
    # pairing cancels the shared noise: the comparison is tighter than either KID alone
    assert kid_std < kernel_inception_distance(after, reference, 50)[1]


def test_paired_gains_refuse_sets_that_do_not_pair():
    from animescene.metrics import paired_fd_gain

    with pytest.raises(ValueError, match="row by row"):
        paired_fd_gain(np.zeros((10, 3)), np.zeros((9, 3)), np.ones((10, 3)))
