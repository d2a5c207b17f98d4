"""What a CI system shows from a verdict: a JUnit XML file and a Markdown job summary.

JUnit: one test suite, one test case per policy rule, mapped so CI dashboards agree with the exit code:

| rule outcome | JUnit |
|---|---|
| pass | passed |
| warn | passed, with the warning in `system-out` (a `failure` under `fail_on_warn`) |
| fail | `failure` |
| inconclusive | `error`: the check could not be carried out on this evidence (exit code 3 blocks too) |
| skipped (target absent, `if_missing: skip`) | `skipped` |
| warn / fail / inconclusive waived by a waiver in force | `skipped`, naming the waiver |

The Markdown summary is appended to the file named by $GITHUB_STEP_SUMMARY (GitHub Actions shows it on
the run's page). Both carry aggregate numbers only: no record, id or per-record score.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from mia_audit.gate.metric_catalog import METRICS
from mia_audit.results import AuditResult
from mia_audit.gate.verdict import RuleResult, Verdict

_MARKS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "inconclusive": "❔ inconclusive",
          "skipped": "⏭️ skipped"}


def value_text(line: RuleResult) -> str:
    """`0.57 [0.54, 0.60]`, or `+0.33 pp (0.00% → 0.33%)` for a regression."""
    spec = METRICS[line.metric]
    if line.kind == "regression":
        if line.judged is None:
            return "–"
        return (f"{spec.format_change(line.judged)} ({spec.format(line.baseline_value)} → "
                f"{spec.format(line.baseline_value + line.judged)})")
    if line.value is None:
        return "–"
    return spec.format(line.value) + ("" if line.ci is None else f" {spec.format_ci(line.ci)}")


def threshold_text(line: RuleResult) -> str:
    spec = METRICS[line.metric]
    fmt = spec.format_change if line.kind == "regression" else spec.format
    parts = [f"warn > {fmt(line.warn)}" if line.warn is not None else "",
             f"fail > {fmt(line.fail)}" if line.fail is not None else ""]
    return ", ".join(part for part in parts if part)


def waiver_text(line: RuleResult) -> str:
    if line.waiver is None:
        return ""
    waiver = line.waiver
    if waiver.status == "expired":
        return f"expired {waiver.expires} ({waiver.approver})"
    if waiver.status == "active":
        return f"waived until {waiver.expires} by {waiver.approver}"
    return f"not needed (until {waiver.expires})"


def junit_xml(*, verdict: Verdict, result: AuditResult) -> str:
    """JUnit XML with one test case per rule (see the module docstring for the mapping)."""
    cases = []
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for line in verdict.rules:
        case = ET.Element("testcase", {"classname": "mia-audit.policy", "name": line.id, "time": "0"})
        spec = METRICS[line.metric]
        detail = (f"{line.target}, {spec.label} ({line.on}): {value_text(line)}; thresholds: {threshold_text(line)}; "
                  f"outcome: {line.outcome}; {line.reason}")
        waived = line.waiver is not None and line.waiver.applied
        if waived:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", {"message": f"{line.outcome}, waived: {waiver_text(line)}: "
                                                       f"{line.waiver.reason}"})
        elif line.outcome == "fail" or (line.outcome == "warn" and verdict.fail_on_warn):
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", {"type": line.outcome, "message": line.reason})
            failure.text = detail
        elif line.outcome == "inconclusive":
            counts["errors"] += 1
            error = ET.SubElement(case, "error", {"type": "inconclusive", "message": line.reason})
            error.text = detail
        elif line.outcome == "skipped":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", {"message": line.reason})
        if not len(case) or case[0].tag == "skipped":
            ET.SubElement(case, "system-out").text = detail
        cases.append(case)
    attributes = {"tests": str(len(cases)), **{key: str(value) for key, value in counts.items()}, "time": "0"}
    suites = ET.Element("testsuites", {"name": "mia-audit", **attributes})
    suite = ET.SubElement(suites, "testsuite", {"name": "mia-audit policy", **attributes,
                                                "timestamp": result.created_utc.replace("Z", "")})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("verdict", verdict.verdict), ("policy", verdict.policy), ("model_sha256", result.model.sha256),
                        ("evaluated_on", verdict.evaluated_on), ("summary", verdict.summary)):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def step_summary_markdown(*, verdict: Verdict, result: AuditResult) -> str:
    """A Markdown section: the verdict, what was audited, and one table row per rule."""
    model = Path(result.model.path).name
    lines = [
        f"## mia-audit privacy gate: {_MARKS[verdict.verdict].split(' ')[0]} {verdict.verdict.upper()}",
        "",
        f"{verdict.summary}.",
        "",
        f"Model `{_cell(model)}` (sha256 `{result.model.sha256[:12]}…`), {result.data.members.n} members, "
        f"{result.data.nonmembers.n} non-members, {len(result.attacks)} attacks; policy: {_cell(verdict.policy)}; "
        f"evaluated on {verdict.evaluated_on}" + (f"; baseline: {_cell(verdict.baseline)}" if verdict.baseline else "")
        + ".",
        "",
        "| rule | target | metric | value [95% CI] | thresholds | outcome | waiver | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for line in verdict.rules:
        spec = METRICS[line.metric]
        lines.append(
            "| " + " | ".join(_cell(cell) for cell in (
                line.id, line.target, f"{spec.label} ({line.on})", value_text(line), threshold_text(line),
                _MARKS[line.outcome], waiver_text(line), line.reason,
            )) + " |"
        )
    lines.append("")
    return "\n".join(lines) + "\n"


def append_step_summary(*, markdown: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when set; returns the file written, or None."""
    environ = os.environ if environ is None else environ
    target = environ.get("GITHUB_STEP_SUMMARY", "").strip()
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(markdown)
    return path


__all__ = ["append_step_summary", "junit_xml", "step_summary_markdown", "threshold_text", "value_text", "waiver_text"]
