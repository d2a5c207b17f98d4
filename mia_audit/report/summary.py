"""The report's executive summary and attack table: the verdict line, the headline measurements, one row per
attack — formatted from results.json values alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mia_audit.recommend.findings import assess_leakage, attack_by_name
from mia_audit.report.format import Cell, Headline, ci, num, pct, pct_ci, signed, tpr_cell
from mia_audit.results import AttackResult, AuditResult, TprAtFpr

__all__ = ["AttackRow", "attack_rows", "headlines", "verdict"]

FPR_LEVELS = ("0.001", "0.01", "0.1")


@dataclass(frozen=True)
class AttackRow:
    name: str
    family: str
    threat_model: str
    description: str
    reference: str
    parameters: str
    is_worst: bool
    auc: Cell
    tpr: dict[str, Cell]
    advantage: Cell
    balanced_accuracy: str
    epsilon: str


def _parameters(attack: AttackResult) -> str:
    return ", ".join(f"{key} = {value}" for key, value in sorted(attack.parameters.items())) or "–"


def attack_rows(result: AuditResult) -> list[AttackRow]:
    worst = result.worst_case.attack if result.worst_case else None
    ordered = sorted(result.attacks, key=lambda a: (-a.tpr_at_fpr["0.001"].tpr, -a.auc, a.name))
    return [
        AttackRow(
            name=attack.name,
            family=attack.family,
            threat_model=attack.threat_model,
            description=attack.description,
            reference=attack.reference,
            parameters=_parameters(attack),
            is_worst=attack.name == worst,
            auc=Cell(value=num(attack.auc), interval=ci(attack.auc_ci)),
            tpr={key: tpr_cell(attack.tpr_at_fpr[key]) for key in FPR_LEVELS if key in attack.tpr_at_fpr},
            advantage=Cell(value=signed(attack.advantage), interval=ci(attack.advantage_ci)),
            balanced_accuracy=num(attack.balanced_accuracy),
            epsilon=num(attack.epsilon_lower_bound, 2),
        )
        for attack in ordered
    ]


def _flag_note(point: TprAtFpr) -> str:
    n = point.n_nonmembers
    if point.flag == "not_estimable":
        return f"not estimable: {n:,} non-members cannot resolve a 0.1% FPR (at least 1,000 needed)"
    if point.flag == "low_evidence":
        return f"low evidence: {n:,} non-members give fewer than 10 expected false positives at 0.1% FPR"
    return f"{n:,} non-members"


def _gap_interval(result: AuditResult) -> str:
    baseline = attack_by_name(result, "baseline")
    if baseline is not None and abs(baseline.advantage - result.utility.generalization_gap) < 1e-9:
        return ci(baseline.advantage_ci)
    return ""


def headlines(result: AuditResult) -> list[Headline]:
    utility = result.utility
    gap = Headline(
        label="Generalization gap (member − non-member accuracy)",
        value=signed(utility.generalization_gap),
        interval=_gap_interval(result),
        note=f"member accuracy {num(utility.member_accuracy)}, non-member accuracy {num(utility.nonmember_accuracy)}"
        + ("; interval from the baseline attack, whose advantage equals the gap" if _gap_interval(result) else ""),
    )
    worst = result.worst_case
    if worst is None:
        return [gap]
    attack = attack_by_name(result, worst.attack)
    point = worst.tpr_at_fpr_0_001
    n_members = attack.n_members if attack else result.data.members.n
    rows = [
        Headline(
            label="Worst-case attack",
            value=f"{worst.attack} ({worst.family})",
            text=True,
            note=(attack.threat_model if attack else "")
            + "; highest TPR at 0.1% FPR among the attacks run, ties broken by AUC",
        ),
        Headline(label="Worst-case AUC", value=num(worst.auc), interval=ci(worst.auc_ci), note="0.5 = chance"),
        Headline(
            label="Worst-case TPR at 0.1% FPR",
            value="not estimable" if point.flag == "not_estimable" else pct(point.tpr),
            interval="" if point.flag == "not_estimable" else pct_ci(point.ci),
            note=f"achieved FPR {pct(point.achieved_fpr, 3)}; {_flag_note(point)}",
        ),
        Headline(
            label="Members an attacker could single out at 0.1% FPR",
            value="not estimable" if point.flag == "not_estimable" else f"{worst.members_singled_out_at_0_001:,} of {n_members:,}",
            note="round(TPR at 0.1% FPR × members audited)",
        ),
        Headline(
            label="Worst-case advantage (TPR − FPR)",
            value=signed(worst.advantage),
            interval=ci(attack.advantage_ci) if attack else "",
            note="Yeom et al.'s membership advantage; Li et al.'s figures are half of it",
        ),
        gap,
    ]
    return rows


def verdict(result: AuditResult, policy: Any) -> tuple[str, str, str, str]:
    """(kind, title, sentence, note) for the executive summary's verdict line.

    The measured finding always leads; when a policy judged the run its outcome is added to the title and
    the note says which policy decided and how (details in section 10).
    """
    worst = result.worst_case
    if policy:
        outcome = str(policy.get("verdict", "see section 10")).upper()
        note = (
            f"Policy outcome: {outcome} under the {policy.get('policy', 'policy')}: {policy.get('summary', '')} "
            "Section 10 lists every rule with the value, CI and threshold it was judged on."
        )
    else:
        outcome = None
        note = (
            "No policy was applied: this report measures leakage; whether it is acceptable is for the controller "
            "to decide (a policy file makes the tool decide and set its exit code)."
        )

    def titled(title: str) -> str:
        return f"{title} — policy outcome: {outcome}" if outcome else title

    if worst is None:
        return ("no-attacks", titled("No attack was run"), "No membership-inference attack could be run on this model.", note)
    assessment = assess_leakage(result)
    point = worst.tpr_at_fpr_0_001
    tpr_text = (
        "TPR at 0.1% FPR is not estimable with this many non-members"
        if point.flag == "not_estimable"
        else f"at 0.1% FPR it flags {pct(point.tpr)} of members (95% CI {pct_ci(point.ci)}"
        + (", low evidence" if point.flag == "low_evidence" else "")
        + f"), i.e. {worst.members_singled_out_at_0_001:,} members singled out"
    )
    sentence = (
        f"The worst-case attack, {worst.attack} ({worst.family}), separates members from non-members with "
        f"AUC {num(worst.auc)} (95% CI {ci(worst.auc_ci)}); {tpr_text}. Generalization gap "
        f"{signed(result.utility.generalization_gap)}."
    )
    if assessment.detected:
        return ("leakage", titled("Leakage detected"), sentence, note)
    return (
        "no-leakage",
        titled("No leakage detected at this audit's resolution"),
        sentence + " No attack beats chance with 95% confidence; this is not proof that the model does not leak.",
        note,
    )
