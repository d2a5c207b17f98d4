"""Attack metrics: ROC, AUC, TPR at low FPR, advantage, confidence intervals, empirical epsilon.

Conventions (DESIGN.md section 4.3, binding for every attack):

- A higher score means "more likely a member"; a record is predicted a member iff ``score >= threshold``.
- The ROC is taken over *all* distinct thresholds (no intermediate points dropped). It starts at (0, 0)
  with the sentinel threshold ``+inf`` meaning "predict no record a member" and ends at (1, 1).
- AUC is the Mann-Whitney statistic U / (n1 * n0) with ties counted 1/2; it equals the trapezoid area
  under the full ROC.
- TPR@alpha = max{TPR_k : FPR_k <= alpha}, without interpolation, reported with the FPR actually
  achieved (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022).
- Advantage = max_k (TPR_k - FPR_k), signed: an inverted attack is not an attack (Yeom et al.,
  "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting", IEEE CSF 2018). Li, Li and
  Ribeiro (CODASPY 2021) use balanced accuracy - 1/2, which is half of this number.
- Confidence intervals: stratified percentile bootstrap (members and non-members resampled separately,
  threshold re-derived inside each resample); Clopper-Pearson (1934) for a proportion at a fixed threshold.

Pure numpy / scipy; no scikit-learn at runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = [
    "FPR_LEVELS",
    "BootstrapCI",
    "RocCurve",
    "ScoreMetrics",
    "TprAtFpr",
    "TprAtFprResult",
    "auc_score",
    "bootstrap_ci",
    "clopper_pearson",
    "cross_fitted_balanced_accuracy",
    "epsilon_lower_bound",
    "evaluate_scores",
    "evidence_flag",
    "roc_curve",
    "tpr_at_fpr",
]

FPR_LEVELS: tuple[float, ...] = (0.001, 0.01, 0.1)

NOT_ESTIMABLE = "not_estimable"
LOW_EVIDENCE = "low_evidence"
OK = "ok"

# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def _as_scores(values, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array; reject empty input and NaN (+/-inf are allowed)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN scores")
    return arr


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return alpha


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return confidence


def _check_splittable(members: np.ndarray, nonmembers: np.ndarray) -> None:
    if members.size < 2 or nonmembers.size < 2:
        raise ValueError(
            "cross-fitting needs at least 2 members and 2 non-members "
            f"(got {members.size} and {nonmembers.size})"
        )


# --------------------------------------------------------------------------------------------------
# ROC curve
# --------------------------------------------------------------------------------------------------


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class RocCurve:
    """ROC of a score-threshold attack over all distinct thresholds.

    ``thresholds[0]`` is ``+inf``, a sentinel for "predict no record a member" at (0, 0); the remaining
    thresholds are the distinct scores in decreasing order, so the last point is (1, 1). Point k
    predicts a member iff ``score >= thresholds[k]`` (for k >= 1).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_members: int
    n_nonmembers: int

    def auc(self) -> float:
        """Trapezoid area under this curve; equals the Mann-Whitney AUC with ties counted 1/2."""
        widths = np.diff(self.fpr)
        heights = 0.5 * (self.tpr[1:] + self.tpr[:-1])
        return float(np.sum(widths * heights))

    def advantage(self) -> float:
        """Membership advantage max_k (TPR_k - FPR_k) (Yeom et al., IEEE CSF 2018).

        Signed, never ``abs()``: it is >= 0 only because the endpoints (0, 0) and (1, 1) are on the
        curve; an attack whose scores are inverted gets advantage 0, not credit for the inversion.
        """
        return float(np.max(self.tpr - self.fpr))

    def false_positives(self) -> np.ndarray:
        """Number of non-members predicted members at each point."""
        return np.rint(self.fpr * self.n_nonmembers).astype(np.int64)

    def true_positives(self) -> np.ndarray:
        """Number of members predicted members at each point."""
        return np.rint(self.tpr * self.n_members).astype(np.int64)


