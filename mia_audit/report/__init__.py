"""The privacy impact assessment report: HTML and PDF/A-3 rendered from an AuditResult alone.

`render_documents` is the one entry point: it needs the result, the exact results.json bytes (attached to
the PDF), and optionally the report context; it never touches the model or the data, so
`mia-audit render results.json` reproduces the report of `mia-audit run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mia_audit.context import ReportContext
from mia_audit.report.html import render_html
from mia_audit.report.pdf import PdfAttachment, render_pdf
from mia_audit.report.view import ReportView, build_view
from mia_audit.results import AuditResult

REPORT_FORMATS = ("html", "pdf")
FILE_NAMES = {"html": "report.html", "pdf": "report.pdf"}


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report is rendered from (and nothing else)."""

    result: AuditResult
    results_json: bytes  # the exact results.json bytes, attached to the PDF
    generated_utc: str  # report time, ISO 8601 "YYYY-MM-DDTHH:MM:SSZ" (honour SOURCE_DATE_EPOCH upstream)
    context: ReportContext | None = None
    context_yaml: bytes | None = None
    extra_attachments: tuple[PdfAttachment, ...] = field(default_factory=tuple)  # e.g. a policy file


def _attachments(inputs: ReportInputs) -> list[PdfAttachment]:
    files = [PdfAttachment(name="results.json", data=inputs.results_json, description="mia-audit results (source of this report)")]
    if inputs.context_yaml is not None:
        files.append(PdfAttachment(name="context.yaml", data=inputs.context_yaml, description="report context supplied by the controller"))
    files.extend(inputs.extra_attachments)
    return files


def build_report_view(inputs: ReportInputs) -> ReportView:
    return build_view(
        result=inputs.result,
        results_json=inputs.results_json,
        context=inputs.context,
        context_yaml=inputs.context_yaml,
        generated_utc=inputs.generated_utc,
        attachments=[(item.name, item.data, item.description) for item in _attachments(inputs)],
    )


@dataclass(frozen=True)
class RenderedReport:
    files: dict[str, bytes]  # file name → content
    refused_fetches: list[str]


def render_documents(*, inputs: ReportInputs, formats: tuple[str, ...] = REPORT_FORMATS) -> RenderedReport:
    """Render the requested formats in memory (the caller writes them, atomically)."""
    unknown = [kind for kind in formats if kind not in REPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown report format {unknown[0]!r}")
    html = render_html(view=build_report_view(inputs))
    files: dict[str, bytes] = {}
    refused: list[str] = []
    if "html" in formats:
        files[FILE_NAMES["html"]] = html.encode("utf-8")
    if "pdf" in formats:
        moment = datetime.strptime(inputs.generated_utc, "%Y-%m-%dT%H:%M:%SZ")
        files[FILE_NAMES["pdf"]], refused = render_pdf(html=html, attachments=_attachments(inputs), moment=moment)
    return RenderedReport(files=files, refused_fetches=refused)


__all__ = ["FILE_NAMES", "REPORT_FORMATS", "PdfAttachment", "RenderedReport", "ReportInputs", "render_documents", "render_html"]
