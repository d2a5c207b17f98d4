"""Assurance recommendations: what would make this audit's evidence stronger (slices, more non-members, a
stronger attacker) or where a group is more exposed than the population (the deployment checklist, step 6)."""

from __future__ import annotations

from mia_audit.recommend.findings import fmt_ci
from mia_audit.recommend.references import CARLINI_2022, RAIZADA_CHECKLIST
from mia_audit.recommend.rules import Recommendation, RuleInput, rule

__all__ = ["more_nonmembers", "run_shadow_attacks", "validate_slices"]


@rule
def validate_slices(facts: RuleInput) -> Recommendation | None:
    """Checklist step 6: measure slices; where a group is significantly more exposed, say which and act on it."""
    result = facts.result
    summary = result.slice_summary
    meta = result.data.meta_columns
    worst = summary.worst if summary is not None else None
    if worst is not None and worst.significant:
        global_part = (
            f" vs {worst.global_auc:.3f} {fmt_ci(*worst.global_auc_ci)} on everyone" if worst.global_auc is not None and worst.global_auc_ci is not None
            else ""
        )
        return Recommendation(
            id="protect-exposed-slice",
            kind="mitigation",
            title=f"Mitigate the leakage concentrated in slice {worst.name}",
            action=(
                f"Investigate why {worst.name} is more exposed (few or atypical records, label noise, duplicates), "
                "add training data or regularisation for it, and re-audit that slice after any mitigation; report "
                "the group's exposure to the controller."
            ),
            evidence=[
                f"slice {worst.name} ({worst.n_members} members, {worst.n_nonmembers} non-members): {worst.attack} "
                f"AUC {worst.auc:.3f} {fmt_ci(*worst.auc_ci)}{global_part}; Benjamini–Hochberg-adjusted p "
                f"{worst.p_value_adjusted:.2g} over {summary.n_tested} slice × attack tests"
            ],
            effect="Average-case protection can leave vulnerable groups exposed (checklist step 6).",
            references=[RAIZADA_CHECKLIST],
            cost="Analysis of the group and possibly retraining.",
        )
    column_slices = [entry for entry in result.slices if entry.kind in ("column", "intersection")]
    if summary is not None and column_slices:
        return None
    measured = (
        "only classes and slices cut by the model's own output were measured"
        if summary is not None
        else "this audit measured the whole population only: no slice results"
    )
    return Recommendation(
        id="validate-slices",
        kind="assurance",
        title="Validate leakage across slices and subpopulations",
        action=(
            "Re-run the audit with metadata columns (e.g. site, age band) in --meta-columns and --slice-columns, "
            "and check that no group leaks more than the population."
        ),
        evidence=[
            measured + (f" (metadata columns available: {', '.join(meta)})" if meta else " (no metadata columns given)")
        ],
        effect="Avoids protecting the average case while leaving vulnerable groups exposed (checklist step 6).",
        references=[RAIZADA_CHECKLIST],
        cost="Metadata columns in the manifests and enough non-members per slice.",
    )


@rule
def more_nonmembers(facts: RuleInput) -> Recommendation | None:
    worst = facts.result.worst_case
    if worst is None:
        return None
    point = worst.tpr_at_fpr_0_001
    if point.flag == "ok":
        return None
    n = point.n_nonmembers
    return Recommendation(
        id="more-nonmembers",
        kind="assurance",
        title="Add non-members to resolve the 0.1% FPR operating point",
        action=(
            f"Audit with at least 10,000 non-members from the same distribution (10 expected false positives at "
            f"0.1% FPR); this audit had {n:,}."
        ),
        evidence=[f"TPR at 0.1% FPR of the worst case ({worst.attack}) is {point.flag.replace('_', ' ')} with {n:,} non-members"],
        effect="Tighter intervals at the low-FPR operating point, where attacks single out individuals.",
        references=[CARLINI_2022],
        cost="More held-out records from the training distribution.",
    )


@rule
def run_shadow_attacks(facts: RuleInput) -> Recommendation | None:
    step = next((s for s in facts.result.workflow if s.step == 5), None)
    if step is None or step.status == "done":
        return None
    if any(a.family in ("shadow", "reference") for a in facts.result.attacks):
        return None
    return Recommendation(
        id="shadow-attacks",
        kind="assurance",
        title="Test a stronger attacker (shadow / reference models)",
        action="Re-run with shadow-model attacks (e.g. LiRA) before relying on a low measured leakage.",
        evidence=[f"workflow step 5 (shadow / reference attacks) {step.status}: {step.detail}"],
        effect=(
            "Per-example likelihood-ratio attacks are much stronger than global thresholds at low FPR "
            "(Carlini et al.), so the worst case above is a lower bound."
        ),
        references=[CARLINI_2022],
        cost="Compute: training many shadow models of the target's architecture.",
    )
