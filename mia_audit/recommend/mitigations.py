"""Mitigations the measured leakage calls for: reduce overfitting, do not rely on masking, label smoothing,
DP-SGD, output hardening (Li, Li & Ribeiro 2021; Azazoglu 2025; Abadi et al. 2016; the deployment checklist)."""

from __future__ import annotations

from mia_audit.recommend.findings import assess_leakage, attack_by_name, fmt_ci, strongest, uses_scores
from mia_audit.recommend.references import (
    ABADI_2016,
    AZAZOGLU_2025,
    CHOQUETTE_2021,
    KAIROUZ_2015,
    LI_2021,
    RAIZADA_CHECKLIST,
    SHOKRI_2017,
    SZEGEDY_2016,
)
from mia_audit.recommend.rules import Recommendation, RuleInput, rule
from mia_audit.results import AuditResult

__all__ = [
    "LARGE_GAP", "MATERIAL_ADVANTAGE", "differential_privacy", "harden_outputs", "label_smoothing",
    "masking_cannot_fix", "reduce_overfitting",
]

# Thresholds, stated in the report next to each recommendation they trigger.
LARGE_GAP = 0.05  # generalization gap (member − non-member accuracy) treated as large
MATERIAL_ADVANTAGE = 0.02  # baseline-attack advantage that output masking cannot remove


def _gap_line(result: AuditResult) -> str:
    utility = result.utility
    return (
        f"member accuracy {utility.member_accuracy:.3f} vs non-member accuracy {utility.nonmember_accuracy:.3f}: "
        f"generalization gap {utility.generalization_gap:+.3f}"
    )


def _leaking_score_attack(result: AuditResult):
    leaking = [a for a in result.attacks if uses_scores(a) and a.auc_ci[0] > 0.5]
    return strongest(leaking)


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
