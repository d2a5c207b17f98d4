"""Tests for mia_audit.stats (ROC, AUC, TPR@FPR, intervals, bootstrap, cross-fitting) against independent ground truth.

Ground truth comes from published test vectors (REFERENCES.md), scikit-learn and scipy as independent
implementations, closed-form results, and brute-force re-computation written out here. No test compares
the module with its own earlier output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mia_audit import stats as M
from mia_audit.stats.bootstrap import _weighted_statistics

# --------------------------------------------------------------------------------------------------
# Golden vectors (REFERENCES.md)
# --------------------------------------------------------------------------------------------------


def test_tf_privacy_golden_vector_auc_and_advantage():
    """tensorflow/privacy membership_inference_attack_test.py: threshold attack on -loss.

    Member loss [0.1,0.2,1.3,0.4,0.5,0.6], non-member loss [1.1,1.2,1.3,0.4,1.5,1.6]
    -> AUC 0.833333, advantage 0.666667.
    """
    member_loss = np.array([0.1, 0.2, 1.3, 0.4, 0.5, 0.6])
    nonmember_loss = np.array([1.1, 1.2, 1.3, 0.4, 1.5, 1.6])
    roc = M.roc_curve(member_scores=-member_loss, nonmember_scores=-nonmember_loss)
    assert roc.auc() == pytest.approx(0.833333, abs=1e-6)
    assert roc.advantage() == pytest.approx(0.666667, abs=1e-6)
    auc = M.auc_score(member_scores=-member_loss, nonmember_scores=-nonmember_loss)
    assert auc == pytest.approx(0.833333, abs=1e-6)


def test_tf_privacy_random_state_27_roc_points():
    """tensorflow/privacy membership_inference_attack_test.py, RandomState(27) case.

    loss_train = rand(100), loss_test = rand(50) + 0.1 from one RandomState(27): every ROC point
    satisfies tpr = mean(loss_train <= thr), fpr = mean(loss_test <= thr) with thr = -threshold;
    AUC ~ 0.579, advantage ~ 0.190.
    """
    rs = np.random.RandomState(27)
    loss_train = rs.rand(100)
    loss_test = rs.rand(50) + 0.1
    roc = M.roc_curve(member_scores=-loss_train, nonmember_scores=-loss_test)
    for fpr, tpr, threshold in zip(roc.fpr, roc.tpr, roc.thresholds):
        thr = -threshold
        assert tpr == pytest.approx(np.mean(loss_train <= thr), abs=1e-12)
        assert fpr == pytest.approx(np.mean(loss_test <= thr), abs=1e-12)
    assert roc.auc() == pytest.approx(0.579, abs=1e-3)
    assert roc.advantage() == pytest.approx(0.190, abs=1e-3)


def test_tf_privacy_roc_curve_diagonal():
    """tensorflow/privacy data_structures_test.py: RocCurve tpr = fpr = [0, .5, 1] -> AUC 0.5, advantage 0."""
    roc = M.RocCurve(
        fpr=np.array([0.0, 0.5, 1.0]),
        tpr=np.array([0.0, 0.5, 1.0]),
        thresholds=np.array([np.inf, 1.0, 0.0]),
        n_members=2,
        n_nonmembers=2,
    )
    assert roc.auc() == pytest.approx(0.5)
    assert roc.advantage() == pytest.approx(0.0)


def test_art_worst_case_tpr_at_fpr():
    """Trusted-AI/adversarial-robustness-toolbox tests/metrics/privacy/test_worst_case_mia_score.py.

    y [1,0,1,1,1,0], score [.35,.33,.32,.6,.6,.2]: TPR@FPR<=0 -> (fpr 0, tpr 0.75, thr 0.35);
    TPR@FPR<=0.5 -> (0.5, 1.0, 0.32).
    """
    y = np.array([1, 0, 1, 1, 1, 0])
    score = np.array([0.35, 0.33, 0.32, 0.6, 0.6, 0.2])
    roc = M.roc_curve(member_scores=score[y == 1], nonmember_scores=score[y == 0])
    at0 = M.tpr_at_fpr(roc=roc, alpha=0.0)
    assert (at0.achieved_fpr, at0.tpr, at0.threshold) == pytest.approx((0.0, 0.75, 0.35))
    at_half = M.tpr_at_fpr(roc=roc, alpha=0.5)
    assert (at_half.achieved_fpr, at_half.tpr, at_half.threshold) == pytest.approx((0.5, 1.0, 0.32))


# --------------------------------------------------------------------------------------------------
# scikit-learn as an independent reference
# --------------------------------------------------------------------------------------------------


def _tied_scores(rng, n1, n0, levels=12):
    members = rng.integers(0, levels, size=n1).astype(float) + 0.5
    nonmembers = rng.integers(0, levels, size=n0).astype(float)
    return members / 2.0, nonmembers / 2.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    """sklearn.metrics.roc_auc_score (Mann-Whitney with ties 1/2) on data with many ties."""
    rng = np.random.default_rng(seed)
    members, nonmembers = _tied_scores(rng, 333, 271)
    y = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    expected = skm.roc_auc_score(y, np.r_[members, nonmembers])
    auc = M.auc_score(member_scores=members, nonmember_scores=nonmembers)
    assert auc == pytest.approx(expected, abs=1e-12)
    roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
    assert roc.auc() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_roc_curve_matches_sklearn_all_points(seed):
    """sklearn.metrics.roc_curve(drop_intermediate=False): same points and thresholds (first is +inf)."""
    rng = np.random.default_rng(seed)
    members, nonmembers = _tied_scores(rng, 150, 220)
    members = np.r_[members, rng.normal(size=40)]
    y = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    fpr, tpr, thresholds = skm.roc_curve(y, np.r_[members, nonmembers], drop_intermediate=False)
    roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
    np.testing.assert_allclose(roc.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(roc.tpr, tpr, atol=1e-12)
    assert roc.thresholds[0] == np.inf
    np.testing.assert_array_equal(roc.thresholds[1:], thresholds[1:])
    assert (roc.fpr[0], roc.tpr[0], roc.fpr[-1], roc.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Properties (DESIGN.md section 4.3)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [np.exp, lambda x: x**3, lambda x: 2.5 * x + 7.0],
    ids=["exp", "cube", "affine"],
)
def test_auc_invariant_under_strictly_monotone_transform(transform):
    """AUC is a rank statistic (Hanley & McNeil 1982): strictly increasing transforms leave it unchanged."""
    rng = np.random.default_rng(5)
    members, nonmembers = rng.normal(0.4, 1.0, 500), rng.normal(0.0, 1.0, 400)
    base = M.auc_score(member_scores=members, nonmember_scores=nonmembers)
    moved = M.auc_score(member_scores=transform(members), nonmember_scores=transform(nonmembers))
    assert moved == pytest.approx(base, abs=1e-12)


def test_swapping_members_and_nonmembers_gives_one_minus_auc():
    """Mann-Whitney: U(member>non) + U(non>member) = n1 n0 with ties split 1/2, so AUC' = 1 - AUC."""
    rng = np.random.default_rng(6)
    members, nonmembers = _tied_scores(rng, 200, 300)
    auc = M.auc_score(member_scores=members, nonmember_scores=nonmembers)
    swapped = M.auc_score(member_scores=nonmembers, nonmember_scores=members)
    assert swapped == pytest.approx(1.0 - auc, abs=1e-12)


