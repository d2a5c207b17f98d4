"""The report's view model: everything the template prints, computed and formatted from an AuditResult.

The template only lays out; every number is formatted here, from results.json values, with one set of
formatters (3 decimals for AUC, advantage and accuracies; percentages with 2 decimals for TPR). Results
fields added by later issues are read when present: `slices`, `slice_summary` and `subjects` through
`mia_audit.report.slice_view` (section 7 and the "worst slice" line), `defenses` (step 7) through
`mia_audit.report.defense_view` (section 8 and the executive-summary line), `verdict` as the policy
section; absent, their sections say they were not run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from pydantic import BaseModel

from mia_audit.context import SCOPE_FIELDS, ReportContext
from mia_audit.recommend.findings import assess_leakage, attack_by_name
from mia_audit.recommend.rules import Recommendation, recommend
from mia_audit.results import AttackResult, AuditResult, TprAtFpr

FPR_LEVELS = ("0.001", "0.01", "0.1")
FLAG_MARK = {"ok": "", "low_evidence": "†", "not_estimable": "‡"}


# --- formatters (also registered as Jinja filters) ------------------------------------------------------


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def ci(bounds: tuple[float, float] | list[float] | None, digits: int = 3) -> str:
    return "" if bounds is None else f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def pct_ci(bounds: tuple[float, float] | list[float] | None, digits: int = 2) -> str:
    return "" if bounds is None else f"[{pct(bounds[0], digits)}, {pct(bounds[1], digits)}]"


def count(value: int) -> str:
    return f"{value:,}"


def wbr(text: str) -> Markup:
    """Escaped text with line-break opportunities after underscores and '=' (long attack and slice names in
    narrow cells)."""
    return Markup(str(escape(text)).replace("_", "_<wbr>").replace("=", "=<wbr>"))


FILTERS = {"num": num, "signed": signed, "pct": pct, "ci": ci, "pct_ci": pct_ci, "count": count, "wbr": wbr}


# --- view pieces --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A number with its interval and evidence mark, printed on two lines in tables."""

    value: str
    interval: str = ""
    mark: str = ""


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


@dataclass(frozen=True)
class Headline:
    label: str
    value: str
    interval: str = ""
    note: str = ""
    text: bool = False  # a name, not a number: spans the value and interval columns


@dataclass(frozen=True)
class GenericTable:
    """Rows of an optional results field (slices, defenses, ...) shown without knowing its schema."""

    columns: list[str]
    rows: list[list[str]]


@dataclass
class ReportView:
    title: str
    subject: str
    report_id: str
    generated_utc: str
    result: AuditResult
    context: ReportContext | None
    verdict_kind: str  # "leakage" | "no-leakage" | "no-attacks" | "policy"
    verdict_title: str
    verdict_text: str
    verdict_note: str
    headlines: list[Headline]
    document_control: list[tuple[str, str]]
    attachments: list[tuple[str, str, str]]
    signatories: list[tuple[str, str, str]]
    scope_measured: list[tuple[str, str]]
    scope_context: list[tuple[str, str | None]]
    threat_model: list[tuple[str, str]]
    exposure_note: str
    attack_rows: list[AttackRow]
    flags_used: list[str]
    class_table: list[tuple[str, str, str]] | None
    class_summary: str
    recommendations: list[Recommendation]
    leakage_evidence: list[str]
    limitations: list[str]
    config_rows: list[tuple[str, str]]
    environment_rows: list[tuple[str, str]]
    optional: dict[str, GenericTable | None] = field(default_factory=dict)
    optional_raw: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)
    slices: Any = None  # mia_audit.report.slice_view.SliceSection (section 7)
    defenses: Any = None  # mia_audit.report.defense_view.DefenseSection when step 7 ran


def report_id(*, results_json: bytes, context_yaml: bytes | None) -> str:
    """A stable id derived from the inputs: the same results and context always give the same id."""
    digest = hashlib.sha256(results_json + b"\0" + (context_yaml or b"")).hexdigest().upper()
    return f"MIA-{digest[:4]}-{digest[4:8]}-{digest[8:12]}"


