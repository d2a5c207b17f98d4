"""Per-slice statistics against independent references: sklearn, scipy, brute force, the bootstrap, coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mia_audit.stats import bootstrap_ci, clopper_pearson, roc_curve, tpr_at_fpr
from mia_audit.stats.level_counts import (
    LevelCounts,
    advantage_from_counts,
    auc_from_counts,
    benjamini_hochberg,
    delong_auc_ci,
    delong_auc_variance,
    mann_whitney_greater,
    slice_statistics,
    tpr_at_fpr_band,
    tpr_at_fpr_bands,
)


def _scores(seed: int, n1: int, n0: int, shift: float, decimals: int | None = 1):
    rng = np.random.default_rng(seed)
    members, nonmembers = rng.normal(shift, 1.0, n1), rng.normal(0.0, 1.0, n0)
    if decimals is not None:  # rounding makes ties, which every formula must count as 1/2
        members, nonmembers = np.round(members, decimals), np.round(nonmembers, decimals)
    return members, nonmembers


def _counts(members, nonmembers) -> LevelCounts:
    return LevelCounts.from_scores(member_scores=members, nonmember_scores=nonmembers)


@pytest.mark.parametrize("seed,shift,decimals", [(0, 0.5, 1), (1, 0.0, 0), (2, 2.0, None), (3, -0.3, 1)])
def test_auc_and_advantage_match_sklearn_and_the_roc(seed, shift, decimals):
    members, nonmembers = _scores(seed, 137, 211, shift, decimals)
    counts = _counts(members, nonmembers)
    truth = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    assert auc_from_counts(counts) == pytest.approx(roc_auc_score(truth, np.r_[members, nonmembers]), abs=1e-12)
    roc = roc_curve(member_scores=members, nonmember_scores=nonmembers)
    assert advantage_from_counts(counts) == pytest.approx(roc.advantage(), abs=1e-12)


@pytest.mark.parametrize("seed,shift,decimals", [(0, 0.3, 1), (1, 0.0, 0), (2, 0.1, None), (3, -0.2, 1)])
def test_mann_whitney_p_value_matches_scipy(seed, shift, decimals):
    members, nonmembers = _scores(seed, 90, 140, shift, decimals)
    expected = stats.mannwhitneyu(members, nonmembers, alternative="greater", method="asymptotic").pvalue
    assert mann_whitney_greater(_counts(members, nonmembers)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mann_whitney_all_tied_gives_no_evidence():
    assert mann_whitney_greater(_counts(np.ones(30), np.ones(40))) == 1.0


def test_delong_variance_matches_a_brute_force_placement_computation():
    members, nonmembers = _scores(5, 40, 55, 0.6, 1)
    # Placement values by brute force over all member/non-member pairs (DeLong et al. 1988).
    psi = (members[:, None] > nonmembers[None, :]) + 0.5 * (members[:, None] == nonmembers[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = v10.var(ddof=1) / members.size + v01.var(ddof=1) / nonmembers.size
    assert delong_auc_variance(_counts(members, nonmembers)) == pytest.approx(expected, rel=1e-12)


def test_delong_interval_agrees_with_the_stratified_bootstrap():
    """On a moderate sample the analytic interval and the global bootstrap's differ by a few thousandths."""
    members, nonmembers = _scores(11, 400, 600, 0.5, None)
    boot = bootstrap_ci(member_scores=members, nonmember_scores=nonmembers, seed=3, n_bootstrap=4000)
    low, high = delong_auc_ci(_counts(members, nonmembers))
    assert low == pytest.approx(boot.auc[0], abs=0.006)
    assert high == pytest.approx(boot.auc[1], abs=0.006)
    assert (high - low) == pytest.approx(boot.auc[1] - boot.auc[0], rel=0.08)


