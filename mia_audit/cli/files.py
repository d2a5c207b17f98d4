"""What the CLI parses, reads and writes besides the audit itself: atomic writes, the report files, the gate's CI
artifacts, the report context. A failure before writing leaves nothing half-written (temp file + rename)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mia_audit.clock import utc_timestamp
from mia_audit.context import ReportContext, load_context
from mia_audit.errors import InputError
from mia_audit.gate.ci_artifacts import append_step_summary, junit_xml, step_summary_markdown
from mia_audit.gate.verdict import Verdict
from mia_audit.results import AuditResult

__all__ = [
    "check_junit_path",
    "parse_formats",
    "read_context",
    "render_reports",
    "split_list",
    "write_atomically",
    "write_bytes_atomically",
    "write_gate_artifacts",
]


def split_list(value: str | None) -> tuple[str, ...]:
    """A comma-separated option as a tuple of its non-empty, stripped parts."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_formats(value: str, *, allowed: tuple[str, ...], option: str = "--format") -> tuple[str, ...]:
    """--format's kinds in `allowed`'s order; InputError for an unknown or empty list."""
    chosen = split_list(value.lower())
    unknown = [kind for kind in chosen if kind not in allowed]
    if unknown or not chosen:
        raise InputError(f"{option}: '{unknown[0] if unknown else value}' is not a comma-separated list of {', '.join(allowed)}")
    return tuple(kind for kind in allowed if kind in chosen)


def write_atomically(*, path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees a half-written file."""
    write_bytes_atomically(path=path, data=text.encode("utf-8"))


def write_bytes_atomically(*, path: Path, data: bytes, mode: int | None = None) -> None:
    """`write_atomically` for bytes; `mode` sets the permissions before the file appears under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, _default_mode() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _default_mode() -> int:
    """What a plainly created file would get (0o666 minus the umask); mkstemp alone gives 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_context(path: Path | None) -> tuple[ReportContext | None, bytes | None]:
    """(the report context, its exact bytes) from --context, or (None, None); validated before any audit work."""
    return (None, None) if path is None else load_context(path=path)


def render_reports(
    *, result: AuditResult, results_json: bytes, formats: tuple[str, ...], context, context_yaml, policy: Path | None = None
) -> dict[str, bytes]:
    """The requested report files in memory ({} when neither html nor pdf is asked for); the policy file, when
    one was given, is attached to the PDF beside results.json."""
    kinds = tuple(kind for kind in formats if kind in ("html", "pdf"))
    if not kinds:
        return {}
    from mia_audit.report import ReportInputs, render_documents  # heavy (matplotlib, weasyprint): only when asked
    from mia_audit.report.pdf import PdfAttachment

    attachments = ()
    if policy is not None:
        attachments = (
            PdfAttachment(name="policy.yaml", data=policy.read_bytes(), description="release-gate policy applied"),
        )

    rendered = render_documents(
        inputs=ReportInputs(
            result=result,
            results_json=results_json,
            generated_utc=utc_timestamp(),
            context=context,
            context_yaml=context_yaml,
            extra_attachments=attachments,
        ),
        formats=kinds,
    )
    if rendered.refused_fetches:
        sys.stderr.write(
            f"mia-audit: warning: the report referenced {len(rendered.refused_fetches)} external resource(s); "
            "none was fetched\n"
        )
    return rendered.files


def check_junit_path(junit: Path | None) -> None:
    if junit is not None and junit.is_dir():
        raise InputError(f"--junit {junit}: is a folder; give a file name such as {junit / 'junit.xml'}")


def write_gate_artifacts(*, verdict: Verdict, result: AuditResult, junit: Path | None) -> None:
    """JUnit XML when asked for, and the Markdown summary when $GITHUB_STEP_SUMMARY is set."""
    if junit is not None:
        write_atomically(path=junit, text=junit_xml(verdict=verdict, result=result))
    try:
        append_step_summary(markdown=step_summary_markdown(verdict=verdict, result=result))
    except OSError as error:
        sys.stderr.write(f"mia-audit: warning: could not append to $GITHUB_STEP_SUMMARY: {error}\n")
