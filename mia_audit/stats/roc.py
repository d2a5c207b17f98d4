"""The ROC of a score-threshold attack, its AUC, and TPR at a fixed FPR.

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

Pure numpy / scipy; no scikit-learn at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mia_audit.stats.evidence import evidence_flag
from mia_audit.stats.validation import as_scores, check_alpha

__all__ = ["RocCurve", "ScoreLevels", "TprAtFpr", "auc_score", "roc_curve", "score_levels", "tpr_at_fpr"]


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


@dataclass(frozen=True, eq=False)
class ScoreLevels:
    """Distinct score levels in decreasing order and each record's level index (0 = highest)."""

    values: np.ndarray
    member_level: np.ndarray
    nonmember_level: np.ndarray

    @property
    def count(self) -> int:
        return int(self.values.size)


def score_levels(*, member_scores: np.ndarray, nonmember_scores: np.ndarray) -> ScoreLevels:
    """Map every score to its distinct level, 0 for the highest (one sort of the pooled scores).

    Everything computed "per level" (the ROC, the bootstrap's resamples, the per-slice counts) starts here.
    """
    members = np.asarray(member_scores, dtype=np.float64)
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64)
    ascending, inverse = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    level = ascending.size - 1 - inverse.reshape(-1)  # 0 for the highest score
    return ScoreLevels(
        values=ascending[::-1].copy(),
        member_level=level[: members.size],
        nonmember_level=level[members.size :],
    )


def roc_curve(*, member_scores, nonmember_scores) -> RocCurve:
    """ROC over all distinct thresholds (``drop_intermediate=False`` in scikit-learn's terms).

    O(N log N): one sort of the pooled scores, then cumulative counts per distinct level.
    """
    members = as_scores(member_scores, "member_scores")
    nonmembers = as_scores(nonmember_scores, "nonmember_scores")
    levels = score_levels(member_scores=members, nonmember_scores=nonmembers)
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
    members = as_scores(member_scores, "member_scores")
    nonmembers = as_scores(nonmember_scores, "nonmember_scores")
    n1, n0 = members.size, nonmembers.size
    ranks = stats.rankdata(np.concatenate([members, nonmembers]), method="average")
    u_statistic = float(np.sum(ranks[:n1])) - n1 * (n1 + 1) / 2.0
    return u_statistic / (n1 * n0)


@dataclass(frozen=True)
class TprAtFpr:
    """TPR@alpha = max{TPR_k : FPR_k <= alpha}, the FPR achieved there, its evidence flag and intervals.

    The one internal form of "TPR at a fixed FPR": the point comes from :func:`tpr_at_fpr` (or the same
    rule on level counts), the intervals from whichever method the caller uses (a stratified bootstrap for
    the audit, a threshold band for slices); ``None`` until one is attached. The flag is filled in even when
    the level is not estimable, with the numbers (DESIGN.md section 4.3).
    """

    alpha: float
    tpr: float
    achieved_fpr: float
    flag: str  # "ok" | "low_evidence" | "not_estimable"
    threshold: float | None = None  # score threshold of the point (not known from level counts alone)
    ci: tuple[float, float] | None = None  # interval of the TPR
    achieved_fpr_ci: tuple[float, float] | None = None  # Clopper-Pearson interval of the achieved FPR


def tpr_at_fpr(*, roc: RocCurve, alpha: float) -> TprAtFpr:
    """TPR at FPR <= alpha on ``roc``, without interpolation (Carlini et al., IEEE S&P 2022).

    Among points with FPR_k <= alpha take the highest TPR; among points tying on it take the one with
    the lowest FPR (the highest threshold). With no positive prediction allowed the result is the
    (0, 0) sentinel point at threshold +inf, or a higher TPR if some threshold reaches it with no
    false positive. ``achieved_fpr <= alpha`` always holds.
    """
    alpha = check_alpha(alpha)
    last = int(np.searchsorted(roc.fpr, alpha, side="right")) - 1  # fpr is non-decreasing; fpr[0] = 0
    best = int(np.searchsorted(roc.tpr[: last + 1], roc.tpr[last], side="left"))
    return TprAtFpr(
        alpha=alpha,
        tpr=float(roc.tpr[best]),
        achieved_fpr=float(roc.fpr[best]),
        flag=evidence_flag(n_nonmembers=roc.n_nonmembers, alpha=alpha),
        threshold=float(roc.thresholds[best]),
    )