def test_inverted_attack_has_zero_advantage_not_absolute_value():
    """DESIGN.md 4.3: advantage is signed (Yeom et al. 2018); an inverted attack is not an attack."""
    roc = M.roc_curve(member_scores=[0.0, 0.1, 0.2], nonmember_scores=[0.8, 0.9, 1.0])
    assert roc.auc() == 0.0
    assert roc.advantage() == 0.0


def test_tpr_at_fpr_monotone_and_achieved_fpr_bounded():
    """Definition TPR@a = max{TPR_k : FPR_k <= a} (Carlini et al. 2022): non-decreasing in a, FPR <= a.

    Brute force over the ROC points checks the value; awkward (n0, a) pairs probe float rounding.
    """
    rng = np.random.default_rng(7)
    for n0 in (30, 99, 1000, 1001, 333):
        members, nonmembers = rng.normal(0.5, 1, 250), rng.normal(0, 1, n0)
        roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
        alphas = sorted({0.0, 0.001, 0.01, 0.1, 1 / 3, 0.5, 1.0, *(k / n0 for k in range(0, n0 + 1, 7))})
        previous = -1.0
        for alpha in alphas:
            result = M.tpr_at_fpr(roc=roc, alpha=alpha)
            assert result.achieved_fpr <= alpha
            assert result.tpr >= previous
            previous = result.tpr
            eligible = [t for f, t in zip(roc.fpr, roc.tpr) if f <= alpha]
            assert result.tpr == max(eligible)
            # the threshold really gives this operating point
            thr = result.threshold
            if np.isfinite(thr):
                assert np.mean(members >= thr) == pytest.approx(result.tpr)
                assert np.mean(nonmembers >= thr) == pytest.approx(result.achieved_fpr)


