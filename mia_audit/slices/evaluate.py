"""Slice-level leakage: the same attacks measured on subpopulations (DESIGN §2 step 6; seeds/001 step 6).

An average AUC of 0.55 can hide a class or a demographic group at 0.8. The audit records are cut into slices by
the declarative `SlicingSpec` (`mia_audit.slices.dimensions`); this module evaluates every
attack present in the run's per-record scores on every slice — metric, label-only and, when present,
shadow/reference attacks alike, since all arrive as `AttackScores` — and summarises the disparity.

Evidence rules:
- a slice with fewer than `min_records` members or non-members is `insufficient_evidence`: reported with its
  counts, not tested and not ranked;
- every other slice × attack gets a one-sided Mann–Whitney p-value of "slice AUC > 0.5", adjusted by
  Benjamini–Hochberg over all of them, and is significant when the adjusted p ≤ `fdr`;
- slices are ranked by the lower bound of the AUC's 95% CI (DeLong), not the point estimate, so a tiny slice
  with a lucky AUC does not outrank a large, clearly leaking one.

Cost: each attack's scores are mapped once to distinct levels (one sort); a slice × attack is then a few
bincounts over those levels plus O(levels) arithmetic (`mia_audit.stats.level_counts`), with analytic intervals
instead of a per-slice bootstrap. benchmarks/bench_slices.py measures the overhead.

Privacy: slice values are category labels and quantile edges (aggregates); outer bins are open-ended so no
single record's minimum or maximum is shown. No record id or per-record score leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mia_audit.attacks import AttackScores
from mia_audit.evaluation.measure import fpr_key
from mia_audit.results import AttackResult, SliceResult, SliceSummary, SubpopulationResult, TprAtFpr
from mia_audit.slices.dimensions import Slice
from mia_audit.slices.spec import SlicingSpec
from mia_audit.slices.subpopulation import Folds, global_threshold_levels, subpopulation_attack
from mia_audit.slices.summary import disparity_summary
from mia_audit.stats import FPR_LEVELS
from mia_audit.stats.level_counts import LevelCounts, SliceStatistics, benjamini_hochberg, slice_statistics
from mia_audit.stats.roc import ScoreLevels, score_levels

__all__ = ["SliceEvaluation", "evaluate_slices"]


@dataclass(frozen=True)
class SliceEvaluation:
    """`slices` for results.json (ranked first, worst first) and the disparity summary."""

    slices: list[SliceResult]
    summary: SliceSummary


def _levels(scores: AttackScores) -> ScoreLevels:
    """Each record's distinct-score level, 0 = the highest score (one sort per attack)."""
    members = np.asarray(scores.member_scores, dtype=np.float64)
    nonmembers = np.asarray(scores.nonmember_scores, dtype=np.float64)
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        raise ValueError("attack scores contain NaN")
    return score_levels(member_scores=members, nonmember_scores=nonmembers)


def _accuracy(correct: np.ndarray, index: np.ndarray) -> float | None:
    return float(np.mean(correct[index])) if index.size else None


def _tpr_entries(stats_: SliceStatistics) -> dict[str, TprAtFpr]:
    return {
        fpr_key(alpha): TprAtFpr(
            tpr=band.tpr,
            ci=band.ci,
            achieved_fpr=band.achieved_fpr,
            achieved_fpr_ci=band.achieved_fpr_ci,
            n_nonmembers=stats_.n_nonmembers,
            flag=band.flag,
        )
        for alpha, band in stats_.tpr_at_fpr.items()
    }


