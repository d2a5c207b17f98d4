"""The report's data-subject part of section 7 and its executive-summary line (`--group-column`).

Each subject's record scores are aggregated per attack (`SubjectAudit`); this formats the subject-level
attacks, worst first, at most `SUBJECT_LIMIT` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from mia_audit.report.format import HEADLINE_FPR, Cell, Headline, ci, count, num, pct, pct_ci, signed, tpr_cell
from mia_audit.results import AuditResult, SubjectAudit

__all__ = ["SUBJECT_LIMIT", "SubjectRow", "SubjectSection", "build_subject_section", "subject_headline"]

SUBJECT_LIMIT = 12  # rows of the subject-level table


@dataclass(frozen=True)
class SubjectRow:
    attack: str
    aggregation: str
    is_worst: bool
    counts: str
    auc: Cell
    tpr: Cell
    advantage: Cell


@dataclass
class SubjectSection:
    group_column: str
    intro: str
    worst_line: str
    rows: list[SubjectRow]
    n_more: int
    aggregations: list[tuple[str, str]]


def build_subject_section(subjects: SubjectAudit | None) -> SubjectSection | None:
    if subjects is None:
        return None
    sizes = subjects.records_per_subject
    per = ""
    if sizes:
        low, high = int(sizes.get("min", 0)), int(sizes.get("max", 0))
        per = (
            f", {low:,} record{'s' if high != 1 else ''} each" if low == high
            else f", {low:,}–{high:,} records each (median {sizes.get('median', 0):g})"
        )
    intro = (
        f"Records were grouped into data subjects by the column ‘{subjects.group_column}’: "
        f"{subjects.n_member_subjects:,} member and {subjects.n_nonmember_subjects:,} non-member subjects{per}. "
        "Each attack's record scores were aggregated per subject, and the attack was evaluated over subjects with "
        "the same metrics and bootstrap confidence intervals as over records: can an attacker tell whether a "
        "person, rather than a record, was in the training data?"
    )
    ordered = sorted(
        subjects.attacks, key=lambda a: (-a.tpr_at_fpr[HEADLINE_FPR].tpr if HEADLINE_FPR in a.tpr_at_fpr else 0.0,
                                         -a.auc, a.name, a.aggregation)
    )
    worst = subjects.worst_case
    worst_name = worst.attack if worst else None
    rows = [
        SubjectRow(
            attack=a.name,
            aggregation=a.aggregation,
            is_worst=f"{a.name} ({a.aggregation})" == worst_name,
            counts=f"{count(a.n_members)} / {count(a.n_nonmembers)}",
            auc=Cell(value=num(a.auc), interval=ci(a.auc_ci)),
            tpr=tpr_cell(a.tpr_at_fpr.get(HEADLINE_FPR)),
            advantage=Cell(value=signed(a.advantage), interval=ci(a.advantage_ci)),
        )
        for a in ordered
    ]
    worst_line = "No attack could be evaluated over subjects."
    if worst is not None:
        point = worst.tpr_at_fpr_0_001
        tpr = (
            "TPR at 0.1% FPR not estimable with this many non-member subjects"
            if point.flag == "not_estimable"
            else f"TPR at 0.1% FPR {pct(point.tpr)} {pct_ci(point.ci)}"
            + (" (low evidence)" if point.flag == "low_evidence" else "")
            + f", i.e. {worst.members_singled_out_at_0_001:,} of {subjects.n_member_subjects:,} member subjects singled out"
        )
        worst_line = f"Worst case over subjects: {worst.attack}, AUC {num(worst.auc)} {ci(worst.auc_ci)}; {tpr}."
    shown = [row for row in rows if row.is_worst] + [row for row in rows if not row.is_worst]
    shown = shown[:SUBJECT_LIMIT]
    keep = {(row.attack, row.aggregation) for row in shown}
    return SubjectSection(
        group_column=subjects.group_column,
        intro=intro,
        worst_line=worst_line,
        rows=[row for row in rows if (row.attack, row.aggregation) in keep],
        n_more=len(rows) - len(keep),
        aggregations=list(subjects.aggregations.items()),
    )


def subject_headline(result: AuditResult) -> Headline | None:
    """The executive summary's data-subject line (only with --group-column)."""
    subjects = result.subjects
    if subjects is None or subjects.worst_case is None:
        return None
    worst = subjects.worst_case
    point = worst.tpr_at_fpr_0_001
    tpr = (
        "TPR at 0.1% FPR not estimable"
        if point.flag == "not_estimable"
        else f"TPR at 0.1% FPR {pct(point.tpr)} {pct_ci(point.ci)}" + (" (low evidence)" if point.flag == "low_evidence" else "")
    )
    return Headline(
        label="Worst case over data subjects",
        value=f"{worst.attack} — AUC {num(worst.auc)} {ci(worst.auc_ci)}",
        text=True,
        note=f"{tpr}; {subjects.n_member_subjects:,} member and {subjects.n_nonmember_subjects:,} non-member "
        f"subjects (‘{subjects.group_column}’); section 7",
    )
