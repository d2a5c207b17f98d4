"""Cross-fitted numbers: balanced attack accuracy and the empirical epsilon lower bound.

Both choose a threshold on one half of the records and evaluate it on the other (DESIGN.md section 4.3),
so neither is the optimistic same-data maximum. Members and non-members are split separately into halves
A and B with one seeded Generator; the two numbers share that split.
"""

from __future__ import annotations

import math

import numpy as np

from mia_audit.stats.intervals import clopper_pearson, clopper_pearson_lower, clopper_pearson_upper
from mia_audit.stats.roc import RocCurve, roc_curve
from mia_audit.stats.validation import as_scores, check_confidence, check_splittable

__all__ = ["cross_fitted_balanced_accuracy", "epsilon_lower_bound"]


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
    members = as_scores(member_scores, "member_scores")
    nonmembers = as_scores(nonmember_scores, "nonmember_scores")
    check_splittable(members=members, nonmembers=nonmembers)
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
    members = as_scores(member_scores, "member_scores")
    nonmembers = as_scores(nonmember_scores, "nonmember_scores")
    confidence = check_confidence(confidence)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    check_splittable(members=members, nonmembers=nonmembers)
    (fit_m, fit_n), (eval_m, eval_n) = _seeded_folds(members, nonmembers, seed)

    roc = roc_curve(member_scores=fit_m, nonmember_scores=fit_n)
    tail = (1.0 - confidence) / 2.0
    tpr_lb = clopper_pearson_lower(successes=roc.true_positives(), trials=fit_m.size, tail=tail)
    fpr_ub = clopper_pearson_upper(successes=roc.false_positives(), trials=fit_n.size, tail=tail)
    best = int(np.argmax(_epsilon_from_bounds(tpr_lb, fpr_ub, delta)))

    tp, fp = _held_out_counts(eval_m, eval_n, _cut_point(roc, best))
    held_tpr_lb, _ = clopper_pearson(successes=tp, trials=eval_m.size, confidence=confidence)
    _, held_fpr_ub = clopper_pearson(successes=fp, trials=eval_n.size, confidence=confidence)
    return float(_epsilon_from_bounds(held_tpr_lb, held_fpr_ub, delta))
