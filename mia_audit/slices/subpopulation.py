"""Subpopulation attack: an attacker who targets one group calibrates the threshold on that group alone.

A global threshold set for FPR α over everyone can be far too cautious inside a group whose non-members
score low (or too loose where they score high). An attacker interested in one group — one class, one
demographic — calibrates on that group's own reference records instead. This module measures, per slice and
attack, whether that raises the TPR at FPR α (α = 1% by default) compared with the global threshold.

How the thresholds are chosen and evaluated (2-fold cross-fitting, so no threshold is ever evaluated on the
records it was fitted on):

1. Every member and every non-member of the audit is assigned once to fold A or B — members and
   non-members separately, each split in half by a permutation from `seed` (the same folds for every slice
   and attack).
2. For a fit fold F and an evaluation fold E ∈ {(A, B), (B, A)}:
   - the **global threshold** t_F is fitted on all of fold F's records;
   - the **per-slice threshold** t_F,S is fitted on the slice's records in fold F only;
   both by the rule of DESIGN §4.3: among thresholds whose FPR on the fitting records is ≤ α, the one with
   the highest TPR, and among those the highest threshold (fewest records flagged). A threshold is a score
   level; a record is flagged iff its score is ≥ it. If no threshold flags a member within the FPR budget,
   nothing is flagged.
3. Both thresholds are applied to the slice's records in fold E; the true and false positives of the two
   directions are added up. TPR = flagged members / slice members, FPR = flagged non-members / slice
   non-members, both over held-out records only.

The per-slice calibration "raises TPR@α" for a slice when tpr_slice > tpr_global, the held-out FPR of the
per-slice threshold stays within the 97.5% binomial quantile of α (it kept its FPR promise on new
records), and each fold holds at least 10/α of the slice's non-members (flag `ok`: at least ten expected
false positives to calibrate on, the evidence rule of DESIGN §4.3). With fewer the numbers are still
reported, flagged `low_evidence` (under 10/α) or `not_estimable` (under 1/α), but no gain is claimed: a
one-or-two-member difference at an FPR the fold cannot resolve is noise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mia_audit.stats.evidence import evidence_flag, max_false_positives


@dataclass(frozen=True)
class Folds:
    """Fold membership (True = fold A) of every member and non-member of the audit."""

    members_a: np.ndarray
    nonmembers_a: np.ndarray

    @classmethod
    def split(cls, *, n_members: int, n_nonmembers: int, seed: int) -> "Folds":
        rng = np.random.default_rng([seed, 0x5B9])

        def halves(n: int) -> np.ndarray:
            in_a = np.zeros(n, dtype=bool)
            in_a[rng.permutation(n)[: n // 2]] = True
            return in_a

        return cls(members_a=halves(n_members), nonmembers_a=halves(n_nonmembers))


def fit_threshold_level(*, member_levels: np.ndarray, nonmember_levels: np.ndarray, n_levels: int, alpha: float) -> int:
    """Highest level index k (0 = highest score) to flag, i.e. flag iff level ≤ k; −1 flags nothing.

    Chosen on the given (fitting) records only: the highest TPR with FPR ≤ alpha, ties → fewest levels.
    """
    n0 = nonmember_levels.size
    if member_levels.size == 0 or n0 == 0:
        return -1
    tp = np.concatenate([[0], np.cumsum(np.bincount(member_levels, minlength=n_levels))])
    fp = np.concatenate([[0], np.cumsum(np.bincount(nonmember_levels, minlength=n_levels))])
    last = int(np.searchsorted(fp, max_false_positives(alpha, n0), side="right")) - 1
    best = int(np.searchsorted(tp[: last + 1], tp[last], side="left"))
    return best - 1  # point `best` of the curve flags levels 0..best-1


@functools.lru_cache(maxsize=1024)
def _binomial_quantile(n: int, p: float, q: float) -> float:
    return float(stats.binom.ppf(q, n, p))


@dataclass(frozen=True)
class SubpopulationOutcome:
    fpr: float
    tpr_global: float
    fpr_global: float
    tpr_slice: float
    fpr_slice: float
    raises_tpr: bool
    flag: str

    @property
    def gain(self) -> float:
        return self.tpr_slice - self.tpr_global


def global_threshold_levels(
    *, member_levels: np.ndarray, nonmember_levels: np.ndarray, n_levels: int, folds: Folds, alpha: float
) -> tuple[int, int]:
    """The global thresholds fitted on fold A and on fold B (level indices)."""
    return tuple(
        fit_threshold_level(
            member_levels=member_levels[folds.members_a == in_a],
            nonmember_levels=nonmember_levels[folds.nonmembers_a == in_a],
            n_levels=n_levels,
            alpha=alpha,
        )
        for in_a in (True, False)
    )  # type: ignore[return-value]


def subpopulation_attack(
    *,
    member_levels: np.ndarray,
    nonmember_levels: np.ndarray,
    member_in_a: np.ndarray,
    nonmember_in_a: np.ndarray,
    n_levels: int,
    global_levels: tuple[int, int],
    alpha: float,
) -> SubpopulationOutcome:
    """Cross-fitted per-slice vs global threshold for one slice × attack (see the module docstring).

    `member_levels` / `nonmember_levels` are the slice's records' score levels (attack-wide level indices),
    `*_in_a` their fold, `global_levels` the global thresholds fitted on fold A and on fold B.
    """
    n1, n0 = member_levels.size, nonmember_levels.size
    tp_global = fp_global = tp_slice = fp_slice = 0
    for fit_in_a, global_level in zip((True, False), global_levels):
        fit_m, fit_n = member_levels[member_in_a == fit_in_a], nonmember_levels[nonmember_in_a == fit_in_a]
        eval_m, eval_n = member_levels[member_in_a != fit_in_a], nonmember_levels[nonmember_in_a != fit_in_a]
        slice_level = fit_threshold_level(member_levels=fit_m, nonmember_levels=fit_n, n_levels=n_levels, alpha=alpha)
        tp_global += int(np.count_nonzero(eval_m <= global_level))
        fp_global += int(np.count_nonzero(eval_n <= global_level))
        tp_slice += int(np.count_nonzero(eval_m <= slice_level))
        fp_slice += int(np.count_nonzero(eval_n <= slice_level))
    smallest_fold = min(int(np.count_nonzero(nonmember_in_a)), int(np.count_nonzero(~nonmember_in_a)))
    flag = evidence_flag(n_nonmembers=smallest_fold, alpha=alpha)
    fpr_limit = _binomial_quantile(n0, alpha, 0.975) / n0 if n0 else 0.0
    tpr_global, tpr_slice = tp_global / n1, tp_slice / n1
    fpr_slice = fp_slice / n0
    return SubpopulationOutcome(
        fpr=alpha,
        tpr_global=tpr_global,
        fpr_global=fp_global / n0,
        tpr_slice=tpr_slice,
        fpr_slice=fpr_slice,
        raises_tpr=bool(flag == "ok" and tpr_slice > tpr_global and fpr_slice <= fpr_limit),
        flag=flag,
    )
