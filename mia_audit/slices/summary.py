"""The disparity summary over the tested slices: the worst slice against the same attack on everyone, the
members singled out in the worst slices, and the slices where per-slice calibration raises the TPR."""

from __future__ import annotations

import numpy as np

from mia_audit.evaluation.measure import fpr_key
from mia_audit.results import AttackResult, ExposedSlice, SliceResult, SliceSummary, SubpopulationGain, WorstSlice
from mia_audit.slices.dimensions import Slice
from mia_audit.slices.spec import SlicingSpec
from mia_audit.slices.subpopulation import fit_threshold_level
from mia_audit.stats.roc import ScoreLevels

__all__ = ["METHODS", "SINGLED_OUT_FPR", "disparity_summary"]

SINGLED_OUT_FPR = 0.001
METHODS = {
    "auc_ci": "DeLong et al. 1988 variance, Wald interval clipped to [0, 1] (no per-slice bootstrap)",
    "tpr_at_fpr_ci": (
        "threshold band: Clopper–Pearson bounds at the empirical thresholds admitting the binomial "
        "1.25%/98.75% quantiles of α·n0 false positives (conservative, includes threshold variability)"
    ),
    "p_value": "one-sided Mann–Whitney (normal approximation, tie and continuity corrected) of slice AUC > 0.5",
    "p_value_adjusted": "Benjamini–Hochberg over every slice × attack tested",
    "rank": "by the lower bound of the AUC's 95% CI; slices with insufficient evidence are not ranked",
    "worst": (
        "the top-ranked slice among classes, columns and their intersections; slices cut by the model's own "
        "output (correctness, loss percentile) are ranked but not chosen, because their within-slice AUC "
        "partly reflects the selection on the attack signal itself"
    ),
    "subpopulation": "2-fold cross-fitted per-slice threshold vs global threshold at the same FPR (see mia_audit.slices.subpopulation)",
    "members_singled_out": "members above the slice's own 0.1%-FPR threshold, distinct members across the worst slices",
}


def _singled_out(piece: Slice, levels: ScoreLevels, alpha: float) -> np.ndarray:
    """Member indices (audit rows) above the slice's own FPR-α threshold, fitted on the whole slice."""
    member_levels = levels.member_level[piece.member_index]
    threshold = fit_threshold_level(
        member_levels=member_levels,
        nonmember_levels=levels.nonmember_level[piece.nonmember_index],
        n_levels=levels.count,
        alpha=alpha,
    )
    return piece.member_index[member_levels <= threshold]


_FLAG_ORDER = {"ok": 0, "low_evidence": 1, "not_estimable": 2}


def disparity_summary(
    *,
    spec: SlicingSpec,
    ranked: list[dict],
    results: list[SliceResult],
    n_slices: int,
    n_insufficient: int,
    levels_by_attack: dict[str, ScoreLevels],
    global_results: list[AttackResult],
) -> SliceSummary:
    by_attack = {result.name: result for result in global_results}
    # The worst slice is a subpopulation (class, column, their intersections): a slice cut by the model's own
    # output (correctness, loss percentile) is tested and ranked, but its within-slice AUC partly reflects the
    # selection on the attack signal itself, so it only stands in when no other slice was tested.
    candidates = [(entry, result) for entry, result in zip(ranked, results) if not result.by_model_output]
    if not candidates:
        candidates = list(zip(ranked, results))
    worst = None
    if candidates:
        top = candidates[0][1]
        reference = by_attack.get(top.attack)
        worst = WorstSlice(
            name=top.name,
            attack=top.attack,
            n_members=top.n_members,
            n_nonmembers=top.n_nonmembers,
            auc=top.auc,
            auc_ci=top.auc_ci,
            p_value_adjusted=top.p_value_adjusted,
            significant=top.significant,
            global_auc=None if reference is None else reference.auc,
            global_auc_ci=None if reference is None else reference.auc_ci,
            auc_difference=None if reference is None else top.auc - reference.auc,
        )

    # The worst slices: each slice once, with its worst (top-ranked) attack.
    exposed: list[ExposedSlice] = []
    singled_out: set[int] = set()
    flag = "ok"
    seen: set[str] = set()
    key = fpr_key(SINGLED_OUT_FPR)
    for entry, result in candidates:
        if result.name in seen or len(exposed) >= spec.n_worst:
            continue
        seen.add(result.name)
        flagged = _singled_out(entry["_slice"], levels_by_attack[result.attack], SINGLED_OUT_FPR)
        singled_out.update(flagged.tolist())
        headline = result.tpr_at_fpr[key]
        flag = max(flag, headline.flag, key=_FLAG_ORDER.__getitem__)
        exposed.append(
            ExposedSlice(
                name=result.name,
                attack=result.attack,
                n_members=result.n_members,
                n_nonmembers=result.n_nonmembers,
                auc=result.auc,
                auc_ci=result.auc_ci,
                p_value_adjusted=result.p_value_adjusted,
                significant=result.significant,
                **{"tpr_at_fpr_0.001": headline, "members_singled_out_at_0.001": int(flagged.size)},
            )
        )

    gains = sorted(
        (r for r in results if r.subpopulation is not None and r.subpopulation.raises_tpr),
        key=lambda r: -r.subpopulation.gain,
    )
    return SliceSummary(
        n_slices=n_slices,
        n_tested=len(results),
        n_insufficient=n_insufficient,
        n_significant=sum(r.significant for r in results),
        min_records=spec.min_records,
        fdr=spec.fdr,
        methods=dict(METHODS),
        worst=worst,
        worst_slices=exposed,
        members_singled_out_flag=flag,
        n_subpopulation_gains=len(gains),
        subpopulation_gains=[
            SubpopulationGain(
                name=r.name,
                attack=r.attack,
                tpr_global=r.subpopulation.tpr_global,
                tpr_slice=r.subpopulation.tpr_slice,
                gain=r.subpopulation.gain,
            )
            for r in gains[:10]
        ],
        **{"members_singled_out_at_0.001": len(singled_out)},
    )