def test_baseline_label_only_attack_advantage_and_auc():
    """DESIGN.md 4.3 / Yeom et al. 2018: the baseline attack (score = correct) has advantage
    g = a - b and AUC (1 + g)/2."""
    member_correct = np.r_[np.ones(180), np.zeros(20)]  # a = 0.9
    nonmember_correct = np.r_[np.ones(210), np.zeros(90)]  # b = 0.7
    roc = M.roc_curve(member_scores=member_correct, nonmember_scores=nonmember_correct)
    assert roc.advantage() == pytest.approx(0.2, abs=1e-12)
    assert roc.auc() == pytest.approx(0.6, abs=1e-12)
    assert M.auc_score(member_scores=member_correct, nonmember_scores=nonmember_correct) == pytest.approx(0.6)


def test_infinite_scores_allowed_nan_and_empty_rejected():
    """DESIGN.md 4.3 input contract: +/-inf sort like any score; NaN or empty input is an error."""
    roc = M.roc_curve(member_scores=[np.inf, 1.0], nonmember_scores=[-np.inf, 0.0])
    assert roc.auc() == 1.0 and roc.advantage() == 1.0
    assert M.auc_score(member_scores=[np.inf, 1.0], nonmember_scores=[-np.inf, 0.0]) == 1.0
    with pytest.raises(ValueError):
        M.roc_curve(member_scores=[], nonmember_scores=[1.0])
    with pytest.raises(ValueError):
        M.auc_score(member_scores=[1.0, np.nan], nonmember_scores=[1.0])
    with pytest.raises(ValueError):
        M.evaluate_scores(member_scores=[1.0, 2.0], nonmember_scores=[np.nan, 0.0], seed=0)
    with pytest.raises(ValueError):
        M.tpr_at_fpr(roc=roc, alpha=1.5)


# --------------------------------------------------------------------------------------------------
# Clopper-Pearson and evidence flags
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trials, successes, lower_pct, upper_pct",
    [
        (1000, 1, "0.003", "0.556"),
        (5000, 5, "0.032", "0.233"),
        (10000, 10, "0.048", "0.184"),
        (25000, 25, "0.065", "0.148"),
    ],
)
def test_clopper_pearson_references_table(trials, successes, lower_pct, upper_pct):
    """REFERENCES.md low-FPR resolution table (Clopper-Pearson 95%), to the printed precision."""
    lower, upper = M.clopper_pearson(successes=successes, trials=trials)
    assert f"{100 * lower:.3f}" == lower_pct
    assert f"{100 * upper:.3f}" == upper_pct


@pytest.mark.parametrize("trials, successes", [(7, 0), (7, 7), (50, 13), (1000, 1), (400, 399)])
def test_clopper_pearson_matches_scipy_binomtest(trials, successes):
    """scipy.stats.binomtest(...).proportion_ci(method='exact') is an independent Clopper-Pearson."""
    expected = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="exact")
    lower, upper = M.clopper_pearson(successes=successes, trials=trials)
    assert lower == pytest.approx(expected.low, abs=1e-12)
    assert upper == pytest.approx(expected.high, abs=1e-12)


