"""Mitigation recommendations from an AuditResult (and the optional report context).

Each rule looks at the measured evidence and either stays silent or returns one `Recommendation` that
says what to do, the evidence line(s) that triggered it, the expected effect with a citation, and the
cost. No rule fires without evidence from this audit. The rules are grounded in the seed documents:

- Li, Li & Ribeiro 2021 (CODASPY'21): vulnerability tracks the generalization gap; reduce overfitting
  (regularization, mix-up, MMD + mix-up); hiding prediction information (top-k, temperature) has limited
  effect, and the label-only baseline attack keeps an advantage equal to the gap (§3, §4.1, Table 3).
- Azazoglu 2025 (Brown CSCI2980): label smoothing gave the best privacy/utility trade-off; top-3
  confidence masking barely moved attack accuracy (Table I).
- The membership-inference defenses taxonomy and Raizada's deployment checklist: DP-SGD when a formal
  guarantee is required (Abadi et al. 2016), output hardening as defense in depth, validate slices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mia_audit.context import ReportContext
from mia_audit.defenses.choice import ACCEPTABLE_UTILITY_DROP, best_tradeoff
from mia_audit.recommend.findings import assess_leakage, attack_by_name, fmt_ci, strongest, uses_scores
from mia_audit.results import AuditResult

# Thresholds, stated in the report next to each recommendation they trigger.
LARGE_GAP = 0.05  # generalization gap (member − non-member accuracy) treated as large
MATERIAL_ADVANTAGE = 0.02  # baseline-attack advantage that output masking cannot remove

LI_2021 = "Li, Li & Ribeiro 2021, Membership Inference Attacks and Defenses in Classification Models, CODASPY'21"
AZAZOGLU_2025 = "Azazoglu 2025, Defending Against Membership Inference Attacks, Brown University CSCI2980"
ABADI_2016 = "Abadi et al. 2016, Deep Learning with Differential Privacy, ACM CCS"
KAIROUZ_2015 = "Kairouz, Oh & Viswanath 2015, The Composition Theorem for Differential Privacy, ICML"
SHOKRI_2017 = "Shokri et al. 2017, Membership Inference Attacks against Machine Learning Models, IEEE S&P"
CHOQUETTE_2021 = "Choquette-Choo et al. 2021, Label-Only Membership Inference Attacks, ICML"
CARLINI_2022 = "Carlini et al. 2022, Membership Inference Attacks From First Principles, IEEE S&P"
RAIZADA_CHECKLIST = "Raizada, Defending Against Membership Inference and Privacy Attacks, deployment checklist"
SZEGEDY_2016 = "Szegedy et al. 2016, Rethinking the Inception Architecture (label smoothing), CVPR"


class Recommendation(BaseModel):
    """One recommended action with the evidence that triggered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["mitigation", "assurance"]
    title: str
    action: str
    evidence: list[str]
    effect: str
    references: list[str]
    cost: str


@dataclass(frozen=True)
class RuleInput:
    result: AuditResult
    context: ReportContext | None


Rule = Callable[[RuleInput], Recommendation | None]
_RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    """Register a recommendation rule; rules run in registration order (which is the report's order)."""
    _RULES.append(function)
    return function


def registered_rules() -> list[Rule]:
    return list(_RULES)


def recommend(*, result: AuditResult, context: ReportContext | None = None) -> list[Recommendation]:
    """Every recommendation whose trigger is met by this result, in a fixed order."""
    facts = RuleInput(result=result, context=context)
    return [item for item in (check(facts) for check in _RULES) if item is not None]


def _gap_line(result: AuditResult) -> str:
    utility = result.utility
    return (
        f"member accuracy {utility.member_accuracy:.3f} vs non-member accuracy {utility.nonmember_accuracy:.3f}: "
        f"generalization gap {utility.generalization_gap:+.3f}"
    )


def _leaking_score_attack(result: AuditResult):
    leaking = [a for a in result.attacks if uses_scores(a) and a.auc_ci[0] > 0.5]
    return strongest(leaking)


