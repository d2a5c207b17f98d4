"""LiRA and RMIA scoring against independent ground truth: TF-Privacy's published vectors and a
brute-force N × Z reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from mia_audit.attacks.lira import gaussian_fit, lira_offline_scores, lira_online_scores, normal_logpdf
from mia_audit.attacks.rmia import calibrate_a, mean_out_probability, rmia_scores
from mia_audit.shadows.keep import keep_mask

# tensorflow/privacy: tensorflow_privacy/privacy/privacy_tests/membership_inference_attack/advanced_mia_test.py,
# TestLiRA.test_with_one_augmentation: stat_target [[1],[0],[0],[0]]; stat_in [[-1],[1]], [[0],[2]], [[0],[20]],
# empty; stat_out = -stat_in. In the records × shadows form: two shadows per record, the 4th record has none.
TARGET = np.array([1.0, 0.0, 0.0, 0.0])
STATS_IN = np.array([[-1.0, 1.0], [0.0, 2.0], [0.0, 20.0], [0.0, 0.0]])
HAS_IN = np.array([[True, True], [True, True], [True, True], [False, False]])
IN_PER_EXAMPLE = np.array([1.41893853, 1.41893853, 3.72152363, 2.72537178])
IN_FIXED_VARIANCE = np.array([2.69682468, 2.69682468, 4.15270703, 2.87983121])


@pytest.mark.parametrize(
    ("variance", "expected"), [("per_example", IN_PER_EXAMPLE), ("global", IN_FIXED_VARIANCE)]
)
def test_lira_gaussian_reproduces_tf_privacy_vectors(variance, expected):
    """TF-Privacy option "in": −log N(target; μ_in, σ_in) with median μ, NaN rows filled by the column mean."""
    mu, sd = gaussian_fit(stats=STATS_IN, mask=HAS_IN, variance=variance)
    np.testing.assert_allclose(-normal_logpdf(x=TARGET, mean=mu, std=sd), expected, atol=1e-7)
    # option "out" (stat_out = −stat_in): log N(target; μ_out, σ_out) = −expected
    mu, sd = gaussian_fit(stats=-STATS_IN, mask=HAS_IN, variance=variance)
    np.testing.assert_allclose(normal_logpdf(x=TARGET, mean=mu, std=sd), -expected, atol=1e-7)


@pytest.mark.parametrize("variance", ["per_example", "global"])
def test_lira_online_matches_tf_privacy_option_both(variance):
    """TF-Privacy option "both" with stat_out = −stat_in scores exactly 0 (its sign is flipped, lower = member;
    mia-audit's online score is log N_in − log N_out, higher = member). The matrix form needs every shadow to be
    IN or OUT, so the record without shadows is left out."""
    stats = np.hstack([STATS_IN[:3], -STATS_IN[:3]])
    keep = np.array([[True, True, False, False]] * 3)
    online = lira_online_scores(target=TARGET[:3], stats=stats, keep=keep, variance=variance)
    np.testing.assert_allclose(online, 0.0, atol=1e-12)
    np.testing.assert_allclose(gaussian_fit(stats=stats, mask=~keep, variance=variance)[0], [0.0, -1.0, -10.0])


def test_lira_against_scipy_on_random_matrices():
    """Online = scipy's log-density ratio with per-record medians and pooled σ; offline = the z-score."""
    rng = np.random.default_rng(3)
    stats = rng.normal(size=(30, 8)) * 2 + rng.normal(size=(30, 1))
    keep = keep_mask(n_records=30, n_shadows=8, rng=np.random.default_rng(1))
    target = rng.normal(size=30)
    mu_in = np.array([np.median(stats[i, keep[i]]) for i in range(30)])
    mu_out = np.array([np.median(stats[i, ~keep[i]]) for i in range(30)])
    sd_in = np.std(np.concatenate([stats[i, keep[i]] - mu_in[i] for i in range(30)]))
    sd_out = np.std(np.concatenate([stats[i, ~keep[i]] - mu_out[i] for i in range(30)]))
    expected = norm.logpdf(target, mu_in, sd_in) - norm.logpdf(target, mu_out, sd_out)
    np.testing.assert_allclose(lira_online_scores(target=target, stats=stats, keep=keep, variance="global"), expected)
    np.testing.assert_allclose(
        lira_offline_scores(target=target, stats=stats, keep=keep, variance="global"), (target - mu_out) / sd_out
    )
    per_sd_out = np.array([np.std(stats[i, ~keep[i]]) for i in range(30)])
    np.testing.assert_allclose(
        lira_offline_scores(target=target, stats=stats, keep=keep, variance="per_example"), (target - mu_out) / per_sd_out
    )


def _rmia_brute_force(*, px, pox, pz, poz, a, gamma):
    """The paper's definition, literally: an N × Z matrix of pairwise likelihood ratios."""
    ratio_x = px / (0.5 * ((1 + a) * pox + (1 - a)))
    ratio_z = pz / (0.5 * ((1 + a) * poz + (1 - a)))
    pairwise = ratio_x[:, None] / ratio_z[None, :]
    return (pairwise >= gamma).mean(axis=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("a", "gamma"), [(0.0, 1.0), (0.3, 1.0), (0.7, 2.0), (1.0, 0.5)])
def test_rmia_sort_searchsorted_equals_brute_force(seed, a, gamma):
    rng = np.random.default_rng(seed)
    n, z = 57, 41
    px, pox = rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, n)
    pz, poz = rng.uniform(0.01, 1, z), rng.uniform(0.01, 1, z)
    fast = rmia_scores(p_target_x=px, p_out_x=pox, p_target_z=pz, p_out_z=poz, a=a, gamma=gamma)
    np.testing.assert_array_equal(fast, _rmia_brute_force(px=px, pox=pox, pz=pz, poz=poz, a=a, gamma=gamma))