def evaluate_slices(
    *,
    spec: SlicingSpec,
    slices: list[Slice],
    record_scores: dict[str, AttackScores],
    member_correct: np.ndarray,
    nonmember_correct: np.ndarray,
    global_results: list[AttackResult] | None = None,
    seed: int = 0,
    fpr_levels=FPR_LEVELS,
) -> SliceEvaluation:
    """Evaluate every slice × attack, apply the evidence rules, rank, and summarise the disparity."""
    member_correct = np.asarray(member_correct, dtype=bool)
    nonmember_correct = np.asarray(nonmember_correct, dtype=bool)
    folds = Folds.split(n_members=member_correct.size, n_nonmembers=nonmember_correct.size, seed=seed)
    tested: list[dict] = []
    insufficient: list[SliceResult] = []
    levels_by_attack: dict[str, ScoreLevels] = {}
    for attack, scores in record_scores.items():
        levels = _levels(scores)
        levels_by_attack[attack] = levels
        global_levels = global_threshold_levels(
            member_levels=levels.member_level,
            nonmember_levels=levels.nonmember_level,
            n_levels=levels.count,
            folds=folds,
            alpha=spec.subpopulation_fpr,
        )
        for piece in slices:
            common = dict(
                name=piece.name,
                kind=piece.kind,
                spec=piece.spec,
                value=piece.value,
                attack=attack,
                by_model_output=piece.by_model_output,
                n_members=int(piece.member_index.size),
                n_nonmembers=int(piece.nonmember_index.size),
                member_accuracy=_accuracy(member_correct, piece.member_index),
                nonmember_accuracy=_accuracy(nonmember_correct, piece.nonmember_index),
            )
            if common["member_accuracy"] is not None and common["nonmember_accuracy"] is not None:
                common["accuracy_gap"] = common["member_accuracy"] - common["nonmember_accuracy"]
            if min(piece.member_index.size, piece.nonmember_index.size) < spec.min_records:
                insufficient.append(SliceResult(**common, flag="insufficient_evidence"))
                continue
            member_levels = levels.member_level[piece.member_index]
            nonmember_levels = levels.nonmember_level[piece.nonmember_index]
            measured = slice_statistics(
                LevelCounts.from_levels(
                    member_levels=member_levels, nonmember_levels=nonmember_levels, n_levels=levels.count
                ),
                fpr_levels=fpr_levels,
            )
            outcome = subpopulation_attack(
                member_levels=member_levels,
                nonmember_levels=nonmember_levels,
                member_in_a=folds.members_a[piece.member_index],
                nonmember_in_a=folds.nonmembers_a[piece.nonmember_index],
                n_levels=levels.count,
                global_levels=global_levels,
                alpha=spec.subpopulation_fpr,
            )
            tested.append(
                dict(
                    common,
                    flag="ok",
                    auc=measured.auc,
                    auc_ci=measured.auc_ci,
                    advantage=measured.advantage,
                    tpr_at_fpr=_tpr_entries(measured),
                    p_value=measured.p_value,
                    subpopulation=SubpopulationResult(
                        fpr=outcome.fpr,
                        tpr_global=outcome.tpr_global,
                        fpr_global=outcome.fpr_global,
                        tpr_slice=outcome.tpr_slice,
                        fpr_slice=outcome.fpr_slice,
                        gain=outcome.gain,
                        raises_tpr=outcome.raises_tpr,
                        flag=outcome.flag,
                    ),
                    _slice=piece,
                )
            )

    adjusted = benjamini_hochberg([entry["p_value"] for entry in tested])
    for entry, p_adjusted in zip(tested, adjusted):
        entry["p_value_adjusted"] = float(p_adjusted)
        entry["significant"] = bool(p_adjusted <= spec.fdr)
    ranked = sorted(tested, key=lambda e: (-e["auc_ci"][0], -e["auc"], e["p_value"]))
    for rank, entry in enumerate(ranked, start=1):
        entry["rank"] = rank
    results = [SliceResult(**{k: v for k, v in entry.items() if k != "_slice"}) for entry in ranked]
    summary = disparity_summary(
        spec=spec,
        ranked=ranked,
        results=results,
        n_slices=len(slices),
        n_insufficient=len({result.name for result in insufficient}),
        levels_by_attack=levels_by_attack,
        global_results=global_results or [],
    )
    return SliceEvaluation(slices=results + insufficient, summary=summary)