def _tpr_cell(point: TprAtFpr) -> Cell:
    if point.flag == "not_estimable":
        return Cell(value="n/e", interval="", mark=FLAG_MARK["not_estimable"])
    return Cell(value=pct(point.tpr), interval=pct_ci(point.ci), mark=FLAG_MARK[point.flag])


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
            tpr={key: _tpr_cell(attack.tpr_at_fpr[key]) for key in FPR_LEVELS if key in attack.tpr_at_fpr},
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


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return ci(tuple(float(v) for v in value))
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_cell(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(item) for item in value)
    return str(value)


def generic_table(value: Any) -> GenericTable | None:
    """A list of records (or a mapping name → record) as a table; scalars and nested values as text."""
    value = _dump(value)
    if not value:
        return None
    if isinstance(value, dict):
        if all(isinstance(item, dict) for item in value.values()):
            records = [{"name": key, **item} for key, item in value.items()]
        else:
            records = [{"field": key, "value": item} for key, item in value.items()]
    elif isinstance(value, list):
        records = [item if isinstance(item, dict) else {"value": item} for item in value]
    else:
        records = [{"value": value}]
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    return GenericTable(columns=columns, rows=[[_cell(record.get(key)) for key in columns] for record in records])


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        rows = []
        for key, item in value.items():
            rows.extend(_flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return rows
    return [(prefix, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)]


def _columns_summary(columns: list[str], limit: int = 8) -> str:
    if not columns:
        return "none"
    shown = ", ".join(columns[:limit])
    return f"{len(columns)}: {shown}" + (f", … {columns[-1]}" if len(columns) > limit else "")


def _class_table(result: AuditResult) -> tuple[list[tuple[str, str, str]] | None, str]:
    members = result.data.member_class_counts
    nonmembers = result.data.nonmember_class_counts
    classes = list(dict.fromkeys([*members, *nonmembers]))
    summary = f"{len(classes)} classes present"
    if members:
        summary += f"; members per class {min(members.values()):,}–{max(members.values()):,}"
    if nonmembers:
        summary += f", non-members per class {min(nonmembers.values()):,}–{max(nonmembers.values()):,}"
    if len(classes) > 24:
        return None, summary
    return [(name, count(members.get(name, 0)), count(nonmembers.get(name, 0))) for name in classes], summary


def _exposure_note(result: AuditResult, context: ReportContext | None) -> str:
    audited = result.config.get("exposure", "scores")
    if context is None or context.exposure is None:
        return ""
    deployed_labels = context.exposure == "labels"
    if audited == "scores" and deployed_labels:
        return (
            "The context says the deployment returns labels only, but this audit assumed score exposure: the "
            "score-based attacks overstate the deployed exposure; the label-only attacks apply as measured."
        )
    if audited == "labels" and not deployed_labels:
        return (
            f"The context says the deployment returns {context.exposure.replace('_', '-')} scores, but this audit "
            "assumed labels only: the measured leakage understates the deployed exposure. Re-run with --exposure scores."
        )
    return ""


def _shadow_row(result: AuditResult, shadow: list[str], step5) -> str:
    """How the attacker's own models were made (the strongest attacks of the audit rest on them)."""
    if not shadow:
        return (
            "Not used" + (f" (workflow step 5 {step5.status})" if step5 else "")
            + ": no attacker-trained models of the target's architecture."
        )
    info = result.shadow_models
    made = ""
    if info is not None:
        made = (
            f" {info.n_shadow_models} shadow models — {info.description} — each trained on a random half of a pool of "
            f"{info.n_pool:,} records ({info.keep_design}); they fit their training halves with accuracy "
            f"{info.shadow_train_accuracy:.3f} and unseen records with {info.shadow_heldout_accuracy:.3f}. The "
            "attacker is assumed to know the architecture and training recipe and to hold same-distribution data."
        )
    return f"Used by: {', '.join(shadow)}.{made}"


def _threat_model(result: AuditResult) -> list[tuple[str, str]]:
    exposure = result.config.get("exposure", "scores")
    families = sorted({attack.family for attack in result.attacks})
    shadow = [a.name for a in result.attacks if a.family in ("shadow", "reference")]
    step5 = next((s for s in result.workflow if s.step == 5), None)
    by_threat: dict[str, list[str]] = {}
    for attack in result.attacks:
        by_threat.setdefault(attack.threat_model, []).append(attack.name)
    rows = [
        ("Access", "Black-box: the attacker queries the deployed model and observes its outputs; no access to weights or gradients."),
        (
            "Outputs observed",
            "Probability (score) vectors and predicted labels" if exposure == "scores" else "Predicted labels only",
        ),
        (
            "Attacker's knowledge",
            "Candidate records and their true labels, drawn from the training distribution; the attacker calibrates "
            "one threshold per attack (the audit reports every threshold through the ROC, the strongest possible "
            "choice).",
        ),
        ("Shadow / reference models", _shadow_row(result, shadow, step5)),
        ("Attack families run", ", ".join(families) or "none"),
    ]
    rows.extend((f"Threat model: {threat}", ", ".join(names)) for threat, names in by_threat.items())
    return rows


def _limitations(result: AuditResult, exposure_note: str) -> list[str]:
    n_nonmembers = result.data.nonmembers.n
    items = [
        "The numbers are an empirical lower bound on leakage under the stated threat model: a stronger or "
        "better-informed attacker may do better. Not detecting leakage does not show its absence.",
        "A low measured leakage does not establish that the model is anonymous under the GDPR (see EDPB "
        "Opinion 28/2024) nor that its outputs are de-identified under HIPAA (45 CFR 164.514(b)).",
        "This report is technical evidence for a DPIA or risk analysis, not legal advice and not the "
        "assessment itself: the necessity, proportionality and acceptability of the risk are for the controller.",
        "The results depend on how representative the non-members are: they must come from the training "
        "distribution and never have been used in training. A distribution shift between the two sets inflates "
        "every number; members that are not in fact training records deflate them.",
        f"With {n_nonmembers:,} non-members the smallest resolvable FPR is 1/{n_nonmembers:,} = "
        f"{pct(1 / max(n_nonmembers, 1), 3)}; rates at lower FPRs are not measured.",
        "The empirical ε lower bound is a heuristic for this model and these records, not a differential "
        "privacy guarantee.",
    ]
    step5 = next((s for s in result.workflow if s.step == 5), None)
    if step5 is not None and step5.status != "done":
        items.append(
            "No shadow- or reference-model attacks were run (workflow step 5 "
            f"{step5.status}): the worst case may understate leakage, especially at low FPR."
        )
    if exposure_note:
        items.append(exposure_note)
    items.extend(f"Run warning: {warning}" for warning in result.warnings)
    return items


def _signatories(context: ReportContext | None) -> list[tuple[str, str, str]]:
    slots = (
        ("Prepared by", "prepared_by", "Privacy engineer / assessor"),
        ("Reviewed by", "reviewed_by", "Data protection officer / privacy officer"),
        ("Approved by", "approved_by", "Controller / system owner"),
    )
    rows = []
    for label, key, default_role in slots:
        person = getattr(context, key, None) if context else None
        rows.append((label, (person.name if person and person.name else ""), (person.role if person and person.role else default_role)))
    return rows


def _scope_context(context: ReportContext | None) -> list[tuple[str, str | None]]:
    rows = []
    for key, label in SCOPE_FIELDS:
        value = getattr(context, key, None) if context else None
        if value is None or value == [] or value == "":
            rows.append((label, None))
        elif isinstance(value, bool):
            rows.append((label, "yes" if value else "no"))
        elif isinstance(value, list):
            rows.append((label, ", ".join(value)))
        else:
            rows.append((label, str(value).replace("_", "-") if key == "exposure" else str(value)))
    if context is not None and context.notes:
        rows.append(("Notes", context.notes))
    return rows


def build_view(
    *,
    result: AuditResult,
    results_json: bytes,
    context: ReportContext | None,
    context_yaml: bytes | None,
    generated_utc: str,
    attachments: list[tuple[str, bytes, str]],
) -> ReportView:
    """Everything the template needs. `attachments` = (file name, bytes, description) of the PDF's files."""
    from mia_audit.report.slice_view import build_slice_section, subject_headline, worst_slice_headline  # (cycle)

    optional_raw = {name: _dump(getattr(result, name, None)) for name in ("defenses", "verdict")}
    kind, title, sentence, note = verdict(result, optional_raw["verdict"])
    rid = report_id(results_json=results_json, context_yaml=context_yaml)
    model_name = result.model.path.replace("\\", "/").rsplit("/", 1)[-1]
    data = result.data
    exposure_note = _exposure_note(result, context)
    class_rows, class_summary = _class_table(result)
    rows = attack_rows(result)
    flags = sorted({mark for row in rows for cell in row.tpr.values() for mark in [cell.mark] if mark})
    export_requested = bool(result.config.get("export_record_scores"))
    document_control = [
        ("Report id", rid),
        ("Report generated (UTC)", generated_utc),
        ("Audit run (UTC)", result.created_utc),
        ("Tool", f"mia-audit {result.tool_version} (results schema {result.schema_version})"),
        ("Seed", str(result.seed)),
        ("Model", f"{result.model.path} ({result.model.format}, {result.model.n_classes} classes)"),
        ("Model SHA-256", result.model.sha256),
        ("Members manifest", f"{data.members.path} — {data.members.n:,} rows"),
        ("Members SHA-256", data.members.sha256),
        ("Non-members manifest", f"{data.nonmembers.path} — {data.nonmembers.n:,} rows"),
        ("Non-members SHA-256", data.nonmembers.sha256),
        (
            "Context file",
            "given (attached)" if context_yaml is not None else "none given: scope items are marked to be completed",
        ),
        (
            "Per-record scores",
            "exported on request to a separate RESTRICTED file (not part of this report)"
            if export_requested
            else "not exported; this report holds no raw records, record ids or per-record scores",
        ),
    ]
    scope_measured = [
        ("Model file", f"{model_name} ({result.model.format}, output {result.model.output_kind}, {result.model.output_kind_source})"),
        ("Classes", f"{result.model.n_classes} ({class_summary})"),
        ("Members (training records audited)", f"{data.members.n:,}"),
        ("Non-members (never used in training)", f"{data.nonmembers.n:,}"),
        (
            "Overlap between the sets",
            f"{data.n_overlap:,} duplicate record(s)" + (f", {data.n_dropped_overlap:,} dropped" if data.n_dropped_overlap else ""),
        ),
        ("Label column", data.label_column),
        ("Feature columns", f"input tensors from column {data.input_column}" if data.input_column else _columns_summary(data.feature_columns)),
        ("Metadata columns (not fed to the model)", _columns_summary(data.meta_columns)),
        ("Exposure assumed by the audit", "scores (probability vectors)" if result.config.get("exposure", "scores") == "scores" else "labels only"),
    ]
    env = result.environment
    environment_rows: list[tuple[str, str]] = []
    if env is not None:
        environment_rows = [("Python", env.python), ("Platform", env.platform), ("CPU", env.cpu)]
        environment_rows += [(f"package {name}", version) for name, version in env.packages.items()]
    environment_rows += [(f"model runtime: {key}", value) for key, value in result.model.runtime.items()]
    return ReportView(
        title=f"Membership-inference privacy impact assessment — {model_name}",
        subject=(
            f"Evidence for a DPIA / HIPAA risk analysis: membership-inference leakage of {model_name} "
            f"(SHA-256 {result.model.sha256[:16]}…)"
        ),
        report_id=rid,
        generated_utc=generated_utc,
        result=result,
        context=context,
        verdict_kind=kind,
        verdict_title=title,
        verdict_text=sentence,
        verdict_note=note,
        headlines=headlines(result) + [worst_slice_headline(result)] + [h for h in [subject_headline(result)] if h],
        document_control=document_control,
        attachments=[(name, hashlib.sha256(data_bytes).hexdigest(), description) for name, data_bytes, description in attachments],
        signatories=_signatories(context),
        scope_measured=scope_measured,
        scope_context=_scope_context(context),
        threat_model=_threat_model(result),
        exposure_note=exposure_note,
        attack_rows=rows,
        flags_used=flags,
        class_table=class_rows,
        class_summary=class_summary,
        recommendations=recommend(result=result, context=context),
        leakage_evidence=list(assess_leakage(result).evidence),
        limitations=_limitations(result, exposure_note),
        config_rows=_flatten("", result.config),
        environment_rows=environment_rows,
        optional={name: generic_table(value) for name, value in optional_raw.items()},
        optional_raw=optional_raw,
        slices=build_slice_section(result),
        defenses=_defense_section(result),
    )


def _defense_section(result: AuditResult):
    from mia_audit.report.defense_view import build_defense_section  # it formats with this module's helpers

    return build_defense_section(result.defenses)


__all__ = ["FILTERS", "ReportView", "build_view", "report_id"]