def test_delong_interval_keeps_its_coverage():
    """400 binormal samples with known AUC = Φ(μ/√2): the 95% interval covers it 92–98% of the time."""
    rng = np.random.default_rng(21)
    mu = 0.8
    true_auc = stats.norm.cdf(mu / np.sqrt(2.0))
    hits = 0
    for _ in range(400):
        members, nonmembers = rng.normal(mu, 1.0, 60), rng.normal(0.0, 1.0, 80)
        low, high = delong_auc_ci(_counts(members, nonmembers))
        hits += low <= true_auc <= high
    assert 0.92 <= hits / 400 <= 0.98


def test_tpr_point_matches_the_global_convention():
    members, nonmembers = _scores(8, 300, 700, 1.0, 2)
    counts = _counts(members, nonmembers)
    roc = roc_curve(member_scores=members, nonmember_scores=nonmembers)
    for alpha in (0.001, 0.01, 0.1, 0.3):
        band = tpr_at_fpr_band(counts, alpha=alpha)
        point = tpr_at_fpr(roc=roc, alpha=alpha)
        assert band.tpr == point.tpr and band.achieved_fpr == point.achieved_fpr
        fp = round(point.achieved_fpr * nonmembers.size)
        assert band.achieved_fpr_ci == pytest.approx(clopper_pearson(successes=fp, trials=nonmembers.size), abs=1e-12)
        assert band.ci[0] <= band.tpr <= band.ci[1]


def test_tpr_band_covers_the_true_tpr_and_is_comparable_to_the_bootstrap():
    """Binormal scores: TPR at FPR α is 1 − Φ(Φ⁻¹(1 − α) − μ). The band is conservative (≥ 95%)."""
    rng = np.random.default_rng(4)
    mu, alpha = 1.0, 0.1
    true_tpr = stats.norm.sf(stats.norm.isf(alpha) - mu)
    hits = 0
    for _ in range(300):
        members, nonmembers = rng.normal(mu, 1.0, 200), rng.normal(0.0, 1.0, 300)
        low, high = tpr_at_fpr_band(_counts(members, nonmembers), alpha=alpha).ci
        hits += low <= true_tpr <= high
    assert hits / 300 >= 0.95
    members, nonmembers = rng.normal(mu, 1.0, 200), rng.normal(0.0, 1.0, 300)
    boot = bootstrap_ci(member_scores=members, nonmember_scores=nonmembers, seed=1, n_bootstrap=2000)
    band = tpr_at_fpr_band(_counts(members, nonmembers), alpha=alpha)
    boot_width = boot.tpr_at_fpr[alpha][1] - boot.tpr_at_fpr[alpha][0]
    assert boot_width <= band.ci[1] - band.ci[0] <= 2.5 * boot_width


def test_vectorised_clopper_pearson_equals_the_global_one():
    members, nonmembers = _scores(9, 57, 1500, 2.5, 2)
    counts = _counts(members, nonmembers)
    bands = tpr_at_fpr_bands(counts, alphas=(0.001, 0.01, 0.1))
    for alpha, band in bands.items():
        assert band.flag == {0.001: "low_evidence", 0.01: "ok", 0.1: "ok"}[alpha]
        fp = round(band.achieved_fpr * 1500)
        assert band.achieved_fpr_ci == pytest.approx(clopper_pearson(successes=fp, trials=1500), abs=1e-12)


def test_slice_statistics_bundle_is_consistent():
    members, nonmembers = _scores(13, 80, 90, 0.4, 1)
    counts = _counts(members, nonmembers)
    result = slice_statistics(counts)
    assert result.n_members == 80 and result.n_nonmembers == 90
    assert result.auc_ci[0] <= result.auc <= result.auc_ci[1]
    assert result.auc_se == pytest.approx(np.sqrt(delong_auc_variance(counts)))
    assert set(result.tpr_at_fpr) == {0.001, 0.01, 0.1}


def test_benjamini_hochberg_matches_scipy_and_a_hand_example():
    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(size=40) ** 3, [0.0, 1.0, 0.5, 0.5]]
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"), abs=1e-15)
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 → 0.04, 0.04, 0.04, 0.5
    assert benjamini_hochberg([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, 1.2])
