"""The report's view model: everything the template prints, computed and formatted from an AuditResult.

The template only lays out; every number is formatted here, from results.json values, with the one set of
formatters in `mia_audit.report.format`. The sections come from their own modules: the executive summary and
attack table (`summary`), scope, threat model and limitations (`scope`), optional fields as generic tables
(`tables`); results fields added by later issues are read when present: `slices`, `slice_summary` and
`subjects` through `slice_view` and `subject_view` (section 7 and the "worst slice" lines), `defenses`
(step 7) through `defense_view` (section 8), `verdict` as the policy section; absent, their sections say they
were not run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from mia_audit.context import ReportContext
from mia_audit.recommend.findings import assess_leakage
from mia_audit.recommend.rules import Recommendation, recommend
from mia_audit.report.defense_view import DefenseSection, build_defense_section
from mia_audit.report.format import Headline
from mia_audit.report.scope import (
    class_table,
    columns_summary,
    exposure_note,
    limitations,
    scope_context,
    signatories,
    threat_model,
)
from mia_audit.report.slice_view import SliceSection, build_slice_section, worst_slice_headline
from mia_audit.report.subject_view import subject_headline
from mia_audit.report.summary import AttackRow, attack_rows, headlines, verdict
from mia_audit.report.tables import GenericTable, dump, flatten, generic_table
from mia_audit.results import AuditResult


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
    slices: SliceSection | None = None  # section 7
    defenses: DefenseSection | None = None  # section 8, when step 7 ran


def report_id(*, results_json: bytes, context_yaml: bytes | None) -> str:
    """A stable id derived from the inputs: the same results and context always give the same id."""
    digest = hashlib.sha256(results_json + b"\0" + (context_yaml or b"")).hexdigest().upper()
    return f"MIA-{digest[:4]}-{digest[4:8]}-{digest[8:12]}"


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
    optional_raw = {name: dump(getattr(result, name, None)) for name in ("defenses", "verdict")}
    kind, title, sentence, note = verdict(result, optional_raw["verdict"])
    rid = report_id(results_json=results_json, context_yaml=context_yaml)
    model_name = result.model.path.replace("\\", "/").rsplit("/", 1)[-1]
    data = result.data
    exposure = exposure_note(result, context)
    class_rows, class_summary = class_table(result)
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
        ("Feature columns", f"input tensors from column {data.input_column}" if data.input_column else columns_summary(data.feature_columns)),
        ("Metadata columns (not fed to the model)", columns_summary(data.meta_columns)),
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
        signatories=signatories(context),
        scope_measured=scope_measured,
        scope_context=scope_context(context),
        threat_model=threat_model(result),
        exposure_note=exposure,
        attack_rows=rows,
        flags_used=flags,
        class_table=class_rows,
        class_summary=class_summary,
        recommendations=recommend(result=result, context=context),
        leakage_evidence=list(assess_leakage(result).evidence),
        limitations=limitations(result, exposure),
        config_rows=flatten("", result.config),
        environment_rows=environment_rows,
        optional={name: generic_table(value) for name, value in optional_raw.items()},
        optional_raw=optional_raw,
        slices=build_slice_section(result),
        defenses=build_defense_section(result.defenses),
    )


__all__ = ["ReportView", "build_view", "report_id"]