@pytest.mark.parametrize("trials", [1, 10, 1000, 25000])
def test_clopper_pearson_closed_forms_at_the_edges(trials):
    """Clopper & Pearson 1934 closed forms: x = 0 -> (0, 1 - (a/2)^(1/n)); x = n -> ((a/2)^(1/n), 1).

    Two-sided 95% gives 1 - 0.025^(1/n) ~ 3.69/n at x = 0 (the one-sided 'rule of three' is ~3/n).
    """
    lower, upper = M.clopper_pearson(successes=0, trials=trials)
    assert lower == 0.0
    assert upper == pytest.approx(1.0 - 0.025 ** (1.0 / trials), rel=1e-10)
    lower, upper = M.clopper_pearson(successes=trials, trials=trials)
    assert upper == 1.0
    assert lower == pytest.approx(0.025 ** (1.0 / trials), rel=1e-10)
    if trials >= 1000:
        upper_zero = M.clopper_pearson(successes=0, trials=trials)[1]
        assert upper_zero * trials == pytest.approx(-math.log(0.025), rel=0.01)  # ~3.69 / n


@pytest.mark.parametrize(
    "n, alpha, flag",
    [
        (999, 0.001, "not_estimable"),
        (1000, 0.001, "low_evidence"),
        (9999, 0.001, "low_evidence"),
        (10000, 0.001, "ok"),
        (99, 0.01, "not_estimable"),
        (100, 0.01, "low_evidence"),
        (1000, 0.01, "ok"),
        (9, 0.1, "not_estimable"),
        (10, 0.1, "low_evidence"),
        (99, 0.1, "low_evidence"),
        (100, 0.1, "ok"),
    ],
)
def test_evidence_flag_boundaries(n, alpha, flag):
    """DESIGN.md 4.3: not_estimable when N*a < 1, low_evidence when N*a < 10, else ok."""
    assert M.evidence_flag(n_nonmembers=n, alpha=alpha) == flag


# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------


def _brute_force_statistics(members, nonmembers, alphas):
    """Recompute AUC, advantage and TPR@a of an explicit sample with the plain definitions."""
    roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
    y = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    auc = skm.roc_auc_score(y, np.r_[members, nonmembers])
    tprs = {a: max(t for f, t in zip(roc.fpr, roc.tpr) if f <= a) for a in alphas}
    return auc, float(np.max(roc.tpr - roc.fpr)), tprs


def test_weighted_resample_statistics_equal_explicit_resampling():
    """Brute force: counts-per-level statistics == roc_curve / sklearn AUC on explicitly resampled arrays."""
    rng = np.random.default_rng(11)
    members, nonmembers = _tied_scores(rng, 120, 90, levels=25)
    members = np.r_[members, rng.normal(3, 2, 30)]
    alphas = (0.0, 0.01, 0.05, 0.1, 0.5)
    levels = M.score_levels(member_scores=members, nonmember_scores=nonmembers)
    max_fp = {a: M.max_false_positives(a, nonmembers.size) for a in alphas}
    for _ in range(5):
        im = rng.integers(0, members.size, members.size)
        inn = rng.integers(0, nonmembers.size, nonmembers.size)
        auc, adv, tprs = _weighted_statistics(
            np.bincount(levels.member_level[im], minlength=levels.count),
            np.bincount(levels.nonmember_level[inn], minlength=levels.count),
            n_members=members.size,
            n_nonmembers=nonmembers.size,
            max_false_positives=max_fp,
        )
        expected_auc, expected_adv, expected_tprs = _brute_force_statistics(
            members[im], nonmembers[inn], alphas
        )
        assert auc == pytest.approx(expected_auc, abs=1e-12)
        assert adv == pytest.approx(expected_adv, abs=1e-12)
        for a in alphas:
            assert tprs[a] == pytest.approx(expected_tprs[a], abs=1e-12)