def _defense_auc(row) -> str:
    return f"worst-case AUC {row.worst_auc:.3f} {fmt_ci(*row.worst_auc_ci)} ({row.worst_attack})"


def _defense_evidence(row, reference) -> list[str]:
    """The measured lines of one step-7 row against the retrained baseline (report section 8)."""
    lines = [
        f"{row.label}: {_defense_auc(row)} vs {_defense_auc(reference)} for the retrained baseline",
        f"{row.label}: test accuracy {row.test_accuracy:.3f} vs {reference.test_accuracy:.3f} (utility drop "
        f"{row.utility_drop:+.3f}); generalization gap {row.generalization_gap:+.3f} vs {reference.generalization_gap:+.3f}",
    ]
    if row.baseline_attack_advantage is not None and row.baseline_attack_advantage_ci is not None:
        lines.append(
            f"{row.label}: label-only baseline attack advantage {row.baseline_attack_advantage:+.3f} "
            f"{fmt_ci(*row.baseline_attack_advantage_ci)}"
        )
    if row.dp_epsilon is not None:
        lines.append(f"{row.label}: DP accountant ε = {row.dp_epsilon:.2f} at δ = {row.dp_delta:g}")
    if row.worst_auc_ci[1] >= reference.worst_auc_ci[0]:
        lines.append("the two AUC intervals overlap: the improvement is within this audit's measurement uncertainty")
    return lines


@rule
def measured_defense(facts: RuleInput) -> Recommendation | None:
    """Step 7 ran: name the measured best trade-off (or say that no tested defense helped at acceptable cost)."""
    comparison = facts.result.defenses
    if comparison is None:
        return None
    reference = next((r for r in comparison.rows if r.role == "retrained_baseline" and r.status == "done"), None)
    best = best_tradeoff(rows=comparison.rows)
    if reference is None or best is None or reference.worst_auc is None or best.worst_auc is None:
        return None
    references = list(dict.fromkeys(d.reference for d in best.defenses))
    trained = any(d.kind == "training" for d in best.defenses)
    masking_only = all(d.kind == "output" for d in best.defenses)
    if best.worst_auc < reference.worst_auc:
        return Recommendation(
            id="measured-best-defense",
            kind="mitigation",
            title=f"Adopt the measured best trade-off: {best.label}",
            action=(
                f"Deploy {best.label}"
                + (" (retrain with the same recipe; --export-defended DIR writes the variant measured here as ONNX)"
                   if trained else " on the deployed model's outputs")
                + ", then re-audit the model actually shipped with this tool."
                + (" It hides confidences only: the label-only baseline attack keeps its advantage (section 8)."
                   if masking_only else "")
            ),
            evidence=_defense_evidence(best, reference),
            effect=(
                f"Measured on this model by an adaptive attacker: the worst-case AUC falls by "
                f"{reference.worst_auc - best.worst_auc:.3f}, i.e. {best.effectiveness:+.1%} of the retrained "
                "baseline's excess over chance (section 8, effectiveness)."
            ),
            references=references + [comparison_source()],
            cost=(
                f"Measured utility drop {best.utility_drop:+.3f} in test accuracy"
                + ("; one retraining run with the same recipe" if trained else "; no retraining")
                + "."
            ),
        )
    cheapest_gain = min(
        (r for r in comparison.rows if r.role == "variant" and r.status == "done" and r.worst_auc is not None
         and r.worst_auc < reference.worst_auc),
        key=lambda r: (r.utility_drop if r.utility_drop is not None else 1.0, r.worst_auc),
        default=None,
    )
    if cheapest_gain is not None:
        evidence = _defense_evidence(cheapest_gain, reference)
    else:
        evidence = [
            f"retrained baseline: {_defense_auc(reference)}, test accuracy {reference.test_accuracy:.3f}; no tested "
            "variant has a lower worst-case AUC"
        ]
    return Recommendation(
        id="no-measured-defense",
        kind="mitigation",
        title="No tested defense lowered the attack at an acceptable utility cost",
        action=(
            "Weigh the measured costs in section 8"
            + (f" ({cheapest_gain.label} lowers the attack at a utility drop of {cheapest_gain.utility_drop:+.3f})"
               if cheapest_gain is not None else "")
            + "; or test further defenses or parameters with --defenses and re-audit."
        ),
        evidence=evidence,
        effect=(
            f"None of the Pareto-optimal variants losing at most {ACCEPTABLE_UTILITY_DROP:.2f} of test accuracy beat "
            "the retrained baseline's worst-case AUC in this audit."
        ),
        references=[comparison_source()],
        cost="A decision on the utility the deployment can give up, or further retraining runs.",
    )