@dataclass(frozen=True)
class _Levels:
    """Distinct score levels in decreasing order and each record's level index (0 = highest)."""

    values: np.ndarray
    member_level: np.ndarray
    nonmember_level: np.ndarray

    @property
    def count(self) -> int:
        return int(self.values.size)


def _score_levels(members: np.ndarray, nonmembers: np.ndarray) -> _Levels:
    ascending, inverse = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    top = ascending.size - 1
    level = top - inverse.reshape(-1)  # 0 for the highest score
    return _Levels(
        values=ascending[::-1].copy(),
        member_level=level[: members.size],
        nonmember_level=level[members.size :],
    )


def roc_curve(*, member_scores, nonmember_scores) -> RocCurve:
    """ROC over all distinct thresholds (``drop_intermediate=False`` in scikit-learn's terms).

    O(N log N): one sort of the pooled scores, then cumulative counts per distinct level.
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    levels = _score_levels(members, nonmembers)
    tp = np.cumsum(np.bincount(levels.member_level, minlength=levels.count))
    fp = np.cumsum(np.bincount(levels.nonmember_level, minlength=levels.count))
    zero = np.zeros(1, dtype=np.int64)
    return RocCurve(
        fpr=_readonly(np.concatenate([zero, fp]) / nonmembers.size),
        tpr=_readonly(np.concatenate([zero, tp]) / members.size),
        thresholds=_readonly(np.concatenate([[np.inf], levels.values])),
        n_members=int(members.size),
        n_nonmembers=int(nonmembers.size),
    )


def auc_score(*, member_scores, nonmember_scores) -> float:
    """AUC as the Mann-Whitney statistic U / (n1 * n0), ties counted 1/2.

    U = (sum of the members' mid-ranks in the pooled sample) - n1 (n1 + 1) / 2
    (Mann & Whitney, Ann. Math. Statist. 1947; Hanley & McNeil, Radiology 1982). O(N log N).
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    n1, n0 = members.size, nonmembers.size
    ranks = stats.rankdata(np.concatenate([members, nonmembers]), method="average")
    u_statistic = float(np.sum(ranks[:n1])) - n1 * (n1 + 1) / 2.0
    return u_statistic / (n1 * n0)


# --------------------------------------------------------------------------------------------------
# TPR at a fixed FPR, evidence flags, Clopper-Pearson
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TprAtFpr:
    """TPR@alpha = max{TPR_k : FPR_k <= alpha}, the FPR achieved there and its threshold."""

    tpr: float
    achieved_fpr: float
    threshold: float


def tpr_at_fpr(*, roc: RocCurve, alpha: float) -> TprAtFpr:
    """TPR at FPR <= alpha on ``roc``, without interpolation (Carlini et al., IEEE S&P 2022).

    Among points with FPR_k <= alpha take the highest TPR; among points tying on it take the one with
    the lowest FPR (the highest threshold). With no positive prediction allowed the result is the
    (0, 0) sentinel point at threshold +inf, or a higher TPR if some threshold reaches it with no
    false positive. ``achieved_fpr <= alpha`` always holds.
    """
    alpha = _check_alpha(alpha)
    last = int(np.searchsorted(roc.fpr, alpha, side="right")) - 1  # fpr is non-decreasing; fpr[0] = 0
    best = int(np.searchsorted(roc.tpr[: last + 1], roc.tpr[last], side="left"))
    return TprAtFpr(
        tpr=float(roc.tpr[best]),
        achieved_fpr=float(roc.fpr[best]),
        threshold=float(roc.thresholds[best]),
    )


def evidence_flag(*, n_nonmembers: int, alpha: float) -> str:
    """Whether TPR@alpha can be resolved with ``n_nonmembers`` non-members (DESIGN.md section 4.3).

    The smallest non-zero FPR is 1/N, so with N * alpha < 1 the target FPR cannot be resolved at all
    (``"not_estimable"``); with N * alpha < 10 fewer than ten false positives are expected at the
    target, and the number is ``"low_evidence"``. Otherwise ``"ok"``.
    """
    alpha = _check_alpha(alpha)
    if n_nonmembers < 0:
        raise ValueError(f"n_nonmembers must be >= 0, got {n_nonmembers}")
    expected_false_positives = n_nonmembers * alpha
    slack = 1e-9 * max(1.0, expected_false_positives)  # 1000 * 0.001 must count as 1, not 0.999...
    if expected_false_positives < 1.0 - slack:
        return NOT_ESTIMABLE
    if expected_false_positives < 10.0 - slack:
        return LOW_EVIDENCE
    return OK


def clopper_pearson(*, successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval for a binomial proportion.

    Clopper & Pearson, "The use of confidence or fiducial limits illustrated in the case of the
    binomial", Biometrika 26 (1934). Lower = Beta(a/2; x, n - x + 1) quantile, upper =
    Beta(1 - a/2; x + 1, n - x) quantile with a = 1 - confidence; the lower bound is 0 at x = 0 and the
    upper bound is 1 at x = n. At x = 0 the upper bound is exactly 1 - (a/2)^(1/n) (about 3.69/n at
    95%; the one-sided 95% "rule of three" bound is about 3/n).
    """
    confidence = _check_confidence(confidence)
    x, n = int(successes), int(trials)
    if x != successes or n != trials:
        raise ValueError("successes and trials must be integers")
    if n < 1 or not 0 <= x <= n:
        raise ValueError(f"need trials >= 1 and 0 <= successes <= trials, got {x}/{n}")
    lower, upper = _clopper_pearson_arrays(np.array([x]), n, confidence)
    return float(lower[0]), float(upper[0])


def _clopper_pearson_arrays(
    successes: np.ndarray, trials: int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Clopper-Pearson bounds for many success counts out of the same ``trials``."""
    return (
        _clopper_pearson_lower(successes, trials, confidence),
        _clopper_pearson_upper(successes, trials, confidence),
    )


def _clopper_pearson_lower(successes: np.ndarray, trials: int, confidence: float) -> np.ndarray:
    """Lower Clopper-Pearson bounds, evaluated once per distinct count (Beta quantiles are costly)."""
    distinct, where = np.unique(np.asarray(successes, dtype=np.float64), return_inverse=True)
    bound = np.zeros_like(distinct)
    positive = distinct > 0
    x = distinct[positive]
    bound[positive] = stats.beta.ppf((1.0 - confidence) / 2.0, x, trials - x + 1)
    return bound[where.reshape(-1)]


def _clopper_pearson_upper(successes: np.ndarray, trials: int, confidence: float) -> np.ndarray:
    """Upper Clopper-Pearson bounds, evaluated once per distinct count."""
    distinct, where = np.unique(np.asarray(successes, dtype=np.float64), return_inverse=True)
    bound = np.ones_like(distinct)
    short = distinct < trials
    x = distinct[short]
    bound[short] = stats.beta.ppf((1.0 + confidence) / 2.0, x + 1, trials - x)
    return bound[where.reshape(-1)]


# --------------------------------------------------------------------------------------------------
# Cross-fitting: balanced accuracy and the empirical epsilon lower bound
# --------------------------------------------------------------------------------------------------


def _split_halves(scores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(scores.size)
    half = scores.size // 2
    return scores[order[:half]], scores[order[half:]]


def _seeded_folds(members: np.ndarray, nonmembers: np.ndarray, seed: int):
    """Split members and non-members separately into halves A and B with one seeded Generator."""
    rng = np.random.default_rng(seed)
    members_a, members_b = _split_halves(members, rng)
    nonmembers_a, nonmembers_b = _split_halves(nonmembers, rng)
    return (members_a, nonmembers_a), (members_b, nonmembers_b)


def _cut_point(roc: RocCurve, index: int) -> float | None:
    """Threshold to carry point ``index`` of a fitted ROC to held-out data.

    Any cut between the chosen score level and the next lower one classifies the fitting data the same
    way; the midpoint (as for a decision stump) generalises better than the level itself, which sits
    on the edge of the fitted members. ``None`` = predict no record a member (the sentinel point);
    ``-inf`` = predict every record a member (the last point).
    """
    if index == 0:
        return None
    if index == roc.thresholds.size - 1:
        return -np.inf
    upper, lower = float(roc.thresholds[index]), float(roc.thresholds[index + 1])
    middle = upper / 2.0 + lower / 2.0
    return 0.0 if math.isnan(middle) else middle  # +inf above -inf: any finite cut separates them


def _held_out_counts(members: np.ndarray, nonmembers: np.ndarray, cut: float | None) -> tuple[int, int]:
    """(true positives, false positives) when predicting member iff score >= cut (None: none)."""
    if cut is None:
        return 0, 0
    return int(np.count_nonzero(members >= cut)), int(np.count_nonzero(nonmembers >= cut))


def cross_fitted_balanced_accuracy(*, member_scores, nonmember_scores, seed: int) -> float:
    """Balanced attack accuracy 0.5 * (TPR + 1 - FPR) with the threshold chosen on other data.

    2-fold cross-fitting (DESIGN.md section 4.3): members and non-members are split separately into
    halves A and B with ``np.random.default_rng(seed)``; on each half the threshold maximising balanced
    accuracy is chosen (ties: the highest; carried over as the midpoint to the next lower score of that
    half) and evaluated on the other half; the result is the
    mean of the two held-out balanced accuracies. This avoids the optimistic bias of maximising and
    evaluating on the same records (cf. Yeom et al., IEEE CSF 2018, where balanced accuracy
    = 1/2 + advantage/2). It can fall below 0.5 when the chosen threshold does not generalise.
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    _check_splittable(members, nonmembers)
    fold_a, fold_b = _seeded_folds(members, nonmembers, seed)
    held_out = []
    for (fit_m, fit_n), (eval_m, eval_n) in ((fold_a, fold_b), (fold_b, fold_a)):
        roc = roc_curve(member_scores=fit_m, nonmember_scores=fit_n)
        best = int(np.argmax(roc.tpr - roc.fpr))  # balanced accuracy = (1 + TPR - FPR) / 2
        tp, fp = _held_out_counts(eval_m, eval_n, _cut_point(roc, best))
        held_out.append(0.5 * (tp / eval_m.size + 1.0 - fp / eval_n.size))
    return float(np.mean(held_out))


def _safe_log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """ln(numerator / denominator), -inf where either side is not positive."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    valid = (numerator > 0) & (denominator > 0)
    out = np.full(np.broadcast(numerator, denominator).shape, -np.inf)
    out[valid] = np.log(numerator[valid]) - np.log(denominator[valid])
    return out


def _epsilon_from_bounds(tpr_lower, fpr_upper, delta: float) -> np.ndarray:
    """max{ln[(TPR_lb - delta)/FPR_ub], ln[(1 - delta - FPR_ub)/(1 - TPR_lb)]}, clamped at 0.

    The (epsilon, delta)-DP hypothesis-testing inequalities TPR <= e^eps FPR + delta and
    1 - FPR <= e^eps (1 - TPR) + delta (Kairouz et al. 2015), solved for epsilon as in Jagielski et al.,
    "Auditing Differentially Private Machine Learning", NeurIPS 2020, and Nasr et al., "Adversary
    Instantiation", IEEE S&P 2021.
    """
    tpr_lower = np.asarray(tpr_lower, dtype=np.float64)
    fpr_upper = np.asarray(fpr_upper, dtype=np.float64)
    first = _safe_log_ratio(tpr_lower - delta, fpr_upper)
    second = _safe_log_ratio(1.0 - delta - fpr_upper, 1.0 - tpr_lower)
    return np.maximum(np.maximum(first, second), 0.0)


def epsilon_lower_bound(
    *,
    member_scores,
    nonmember_scores,
    seed: int,
    delta: float = 1e-5,
    confidence: float = 0.95,
) -> float:
    """Empirical epsilon lower bound from a threshold attack (Jagielski et al. 2020; Nasr et al. 2021).

    A heuristic empirical lower bound for *this* model under *this* attack, not a differential-privacy
    guarantee and not an upper bound on anything: a stronger attack could show more leakage.

    Members and non-members are split separately into halves A and B with
    ``np.random.default_rng(seed)`` (the same split as :func:`cross_fitted_balanced_accuracy`). The
    threshold is chosen on half A only, as the one maximising the bound below computed on half A (ties:
    the highest; carried over as the midpoint to the next lower score of half A); it is then applied
    once to half B, where two-sided Clopper-Pearson intervals at ``confidence`` give
    TPR_lb (members) and FPR_ub (non-members), and

        eps >= max{ln[(TPR_lb - delta) / FPR_ub], ln[(1 - delta - FPR_ub) / (1 - TPR_lb)]},

    clamped at 0 (logs of non-positive numbers count as -inf). One direction only (A -> B).
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    confidence = _check_confidence(confidence)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    _check_splittable(members, nonmembers)
    (fit_m, fit_n), (eval_m, eval_n) = _seeded_folds(members, nonmembers, seed)

    roc = roc_curve(member_scores=fit_m, nonmember_scores=fit_n)
    tpr_lb = _clopper_pearson_lower(roc.true_positives(), fit_m.size, confidence)
    fpr_ub = _clopper_pearson_upper(roc.false_positives(), fit_n.size, confidence)
    best = int(np.argmax(_epsilon_from_bounds(tpr_lb, fpr_ub, delta)))

    tp, fp = _held_out_counts(eval_m, eval_n, _cut_point(roc, best))
    held_tpr_lb, _ = clopper_pearson(successes=tp, trials=eval_m.size, confidence=confidence)
    _, held_fpr_ub = clopper_pearson(successes=fp, trials=eval_n.size, confidence=confidence)
    return float(_epsilon_from_bounds(held_tpr_lb, held_fpr_ub, delta))


# --------------------------------------------------------------------------------------------------
# Stratified bootstrap
# --------------------------------------------------------------------------------------------------


def _max_false_positives(alpha: float, n_nonmembers: int) -> int:
    """Largest integer f with f / n_nonmembers <= alpha, in the same float arithmetic as ``RocCurve.fpr``."""
    f = int(math.floor(alpha * n_nonmembers))
    while f + 1 <= n_nonmembers and (f + 1) / n_nonmembers <= alpha:
        f += 1
    while f > 0 and f / n_nonmembers > alpha:
        f -= 1
    return f


class _Workspace:
    """Reusable buffers for one resample's weighted ROC (avoids re-allocating large temporaries)."""

    def __init__(self, n_levels: int, n_members: int, n_nonmembers: int):
        self.tp = np.empty(n_levels, dtype=np.int64)
        self.fp = np.empty(n_levels, dtype=np.int64)
        self.scratch = np.empty(n_levels, dtype=np.int64)
        self.fp_scaled = np.empty(n_levels, dtype=np.int64)
        self.member_draw = np.empty(n_members, dtype=np.intp)
        self.nonmember_draw = np.empty(n_nonmembers, dtype=np.intp)


def _weighted_statistics(
    member_counts: np.ndarray,
    nonmember_counts: np.ndarray,
    *,
    n_members: int,
    n_nonmembers: int,
    max_false_positives: dict[float, int],
    work: _Workspace | None = None,
) -> tuple[float, float, dict[float, float]]:
    """AUC, advantage and TPR@alpha of one weighted sample, in O(levels) with exact integer arithmetic.

    ``member_counts[j]`` / ``nonmember_counts[j]`` are how many times records at score level j (levels
    in decreasing order) appear in the resample; they sum to ``n_members`` / ``n_nonmembers``. With
    TP_j, FP_j the cumulative counts down to level j:

    - AUC = sum_j m_j (n0 - FP_j + n_j / 2) / (n1 n0)  (members beat the non-members strictly below
      them, tie with those at their level);
    - advantage = max(0, max_j (TP_j / n1 - FP_j / n0));
    - TPR@alpha = TP at the last level with FP_j <= f(alpha) (FP is non-decreasing), 0 if none.
    """
    if work is None:
        work = _Workspace(member_counts.size, 0, 0)
    tp, fp, scratch = work.tp, work.fp, work.scratch
    np.cumsum(member_counts, out=tp)
    np.cumsum(nonmember_counts, out=fp)
    doubled_pairs = (
        2 * n_members * n_nonmembers
        - 2 * int(np.dot(member_counts, fp))
        + int(np.dot(member_counts, nonmember_counts))
    )
    auc = doubled_pairs / (2.0 * n_members * n_nonmembers)
    np.multiply(tp, n_nonmembers, out=scratch)
    np.subtract(scratch, np.multiply(fp, n_members, out=work.fp_scaled), out=scratch)
    advantage = max(int(scratch.max()), 0) / (n_members * n_nonmembers)
    tprs = {}
    for alpha, f in max_false_positives.items():
        eligible = int(np.searchsorted(fp, f, side="right"))
        tprs[alpha] = (int(tp[eligible - 1]) if eligible > 0 else 0) / n_members
    return auc, advantage, tprs


def _resampled_level_counts(
    rng: np.random.Generator, record_level: np.ndarray, n_levels: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Counts per score level of one resample, with replacement, of the records at ``record_level``."""
    drawn = rng.integers(0, record_level.size, size=record_level.size)
    drawn_level = np.take(record_level, drawn, out=out)
    return np.bincount(drawn_level, minlength=n_levels)


@dataclass(frozen=True, eq=False)
class BootstrapCI:
    """Percentile intervals from a stratified bootstrap, and the replicates they came from."""

    auc: tuple[float, float]
    advantage: tuple[float, float]
    tpr_at_fpr: dict[float, tuple[float, float]]
    n_bootstrap: int
    confidence: float
    auc_replicates: np.ndarray = field(repr=False)
    advantage_replicates: np.ndarray = field(repr=False)
    tpr_replicates: dict[float, np.ndarray] = field(repr=False)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return float(lower), float(upper)


def bootstrap_ci(
    *,
    member_scores,
    nonmember_scores,
    seed: int,
    n_bootstrap: int = 1000,
    fpr_levels=FPR_LEVELS,
    confidence: float = 0.95,
) -> BootstrapCI:
    """Stratified percentile bootstrap for AUC, advantage and TPR@alpha (DESIGN.md section 4.3).

    Members and non-members are resampled separately with replacement (Efron & Tibshirani, "An
    Introduction to the Bootstrap", 1993), from ``np.random.default_rng(seed)``. Inside each resample the
    ROC, and so the TPR@alpha threshold, is re-derived; the interval is the (1 - confidence)/2 and
    (1 + confidence)/2 percentiles of the replicates.

    Scores are mapped once to their distinct levels; a resample is then a vector of counts per level,
    and its ROC follows from cumulative sums in O(levels) with exact integer arithmetic, one resample
    at a time in reused buffers (memory O(N), about 2.5 s for 100k + 100k records and B = 1000).
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    confidence = _check_confidence(confidence)
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    alphas = [_check_alpha(a) for a in fpr_levels]
    n1, n0 = members.size, nonmembers.size
    max_fp = {alpha: _max_false_positives(alpha, n0) for alpha in alphas}

    levels = _score_levels(members, nonmembers)
    rng = np.random.default_rng(seed)
    work = _Workspace(levels.count, n1, n0)
    auc_reps = np.empty(n_bootstrap)
    advantage_reps = np.empty(n_bootstrap)
    tpr_reps = {alpha: np.empty(n_bootstrap) for alpha in alphas}
    for b in range(n_bootstrap):
        member_counts = _resampled_level_counts(
            rng, levels.member_level, levels.count, out=work.member_draw
        )
        nonmember_counts = _resampled_level_counts(
            rng, levels.nonmember_level, levels.count, out=work.nonmember_draw
        )
        auc_reps[b], advantage_reps[b], tprs = _weighted_statistics(
            member_counts,
            nonmember_counts,
            n_members=n1,
            n_nonmembers=n0,
            max_false_positives=max_fp,
            work=work,
        )
        for alpha in alphas:
            tpr_reps[alpha][b] = tprs[alpha]

    return BootstrapCI(
        auc=_percentile_interval(auc_reps, confidence),
        advantage=_percentile_interval(advantage_reps, confidence),
        tpr_at_fpr={alpha: _percentile_interval(reps, confidence) for alpha, reps in tpr_reps.items()},
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        auc_replicates=auc_reps,
        advantage_replicates=advantage_reps,
        tpr_replicates=tpr_reps,
    )


# --------------------------------------------------------------------------------------------------
# Everything for one attack's scores
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TprAtFprResult:
    """TPR@alpha with its bootstrap interval, the achieved FPR with its Clopper-Pearson interval."""

    alpha: float
    tpr: float
    ci: tuple[float, float]
    achieved_fpr: float
    achieved_fpr_ci: tuple[float, float]
    threshold: float
    flag: str  # "ok" | "low_evidence" | "not_estimable"; numbers are still filled in when not estimable


@dataclass(frozen=True)
class ScoreMetrics:
    """All metrics of one score-threshold attack (DESIGN.md section 4.3)."""

    auc: float
    auc_ci: tuple[float, float]
    advantage: float
    advantage_ci: tuple[float, float]
    balanced_accuracy: float  # cross-fitted, not the same-data maximum
    epsilon_lower_bound: float
    n_members: int
    n_nonmembers: int
    roc: RocCurve
    tpr_at_fpr: dict[float, TprAtFprResult]
    n_bootstrap: int
    confidence: float
    delta: float


def _tpr_result(
    *, roc: RocCurve, alpha: float, ci: tuple[float, float], confidence: float
) -> TprAtFprResult:
    point = tpr_at_fpr(roc=roc, alpha=alpha)
    false_positives = int(round(point.achieved_fpr * roc.n_nonmembers))
    return TprAtFprResult(
        alpha=alpha,
        tpr=point.tpr,
        ci=ci,
        achieved_fpr=point.achieved_fpr,
        achieved_fpr_ci=clopper_pearson(
            successes=false_positives, trials=roc.n_nonmembers, confidence=confidence
        ),
        threshold=point.threshold,
        flag=evidence_flag(n_nonmembers=roc.n_nonmembers, alpha=alpha),
    )


def evaluate_scores(
    *,
    member_scores,
    nonmember_scores,
    seed: int,
    n_bootstrap: int = 1000,
    fpr_levels=FPR_LEVELS,
    confidence: float = 0.95,
    delta: float = 1e-5,
) -> ScoreMetrics:
    """Every metric of DESIGN.md section 4.3 for one attack's member and non-member scores.

    Needs at least 2 members and 2 non-members (for the cross-fitted numbers). The same ``seed`` drives
    the bootstrap and the (shared) A/B split of the cross-fitted balanced accuracy and epsilon bound.
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    _check_splittable(members, nonmembers)
    roc = roc_curve(member_scores=members, nonmember_scores=nonmembers)
    boot = bootstrap_ci(
        member_scores=members,
        nonmember_scores=nonmembers,
        seed=seed,
        n_bootstrap=n_bootstrap,
        fpr_levels=fpr_levels,
        confidence=confidence,
    )
    tprs = {
        float(alpha): _tpr_result(
            roc=roc, alpha=float(alpha), ci=boot.tpr_at_fpr[float(alpha)], confidence=confidence
        )
        for alpha in fpr_levels
    }
    return ScoreMetrics(
        auc=auc_score(member_scores=members, nonmember_scores=nonmembers),
        auc_ci=boot.auc,
        advantage=roc.advantage(),
        advantage_ci=boot.advantage,
        balanced_accuracy=cross_fitted_balanced_accuracy(
            member_scores=members, nonmember_scores=nonmembers, seed=seed
        ),
        epsilon_lower_bound=epsilon_lower_bound(
            member_scores=members,
            nonmember_scores=nonmembers,
            seed=seed,
            delta=delta,
            confidence=confidence,
        ),
        n_members=int(members.size),
        n_nonmembers=int(nonmembers.size),
        roc=roc,
        tpr_at_fpr=tprs,
        n_bootstrap=boot.n_bootstrap,
        confidence=confidence,
        delta=float(delta),
    )