def test_bootstrap_replicates_equal_explicit_stratified_resamples():
    """DESIGN.md 4.3 stratified bootstrap: replicate b == statistics of (members[i_b], nonmembers[j_b]).

    Indices drawn from default_rng(seed) as integers(0, n1, n1) then integers(0, n0, n0) per replicate;
    the threshold for TPR@a is re-derived inside each resample.
    """
    rng_data = np.random.default_rng(12)
    members, nonmembers = rng_data.normal(0.5, 1, 80), np.round(rng_data.normal(0, 1, 120), 1)
    alphas = (0.01, 0.1)
    boot = M.bootstrap_ci(
        member_scores=members, nonmember_scores=nonmembers, seed=99, n_bootstrap=6, fpr_levels=alphas
    )
    rng = np.random.default_rng(99)
    for b in range(6):
        im = rng.integers(0, members.size, members.size)
        inn = rng.integers(0, nonmembers.size, nonmembers.size)
        auc, adv, tprs = _brute_force_statistics(members[im], nonmembers[inn], alphas)
        assert boot.auc_replicates[b] == pytest.approx(auc, abs=1e-12)
        assert boot.advantage_replicates[b] == pytest.approx(adv, abs=1e-12)
        for a in alphas:
            assert boot.tpr_replicates[a][b] == pytest.approx(tprs[a], abs=1e-12)


def test_bootstrap_ci_contains_point_deterministic_and_seed_dependent():
    """Efron & Tibshirani 1993 percentile interval: brackets the point estimate for a reasonable sample;
    reproducible for a fixed seed (DESIGN.md: byte-identical output), different for another seed."""
    rng = np.random.default_rng(13)
    members, nonmembers = rng.normal(0.5, 1, 2000), rng.normal(0, 1, 2000)
    kwargs = dict(member_scores=members, nonmember_scores=nonmembers, n_bootstrap=400)
    first = M.bootstrap_ci(seed=1, **kwargs)
    again = M.bootstrap_ci(seed=1, **kwargs)
    other = M.bootstrap_ci(seed=2, **kwargs)
    roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
    assert first.auc[0] <= roc.auc() <= first.auc[1]
    assert first.advantage[0] <= roc.advantage() <= first.advantage[1]
    for alpha in (0.01, 0.1):
        lo, hi = first.tpr_at_fpr[alpha]
        assert lo <= M.tpr_at_fpr(roc=roc, alpha=alpha).tpr <= hi
    assert first.auc == again.auc and first.tpr_at_fpr == again.tpr_at_fpr
    np.testing.assert_array_equal(first.auc_replicates, again.auc_replicates)
    assert first.auc != other.auc


def test_bootstrap_ci_width_shrinks_with_n():
    """Sampling error of the AUC scales like 1/sqrt(N) (Hanley & McNeil 1982): 25x the data, ~5x narrower."""
    rng = np.random.default_rng(14)
    widths = []
    for n in (200, 5000):
        members, nonmembers = rng.normal(0.5, 1, n), rng.normal(0, 1, n)
        ci = M.bootstrap_ci(member_scores=members, nonmember_scores=nonmembers, seed=3, n_bootstrap=300).auc
        widths.append(ci[1] - ci[0])
    assert widths[1] < widths[0] / 3


# --------------------------------------------------------------------------------------------------
# Cross-fitted balanced accuracy and the empirical epsilon bound
# --------------------------------------------------------------------------------------------------


def test_cross_fitted_balanced_accuracy_separable_is_one():
    """Perfectly separable scores: any half's best threshold separates the other half too -> 1.0."""
    rng = np.random.default_rng(15)
    members, nonmembers = rng.uniform(2, 3, 301), rng.uniform(0, 1, 250)
    assert M.cross_fitted_balanced_accuracy(member_scores=members, nonmember_scores=nonmembers, seed=0) == 1.0