def comparison_source() -> str:
    return "this audit, section 8 (defense comparison, workflow step 7)"


@rule
def reduce_overfitting(facts: RuleInput) -> Recommendation | None:
    gap = facts.result.utility.generalization_gap
    if gap < LARGE_GAP:
        return None
    return Recommendation(
        id="reduce-overfitting",
        kind="mitigation",
        title="Reduce overfitting before anything else",
        action=(
            "Retrain with stronger regularization (weight decay, dropout, early stopping) and mix-up training; "
            "where mix-up alone does not close the gap, add the MMD regularizer (MMD + mix-up). Re-run this "
            "audit on the retrained model."
        ),
        evidence=[f"{_gap_line(facts.result)} (≥ {LARGE_GAP:.2f})"],
        effect=(
            "Membership leakage tracks the generalization gap. In Li et al. (Table 3) MMD + mix-up cut the "
            "highest attack advantage on CIFAR-10 from 0.158 to 0.073 on average (−53.8%) and the gap from "
            "0.215 to 0.098, with test accuracy within 1%."
        ),
        references=[LI_2021],
        cost=(
            "Retraining and tuning; mix-up can cost accuracy on binary/tabular features (Li et al., PURCHASE-100, "
            "where MMD alone was used instead)."
        ),
    )


@rule
def masking_cannot_fix(facts: RuleInput) -> Recommendation | None:
    baseline = attack_by_name(facts.result, "baseline")
    if baseline is None or baseline.advantage < MATERIAL_ADVANTAGE or baseline.advantage_ci[0] <= 0:
        return None
    return Recommendation(
        id="masking-is-not-enough",
        kind="mitigation",
        title="Do not rely on confidence masking alone",
        action=(
            "Do not treat top-k outputs, rounding, temperature scaling or label-only outputs as the fix: "
            "reduce the generalization gap itself (previous recommendation)."
        ),
        evidence=[
            f"baseline (label-only) attack advantage {baseline.advantage:+.3f} {fmt_ci(*baseline.advantage_ci)} "
            f"(≥ {MATERIAL_ADVANTAGE:.2f}, interval excludes 0)",
            _gap_line(facts.result),
        ],
        effect=(
            "The baseline attack needs only the predicted label, so its advantage — equal to the generalization "
            "gap — survives any output masking (Li et al. §4.1). In Azazoglu (Table I) top-3 masking moved "
            "ML-Leaks attack accuracy only from 0.82 to 0.80."
        ),
        references=[LI_2021, AZAZOGLU_2025],
        cost="None to follow; it prevents spending effort on a mitigation that cannot reach this attack.",
    )


@rule
def label_smoothing(facts: RuleInput) -> Recommendation | None:
    attack = _leaking_score_attack(facts.result)
    if attack is None:
        return None
    return Recommendation(
        id="label-smoothing",
        kind="mitigation",
        title="Consider label smoothing as a low-cost trade-off",
        action=(
            "Retrain with label smoothing (e.g. 0.1 of the target mass spread over the other classes) to make "
            "member outputs less peaked, then re-audit and compare test accuracy."
        ),
        evidence=[
            f"score-based attack {attack.name}: AUC {attack.auc:.3f} {fmt_ci(*attack.auc_ci)} excludes 0.5"
        ],
        effect=(
            "In Azazoglu (Table I, CIFAR-10) label smoothing lowered ML-Leaks attack accuracy from 0.82 to 0.72 "
            "with target accuracy unchanged (0.60), the best privacy/utility trade-off of the defenses tested; "
            "dropout reached 0.51 but cut target accuracy to 0.49."
        ),
        references=[AZAZOGLU_2025, SZEGEDY_2016],
        cost="Low: one hyper-parameter and a retraining run; less confident predictions where calibration matters.",
    )


