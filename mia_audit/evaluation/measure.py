"""Step 6: turn an attack's per-record scores into its result entry, and pick the worst case.

All statistics come from `mia_audit.stats` (DESIGN §4.3). The ROC kept in the results is a
log-spaced down-sample of (FPR, TPR) points without thresholds, so no per-record score leaves here.
"""

from __future__ import annotations

import numpy as np

from mia_audit.attacks import Attack, AttackScores
from mia_audit.stats import FPR_LEVELS, RocCurve, evaluate_scores
from mia_audit.results import AttackResult, RocPoints, TprAtFpr, WorstCase

HEADLINE_FPR = 0.001


def fpr_key(alpha: float) -> str:
    """The results.json key for an FPR level: 0.001 → "0.001"."""
    return f"{alpha:g}"


def roc_points(*, roc: RocCurve, n_points: int = 160) -> RocPoints:
    """Step-wise ROC sampled on a log grid of FPR (plus the linear range), for charts only."""
    grid = np.unique(np.concatenate([[0.0], np.logspace(-5, 0, n_points // 2), np.linspace(0, 1, n_points // 2)]))
    # For each grid FPR, the best TPR achievable at FPR ≤ grid (the same ≤ convention as the metrics).
    order = np.argsort(roc.fpr, kind="stable")
    fpr_sorted = roc.fpr[order]
    best_tpr = np.maximum.accumulate(roc.tpr[order])
    index = np.searchsorted(fpr_sorted, grid, side="right") - 1
    fpr = fpr_sorted[index]
    tpr = best_tpr[index]
    pairs = sorted(set(zip(fpr.tolist(), tpr.tolist())))
    return RocPoints(fpr=[p[0] for p in pairs], tpr=[p[1] for p in pairs])


def attack_result(
    *, attack: type[Attack], scores: AttackScores, seed: int, n_bootstrap: int, delta: float
) -> AttackResult:
    """Evaluate one attack's scores with bootstrap CIs and evidence flags."""
    measured = evaluate_scores(
        member_scores=scores.member_scores,
        nonmember_scores=scores.nonmember_scores,
        seed=seed,
        n_bootstrap=n_bootstrap,
        delta=delta,
    )
    return AttackResult(
        name=attack.name,
        family=attack.family,
        threat_model=attack.threat_model,
        description=attack.description,
        reference=attack.reference,
        auc=measured.auc,
        auc_ci=measured.auc_ci,
        advantage=measured.advantage,
        advantage_ci=measured.advantage_ci,
        balanced_accuracy=measured.balanced_accuracy,
        tpr_at_fpr={
            fpr_key(alpha): TprAtFpr(
                tpr=point.tpr,
                ci=point.ci,
                achieved_fpr=point.achieved_fpr,
                achieved_fpr_ci=point.achieved_fpr_ci,
                n_nonmembers=measured.n_nonmembers,
                flag=point.flag,
            )
            for alpha, point in measured.tpr_at_fpr.items()
        },
        epsilon_lower_bound=measured.epsilon_lower_bound,
        n_members=measured.n_members,
        n_nonmembers=measured.n_nonmembers,
        parameters=scores.parameters,
        roc=roc_points(roc=measured.roc),
    )


def select_worst_case(*, attacks: list[AttackResult]) -> WorstCase | None:
    """The attack with the highest TPR@0.1%FPR, ties broken by the highest AUC (DESIGN §4.3)."""
    if not attacks:
        return None
    key = fpr_key(HEADLINE_FPR)
    worst = max(attacks, key=lambda result: (result.tpr_at_fpr[key].tpr, result.auc))
    headline = worst.tpr_at_fpr[key]
    return WorstCase(
        attack=worst.name,
        family=worst.family,
        auc=worst.auc,
        auc_ci=worst.auc_ci,
        advantage=worst.advantage,
        **{
            "tpr_at_fpr_0.001": headline,
            "members_singled_out_at_0.001": int(round(headline.tpr * worst.n_members)),
        },
    )


assert HEADLINE_FPR in FPR_LEVELS