def test_rmia_counts_ties_as_dominated():
    """LR(x, z) ≥ γ includes equality: a record compared with itself counts."""
    p = np.array([0.2, 0.5, 0.9])
    scores = rmia_scores(p_target_x=p, p_out_x=p, p_target_z=p, p_out_z=p, a=0.0, gamma=1.0)
    np.testing.assert_array_equal(scores, _rmia_brute_force(px=p, pox=p, pz=p, poz=p, a=0.0, gamma=1.0))


def test_mean_out_probability_and_a_calibration_use_shadows_only():
    probs = np.array([[0.9, 0.1, 0.8, 0.2], [0.5, 0.5, 0.5, 0.5]])
    keep = np.array([[True, False, True, False], [False, True, True, False]])
    np.testing.assert_allclose(mean_out_probability(probabilities=probs, keep=keep), [0.15, 0.5])
    rng = np.random.default_rng(0)
    keep = keep_mask(n_records=200, n_shadows=8, rng=np.random.default_rng(0))
    # shadows give high true-label probability to their own training records: a must be chosen in the grid
    true_probs = np.where(keep, 0.95, 0.6) + rng.normal(0, 0.02, keep.shape)
    a = calibrate_a(true_probs=np.clip(true_probs, 0.01, 1), keep=keep, z_index=np.arange(200))
    assert a in {round(0.1 * i, 1) for i in range(11)}


def test_keep_mask_every_record_in_for_half_the_shadows():
    for n, k in [(11, 4), (10, 16), (1797, 16), (7, 5)]:
        keep = keep_mask(n_records=n, n_shadows=k, rng=np.random.default_rng(3))
        assert keep.shape == (n, k) and keep.dtype == bool
        pairs = keep[:, : 2 * (k // 2)]
        assert np.all(pairs.sum(axis=1) == k // 2)  # exactly half of the paired shadows
        assert set(keep.sum(axis=0)) <= {n // 2, n - n // 2}  # every shadow trains on half the pool
        np.testing.assert_array_equal(keep, keep_mask(n_records=n, n_shadows=k, rng=np.random.default_rng(3)))
    assert not np.array_equal(keep_mask(n_records=50, n_shadows=4, rng=np.random.default_rng(0)), keep_mask(n_records=50, n_shadows=4, rng=np.random.default_rng(1)))
