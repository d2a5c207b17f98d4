"""The report's section 7 and its executive-summary line: slices, subpopulations and data subjects.

Reads `AuditResult.slices`, `slice_summary` and `subjects` (issue 5) and turns them into what a reviewer
can read on one or two pages instead of every slice × attack entry:

- the evidence rules applied (counts, minimum records, DeLong CIs, Mann–Whitney + Benjamini–Hochberg,
  ranking by the lower CI bound), stated from `slice_summary`;
- the worst slices, each slice once with its top-ranked attack (the attack whose AUC has the highest
  lower CI bound in that slice), at most `TABLE_LIMIT` rows, always including the disparity summary's
  worst slices;
- the members singled out in the worst slices, the subpopulation (per-slice threshold) gains, the slices
  too small to test;
- the subject-level audit (`--group-column`), worst first.

Only aggregates are shown: slice names are a column value, a class or an open-ended quantile bin, i.e. a
group of records, and never a record id or a per-record score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mia_audit.report.format import HEADLINE_FPR, Cell, Headline, ci, count, num, pct, signed, tpr_cell
from mia_audit.report.subject_view import SubjectSection, build_subject_section
from mia_audit.results import AttackResult, AuditResult, SliceResult, SliceSummary

TABLE_LIMIT = 10  # rows of the worst-slices table
CHART_LIMIT = 20  # slices in the per-slice AUC chart
INSUFFICIENT_LIMIT = 12  # slices too small to test, named individually

DIMENSION_NAMES = {
    "class": "true class",
    "correctness": "correct / incorrect prediction",
    "loss_percentile": "percentile bin of the record's loss",
}


def p_value(value: float | None) -> str:
    """Adjusted p-values with two significant digits (as in the recommendations' evidence lines)."""
    return "–" if value is None else f"{value:.2g}"

# --- which slices are shown ------------------------------------------------------------------------------


def ranked_slices(result: AuditResult) -> list[SliceResult]:
    """Every tested slice once, with its top-ranked attack, best rank first."""
    best: dict[str, SliceResult] = {}
    for entry in sorted((s for s in result.slices if s.rank is not None), key=lambda s: s.rank):
        best.setdefault(entry.name, entry)
    return list(best.values())


def top_slices(result: AuditResult, *, limit: int) -> list[SliceResult]:
    """The `limit` highest-ranked slices (each once), always including the summary's worst slice(s).

    Slices cut by the model's own output often lead the ranking; the disparity summary's worst slices (chosen
    among classes, columns and intersections) are kept in even when more than `limit` such slices rank above
    them, so the table and the executive summary never disagree.
    """
    ranked = ranked_slices(result)
    summary = result.slice_summary
    required: list[str] = []
    if summary is not None:
        if summary.worst is not None:
            required.append(summary.worst.name)
        required.extend(entry.name for entry in summary.worst_slices)
    chosen = list(dict.fromkeys(required))[:limit]
    for entry in ranked:
        if len(chosen) >= limit:
            break
        if entry.name not in chosen:
            chosen.append(entry.name)
    keep = set(chosen)
    return [entry for entry in ranked if entry.name in keep]


# --- view pieces --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceRow:
    rank: int  # position among the tested slices (each slice once), 1 = worst
    name: str
    attack: str
    by_model_output: bool
    is_worst: bool
    counts: str  # "22 / 152"
    auc: Cell
    global_auc: Cell
    tpr: Cell
    accuracies: str  # "1.000 / 0.938"
    gap: str
    p_adjusted: str
    significant: bool


@dataclass(frozen=True)
class ExposedRow:
    name: str
    attack: str
    singled_out: str  # "2 of 30"
    tpr: Cell


@dataclass(frozen=True)
class GainRow:
    name: str
    attack: str
    tpr_global: str
    tpr_slice: str
    gain: str

@dataclass
class SliceSection:
    """Everything section 7 prints; `measured` is False when the results hold no slices at all."""

    measured: bool
    intro: list[str] = field(default_factory=list)
    rows: list[SliceRow] = field(default_factory=list)
    table_note: str = ""
    flags_used: list[str] = field(default_factory=list)
    exposure: str = ""
    exposed_rows: list[ExposedRow] = field(default_factory=list)
    subpopulation: str = ""
    gain_rows: list[GainRow] = field(default_factory=list)
    insufficient: str = ""
    chart_caption: str = ""
    methods: list[tuple[str, str]] = field(default_factory=list)
    subjects: SubjectSection | None = None


def _dimensions(result: AuditResult) -> str:
    kinds: dict[str, list[str]] = {}
    for entry in result.slices:
        specs = kinds.setdefault(entry.kind, [])
        if entry.spec not in specs:
            specs.append(entry.spec)
    parts = [DIMENSION_NAMES[kind] for kind in ("class", "correctness", "loss_percentile") if kind in kinds]
    if "column" in kinds:
        columns = kinds["column"]
        parts.append(("column " if len(columns) == 1 else "columns ") + ", ".join(f"‘{c}’" for c in columns))
    if "intersection" in kinds:
        parts.append("the intersections " + ", ".join(f"‘{c}’" for c in kinds["intersection"]))
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _intro(result: AuditResult, summary: SliceSummary | None) -> list[str]:
    attacks = len({entry.attack for entry in result.slices})
    n_slices = summary.n_slices if summary else len({entry.name for entry in result.slices})
    first = (
        f"Each of the {attacks} attack{'s' if attacks != 1 else ''} was measured again on each of {n_slices:,} slices "
        f"of the audit records, cut by {_dimensions(result)}."
    )
    if any(entry.kind == "column" for entry in result.slices):
        first += " Numeric columns are cut into quantile bins whose outer bins are open-ended, so no single record's value is shown."
    if summary is None:
        return [first]
    insufficient = (
        f"A slice with fewer than {summary.min_records:,} members or non-members is not tested (insufficient "
        f"evidence): {summary.n_insufficient:,} of the {n_slices:,} here. "
        if summary.n_insufficient
        else f"Every slice had at least {summary.min_records:,} members and non-members. "
    )
    second = (
        insufficient
        + f"For the {summary.n_tested:,} slice × attack pairs tested, the AUC carries a 95% confidence interval "
        "(DeLong), and a one-sided Mann–Whitney test asks whether the slice's AUC exceeds 0.5; the p-values are "
        f"Benjamini–Hochberg-adjusted over all {summary.n_tested:,} tests at a false discovery rate of "
        f"{summary.fdr:g}, so that many small slices do not raise a false alarm by chance. "
        f"Of the {summary.n_tested:,} pairs, {summary.n_significant:,} are significant."
    )
    third = (
        "Slices are ranked by the lower bound of the AUC's confidence interval, not by the point estimate, so a "
        "small slice with a lucky AUC does not outrank a large, clearly leaking one. Slices cut by the model's own "
        "output (correct / incorrect prediction, loss percentile) are ranked and shown (marked ◆) but are not "
        "chosen as the worst slice: their AUC partly reflects the selection on the attack signal itself."
    )
    return [first, second, third]


def _slice_rows(result: AuditResult, shown: list[SliceResult]) -> list[SliceRow]:
    by_attack: dict[str, AttackResult] = {attack.name: attack for attack in result.attacks}
    summary = result.slice_summary
    worst = summary.worst.name if summary is not None and summary.worst is not None else None
    position = {entry.name: index for index, entry in enumerate(ranked_slices(result), start=1)}
    rows = []
    for entry in shown:
        reference = by_attack.get(entry.attack)
        rows.append(
            SliceRow(
                rank=position[entry.name],
                name=entry.name,
                attack=entry.attack,
                by_model_output=entry.by_model_output,
                is_worst=entry.name == worst,
                counts=f"{count(entry.n_members)} / {count(entry.n_nonmembers)}",
                auc=Cell(value=num(entry.auc), interval=ci(entry.auc_ci)),
                global_auc=Cell(value=num(reference.auc), interval=ci(reference.auc_ci)) if reference else Cell(value="–"),
                tpr=tpr_cell(entry.tpr_at_fpr.get(HEADLINE_FPR)),
                accuracies=f"{num(entry.member_accuracy)} / {num(entry.nonmember_accuracy)}",
                gap=signed(entry.accuracy_gap),
                p_adjusted=p_value(entry.p_value_adjusted),
                significant=entry.significant,
            )
        )
    return rows


def _flag_sentence(flag: str) -> str:
    if flag == "not_estimable":
        return (
            "not estimable: these slices have fewer than 1,000 non-members, so a 0.1% FPR cannot be resolved and "
            "the count is of members scoring above every non-member of their slice — an indication, not a "
            "measured rate"
        )
    if flag == "low_evidence":
        return "low evidence: these slices give fewer than 10 expected false positives at 0.1% FPR"
    return "evidence ok"


def _exposure(summary: SliceSummary) -> tuple[str, list[ExposedRow]]:
    if not summary.worst_slices:
        return "", []
    k = len(summary.worst_slices)
    text = (
        f"In the {k} worst slice{'s' if k != 1 else ''} of the disparity summary (each with its top-ranked attack, "
        f"threshold set on the slice itself), {summary.members_singled_out_at_0_001:,} distinct member"
        f"{'s' if summary.members_singled_out_at_0_001 != 1 else ''} could be singled out at 0.1% FPR "
        f"({_flag_sentence(summary.members_singled_out_flag)})."
    )
    rows = [
        ExposedRow(
            name=entry.name,
            attack=entry.attack,
            singled_out=f"{entry.members_singled_out_at_0_001:,} of {entry.n_members:,}",
            tpr=tpr_cell(entry.tpr_at_fpr_0_001),
        )
        for entry in summary.worst_slices
    ]
    return text, rows


def _subpopulation(result: AuditResult, summary: SliceSummary) -> tuple[str, list[GainRow]]:
    fprs = sorted({entry.subpopulation.fpr for entry in result.slices if entry.subpopulation is not None})
    fpr = pct(fprs[0], 2 if fprs[0] < 0.01 else 0) if fprs else "the configured FPR"
    if not summary.subpopulation_gains:
        return (
            f"Calibrating the attack threshold on a slice alone (an attacker who targets that "
            f"group) instead of on everyone did not raise the TPR at {fpr} FPR for any tested slice (2-fold "
            "cross-fitted: thresholds fitted on one half of the records, measured on the other).",
            [],
        )
    shown = summary.subpopulation_gains
    text = (
        f"For {summary.n_subpopulation_gains:,} slice × attack pair"
        f"{'s' if summary.n_subpopulation_gains != 1 else ''}, calibrating the threshold on the slice alone (an "
        f"attacker who targets that group) finds more of its members at {fpr} FPR than the threshold calibrated on "
        "everyone (2-fold cross-fitted, held-out TPR)"
        + (f"; the {len(shown)} largest gains:" if len(shown) < summary.n_subpopulation_gains else ":")
    )
    rows = [
        GainRow(name=g.name, attack=g.attack, tpr_global=pct(g.tpr_global), tpr_slice=pct(g.tpr_slice),
                gain=f"{g.gain * 100:+.2f} pp")
        for g in shown
    ]
    return text, rows


def _insufficient(result: AuditResult, summary: SliceSummary | None) -> str:
    small: dict[str, SliceResult] = {}
    for entry in result.slices:
        if entry.flag == "insufficient_evidence":
            small.setdefault(entry.name, entry)
    if not small:
        return ""
    minimum = f"{summary.min_records:,}" if summary else "the minimum number of"
    named = [f"{name} ({e.n_members:,} / {e.n_nonmembers:,})" for name, e in list(small.items())[:INSUFFICIENT_LIMIT]]
    more = len(small) - len(named)
    return (
        f"Not tested, fewer than {minimum} members or non-members (members / non-members): " + "; ".join(named)
        + (f"; and {more:,} more (in results.json)" if more else "")
        + ". Their leakage is unknown, not low."
    )

def build_slice_section(result: AuditResult) -> SliceSection:
    """Section 7's content from the results (measured=False when no slice was measured)."""
    subjects = build_subject_section(result.subjects)
    summary = result.slice_summary
    if not result.slices and summary is None:
        return SliceSection(measured=False, subjects=subjects)
    shown = top_slices(result, limit=TABLE_LIMIT)
    rows = _slice_rows(result, shown)
    n_ranked = len(ranked_slices(result))
    flags = sorted({row.tpr.mark for row in rows if row.tpr.mark})
    note = (
        f"The {len(rows)} highest-ranked of {n_ranked:,} tested slices"
        if len(rows) < n_ranked
        else f"All {n_ranked:,} tested slices"
    )
    note += (
        ", each shown once with its top-ranked attack (the attack whose AUC has the highest lower CI bound in that "
        "slice); the worst slices of the disparity summary are always included. Every slice × attack entry is in "
        "results.json (slices). 95% CIs in brackets (DeLong for AUC, threshold band for TPR). “All records” is the "
        "same attack on the whole population (bootstrap CI). Adjusted p: Benjamini–Hochberg; significant = adjusted "
        f"p ≤ {summary.fdr:g}." if summary else "."
    )
    exposure, exposed_rows = _exposure(summary) if summary else ("", [])
    subpopulation, gains = _subpopulation(result, summary) if summary else ("", [])
    methods = [(key.replace("_", " "), text) for key, text in summary.methods.items()] if summary else []
    return SliceSection(
        measured=True,
        intro=_intro(result, summary),
        rows=rows,
        table_note=note,
        flags_used=flags,
        exposure=exposure,
        exposed_rows=exposed_rows,
        subpopulation=subpopulation,
        gain_rows=gains,
        insufficient=_insufficient(result, summary),
        chart_caption=_chart_caption(result),
        methods=methods,
        subjects=subjects,
    )


def _chart_caption(result: AuditResult) -> str:
    n = len(top_slices(result, limit=CHART_LIMIT))
    if n == 0:
        return ""
    return (
        f"AUC of the {n} highest-ranked slice{'s' if n != 1 else ''} (top: rank 1), each with its own top-ranked "
        "attack (named on the right) — not with the global worst-case attack, because the attack that exposes a group need not be the "
        "strongest on average. Horizontal bars: 95% DeLong confidence intervals. Open diamond: the same attack's AUC "
        "on all records, so a point right of its diamond leaks more than the population. Dotted line: chance (AUC "
        "0.5). Hollow grey squares: slices cut by the model's own output (not eligible as the worst slice); the "
        "shaded row is the worst slice of the disparity summary."
    )


# --- executive summary -----------------------------------------------------------------------------------


def worst_slice_headline(result: AuditResult) -> Headline:
    """The executive summary's "Worst slice" line."""
    label = "Worst slice"
    summary = result.slice_summary
    if summary is None and not result.slices:
        return Headline(label=label, value="not measured", text=True,
                        note="slices were not run in this audit (section 7)")
    if summary is None:
        return Headline(label=label, value="see section 7", text=True, note="no disparity summary in this results file")
    worst = summary.worst
    if worst is None:
        return Headline(
            label=label, value="none tested", text=True,
            note=f"no slice had at least {summary.min_records:,} members and non-members (section 7)",
        )
    versus = ""
    if worst.global_auc is not None:
        versus = f"; same attack on all records {num(worst.global_auc)} {ci(worst.global_auc_ci)}"
        if worst.global_auc_ci is not None:
            above = worst.auc_ci[0] > worst.global_auc_ci[1]
            versus += " (the intervals do not overlap)" if above else " (the intervals overlap)"
    detail = (
        f"attack {worst.attack}, {worst.n_members:,} members / {worst.n_nonmembers:,} non-members{versus}; "
        f"Benjamini–Hochberg-adjusted p {p_value(worst.p_value_adjusted)} over {summary.n_tested:,} tests"
    )
    measured = f"{worst.name} — AUC {num(worst.auc)} {ci(worst.auc_ci)}"
    if worst.significant:
        return Headline(label=label, value=measured, text=True,
                        note=f"{detail} (significant at FDR {summary.fdr:g}); section 7")
    return Headline(
        label=label,
        value="no slice significantly above chance",
        text=True,
        note=f"after Benjamini–Hochberg adjustment at FDR {summary.fdr:g}; top-ranked slice {measured}, {detail}; "
        "section 7",
    )


__all__ = [
    "CHART_LIMIT",
    "TABLE_LIMIT",
    "SliceSection",
    "build_slice_section",
    "ranked_slices",
    "top_slices",
    "worst_slice_headline",
]