def test_cross_fitted_balanced_accuracy_identical_distributions_near_half():
    """No signal: held-out balanced accuracy ~ 0.5 (the same-data maximum would be optimistic, Yeom 2018)."""
    rng = np.random.default_rng(16)
    members, nonmembers = rng.normal(0, 1, 4000), rng.normal(0, 1, 4000)
    ba = M.cross_fitted_balanced_accuracy(member_scores=members, nonmember_scores=nonmembers, seed=1)
    assert abs(ba - 0.5) < 0.05
    roc = M.roc_curve(member_scores=members, nonmember_scores=nonmembers)
    assert ba < 0.5 + roc.advantage() / 2  # strictly below the optimistic in-sample maximum


def test_epsilon_identical_distributions_is_zero():
    """No signal: Clopper-Pearson bounds on held-out data cannot separate TPR from FPR -> eps = 0."""
    rng = np.random.default_rng(17)
    members, nonmembers = rng.normal(0, 1, 3000), rng.normal(0, 1, 3000)
    assert M.epsilon_lower_bound(member_scores=members, nonmember_scores=nonmembers, seed=2) == 0.0


def test_epsilon_separable_positive_and_bounded_by_sample_size():
    """Separable scores: eps > 0 but an empirical bound from N records cannot exceed about ln(N)
    (FPR_ub >= 1 - 0.025^(1/N) ~ 3.69/N; Jagielski et al. 2020)."""
    rng = np.random.default_rng(18)
    n = 4000
    members, nonmembers = rng.uniform(1, 2, n), rng.uniform(0, 1, n)
    eps = M.epsilon_lower_bound(member_scores=members, nonmember_scores=nonmembers, seed=3)
    assert 0.0 < eps < math.log(n)
    # held-out half of 2000 non-members with 0 false positives: FPR_ub = 1 - 0.025^(1/2000)
    assert eps <= math.log(1.0 / (1.0 - 0.025 ** (1.0 / (n // 2)))) + 1e-12


def _cp(x, n, conf=0.95):
    """Clopper-Pearson written out with scipy.stats.beta.ppf (independent of the module)."""
    a = 1.0 - conf
    lo = 0.0 if x == 0 else stats.beta.ppf(a / 2, x, n - x + 1)
    hi = 1.0 if x == n else stats.beta.ppf(1 - a / 2, x + 1, n - x)
    return lo, hi


def _eps(tpr_lb, fpr_ub, delta):
    def log_ratio(num, den):
        return math.log(num / den) if num > 0 and den > 0 else -math.inf

    return max(log_ratio(tpr_lb - delta, fpr_ub), log_ratio(1 - delta - fpr_ub, 1 - tpr_lb), 0.0)


def test_epsilon_hand_check_against_scipy_beta():
    """Jagielski et al. 2020 / Nasr et al. 2021 bound recomputed by brute force with scipy.stats.beta.ppf.

    Split as documented (default_rng(seed): permutation of members, then of non-members; first
    floor(n/2) = half A); threshold = the candidate maximising the CP bound on A (predict-none first,
    then distinct A scores from high to low, first maximum wins), carried to half B as the midpoint
    between the chosen A score and the next lower A score; CP bounds on half B.
    """
    rng_data = np.random.default_rng(19)
    members, nonmembers = rng_data.normal(1.5, 1, 60), rng_data.normal(0, 1, 70)
    seed, delta = 5, 1e-5
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(members.size), rng.permutation(nonmembers.size)
    ma, mb = members[pm[: members.size // 2]], members[pm[members.size // 2 :]]
    na, nb = nonmembers[pn[: nonmembers.size // 2]], nonmembers[pn[nonmembers.size // 2 :]]

    candidates = [None] + sorted(set(np.r_[ma, na]), reverse=True)

    def counts(m, n, thr):
        return (0, 0) if thr is None else (int(np.sum(m >= thr)), int(np.sum(n >= thr)))

    def bound(m, n, thr):
        tp, fp = counts(m, n, thr)
        return _eps(_cp(tp, m.size)[0], _cp(fp, n.size)[1], delta)

    scores_a = [bound(ma, na, thr) for thr in candidates]
    best = int(np.argmax(scores_a))
    assert 0 < best < len(candidates) - 1
    cut = (candidates[best] + candidates[best + 1]) / 2
    expected = bound(mb, nb, cut)
    assert expected > 0.0  # the case is informative
    got = M.epsilon_lower_bound(member_scores=members, nonmember_scores=nonmembers, seed=seed, delta=delta)
    assert got == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# evaluate_scores
# --------------------------------------------------------------------------------------------------


def test_evaluate_scores_assembles_consistent_results():
    """DESIGN.md 4.3: every number with its interval, achieved FPR with Clopper-Pearson, evidence flag.

    With 500 non-members TPR@0.1% is not estimable (N*a = 0.5 < 1) but its numbers are still reported.
    """
    rng = np.random.default_rng(20)
    members, nonmembers = rng.normal(1.0, 1, 400), rng.normal(0, 1, 500)
    result = M.evaluate_scores(member_scores=members, nonmember_scores=nonmembers, seed=4, n_bootstrap=300)
    y = np.r_[np.ones(400), np.zeros(500)]
    assert result.auc == pytest.approx(skm.roc_auc_score(y, np.r_[members, nonmembers]), abs=1e-12)
    assert result.auc_ci[0] <= result.auc <= result.auc_ci[1]
    assert result.advantage_ci[0] <= result.advantage <= result.advantage_ci[1]
    assert (result.n_members, result.n_nonmembers) == (400, 500)
    assert set(result.tpr_at_fpr) == set(M.FPR_LEVELS)
    flags = {a: r.flag for a, r in result.tpr_at_fpr.items()}
    assert flags == {0.001: "not_estimable", 0.01: "low_evidence", 0.1: "ok"}
    for alpha, r in result.tpr_at_fpr.items():
        assert r.achieved_fpr <= alpha
        assert r.ci[0] <= r.ci[1]
        fp = int(np.sum(nonmembers >= r.threshold)) if np.isfinite(r.threshold) else 0
        assert r.achieved_fpr == pytest.approx(fp / 500)
        assert r.achieved_fpr_ci == pytest.approx(_cp(fp, 500), abs=1e-12)
    assert 0.5 < result.balanced_accuracy <= 0.5 + result.advantage / 2 + 0.05
    assert result.epsilon_lower_bound >= 0.0


def test_cross_fitted_balanced_accuracy_brute_force():
    """DESIGN.md 4.3 2-fold cross-fitting recomputed by brute force on tied scores.

    Split: default_rng(seed) permutation of members then of non-members, first floor(n/2) = half A.
    On each half, the threshold maximising 0.5 (TPR + 1 - FPR) over predict-none and the distinct
    scores (high to low, first maximum wins), carried over as the midpoint to the next lower score;
    result = mean of the two held-out balanced accuracies.
    """
    rng_data = np.random.default_rng(21)
    members, nonmembers = _tied_scores(rng_data, 91, 77, levels=9)
    seed = 8
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(members.size), rng.permutation(nonmembers.size)
    halves = [
        (members[pm[: members.size // 2]], nonmembers[pn[: nonmembers.size // 2]]),
        (members[pm[members.size // 2 :]], nonmembers[pn[nonmembers.size // 2 :]]),
    ]

    def balanced_accuracy(m, n, cut):
        tpr = 0.0 if cut is None else np.mean(m >= cut)
        fpr = 0.0 if cut is None else np.mean(n >= cut)
        return 0.5 * (tpr + 1.0 - fpr)

    held_out = []
    for (fit_m, fit_n), (eval_m, eval_n) in (halves, halves[::-1]):
        candidates = [None] + sorted(set(np.r_[fit_m, fit_n]), reverse=True)
        best = int(np.argmax([balanced_accuracy(fit_m, fit_n, c) for c in candidates]))
        if best == 0:
            cut = None
        elif best == len(candidates) - 1:
            cut = -np.inf
        else:
            cut = (candidates[best] + candidates[best + 1]) / 2
        held_out.append(balanced_accuracy(eval_m, eval_n, cut))
    got = M.cross_fitted_balanced_accuracy(member_scores=members, nonmember_scores=nonmembers, seed=seed)
    assert got == pytest.approx(np.mean(held_out), abs=1e-12)