@rule
def differential_privacy(facts: RuleInput) -> Recommendation | None:
    context = facts.context
    required = bool(context and (context.formal_guarantee_required or context.special_category))
    leakage = assess_leakage(facts.result)
    with_bound = [a for a in facts.result.attacks if a.epsilon_lower_bound > 0]
    if not leakage.detected and not required:
        return None
    evidence = []
    if with_bound:
        top = max(with_bound, key=lambda a: (a.epsilon_lower_bound, a.name))
        delta = facts.result.config.get("delta", 1e-5)
        evidence.append(
            f"empirical ε lower bound {top.epsilon_lower_bound:.2f} ({top.name} attack, δ = {delta:g}): a "
            f"heuristic lower bound for this model, not a guarantee"
        )
    if leakage.detected:
        evidence.append("leakage detected: " + leakage.evidence[0])
    if context and context.special_category:
        evidence.append("context: the training data are special-category data / PHI")
    if context and context.formal_guarantee_required:
        evidence.append("context: a formal privacy guarantee is required")
    title = "Train with DP-SGD" if required else "Use DP-SGD if a formal guarantee is required"
    return Recommendation(
        id="dp-sgd",
        kind="mitigation",
        title=title,
        action=(
            "Train with DP-SGD (per-example gradient clipping and Gaussian noise, e.g. Opacus) at a target "
            "(ε, δ) with its accountant, and report the guarantee alongside this audit."
        ),
        evidence=evidence,
        effect=(
            "The only option here with a formal bound for every record: under (ε, δ)-DP every membership attack "
            "has TPR ≤ e^ε·FPR + δ at every FPR (Kairouz et al.). Li et al. note that a meaningful guarantee "
            "(ε < 5) needs large noise."
        ),
        references=[ABADI_2016, KAIROUZ_2015, LI_2021],
        cost="High: accuracy loss (largest on small data sets), privacy accounting and hyper-parameter tuning.",
    )


@rule
def harden_outputs(facts: RuleInput) -> Recommendation | None:
    if facts.result.config.get("exposure", "scores") != "scores":
        return None
    if facts.context is not None and facts.context.exposure == "labels":
        return None  # the deployment already returns labels only (the threat model notes the mismatch)
    attack = _leaking_score_attack(facts.result)
    if attack is None:
        return None
    label_only = strongest([a for a in facts.result.attacks if not uses_scores(a)])
    evidence = [
        f"the audit assumed score exposure and score-based attack {attack.name} reaches AUC {attack.auc:.3f} "
        f"{fmt_ci(*attack.auc_ci)}"
    ]
    if label_only is not None:
        evidence.append(
            f"label-only attacks remain: {label_only.name} AUC {label_only.auc:.3f} {fmt_ci(*label_only.auc_ci)}"
        )
    return Recommendation(
        id="harden-outputs",
        kind="mitigation",
        title="Harden the outputs as defense in depth",
        action=(
            "Return only the predicted label (or top-k without fine-grained scores) where clients do not need "
            "probabilities; rate-limit and monitor queries. Re-audit with --exposure labels to measure what remains."
        ),
        evidence=evidence,
        effect=(
            "Removes the confidence signal score-based attacks read; it does not reduce label-only attacks "
            "(baseline, Choquette-Choo et al.), so it complements, never replaces, reducing overfitting."
        ),
        references=[RAIZADA_CHECKLIST, SHOKRI_2017, CHOQUETTE_2021],
        cost="No accuracy cost; clients lose access to probabilities.",
    )


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


__all__ = ["Recommendation", "RuleInput", "recommend", "registered_rules", "rule", "LARGE_GAP", "MATERIAL_ADVANTAGE"]
