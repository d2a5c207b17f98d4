"""Every metric of DESIGN.md section 4.3 for one attack's member and non-member scores.

Confidence intervals: stratified percentile bootstrap for AUC, advantage and TPR@alpha (threshold
re-derived inside each resample, :mod:`mia_audit.stats.bootstrap`); Clopper-Pearson (1934) for the FPR
achieved at the fixed TPR@alpha threshold; cross-fitted balanced accuracy and epsilon lower bound
(:mod:`mia_audit.stats.crossfit`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mia_audit.stats.bootstrap import bootstrap_ci
from mia_audit.stats.crossfit import cross_fitted_balanced_accuracy, epsilon_lower_bound
from mia_audit.stats.evidence import FPR_LEVELS
from mia_audit.stats.intervals import clopper_pearson
from mia_audit.stats.roc import RocCurve, TprAtFpr, auc_score, roc_curve, tpr_at_fpr
from mia_audit.stats.validation import as_scores, check_splittable

__all__ = ["ScoreMetrics", "evaluate_scores"]


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
    tpr_at_fpr: dict[float, TprAtFpr]  # with the bootstrap interval and the achieved FPR's Clopper-Pearson one
    n_bootstrap: int
    confidence: float
    delta: float


def _with_intervals(*, roc: RocCurve, alpha: float, ci: tuple[float, float], confidence: float) -> TprAtFpr:
    point = tpr_at_fpr(roc=roc, alpha=alpha)
    false_positives = int(round(point.achieved_fpr * roc.n_nonmembers))
    return dataclasses.replace(
        point,
        ci=ci,
        achieved_fpr_ci=clopper_pearson(successes=false_positives, trials=roc.n_nonmembers, confidence=confidence),
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
    members = as_scores(member_scores, "member_scores")
    nonmembers = as_scores(nonmember_scores, "nonmember_scores")
    check_splittable(members=members, nonmembers=nonmembers)
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
        float(alpha): _with_intervals(
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
