"""The privacy impact assessment report, rendered from a real audit of the committed sample through the CLI.

One module-scoped run renders the PDF (with a hostile metadata column name and a hostile context value);
`mia-audit render` re-renders it from results.json alone, after the model and manifests are deleted. The
numbers printed in the PDF are checked against results.json, formatted independently here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pypdf import PdfReader
from scipy.special import log_softmax
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.results import AuditResult
from tests.conftest import ROOT, SAMPLES, read_rows, write_rows

runner = CliRunner()
HOSTILE = "<img src=x onerror=alert(1)>"
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z
SECTION_TITLES = [
    "1. Document control",
    "2. Executive summary",
    "3. Scope and processing",
    "4. Threat model",
    "5. Methodology",
    "6. Global results",
    "7. Slices and subpopulations",
    "8. Defense comparison",
    "9. Recommendations",
    "10. Policy outcome",
    "11. Limitations",
    "12. Regulatory cross-reference",
    "13. Glossary",
    "Appendix",
]
CONTEXT_YAML = f"""\
controller: Example Clinic
purpose: "{HOSTILE}"
special_category: true
exposure: probabilities
prepared_by: {{name: A. Assessor, role: Privacy engineer}}
"""


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def pdf_text(path: Path) -> str:
    return _flat(" ".join(page.extract_text() for page in PdfReader(path).pages))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run the sample audit (ids, a hostile meta column, a context, the restricted export), then render again."""
    work = tmp_path_factory.mktemp("report")
    header, rows = read_rows(SAMPLES / "members.csv")
    _, nonmember_rows = read_rows(SAMPLES / "nonmembers.csv")
    new_header = ["record_id", HOSTILE, *header]
    members = write_rows(work / "members.csv", new_header, [[f"REC-M{i:05d}", "a", *r] for i, r in enumerate(rows)])
    nonmembers = write_rows(
        work / "nonmembers.csv", new_header, [[f"REC-N{i:05d}", "b", *r] for i, r in enumerate(nonmember_rows)]
    )
    model = shutil.copy(SAMPLES / "digits_mlp.onnx", work / "model.onnx")
    context = work / "context.yaml"
    context.write_text(CONTEXT_YAML)
    out = work / "out"
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        run = runner.invoke(app, [
            "run", str(model), "--members", str(members), "--nonmembers", str(nonmembers), "--out", str(out),
            "--bootstrap", "200", "--id-column", "record_id", "--meta-columns", HOSTILE, "--context", str(context),
            "--export-record-scores", "--shadow-models", "4",
        ])
        assert run.exit_code in (0, 1, 3), run.stderr  # the default policy's verdict
        # The report is rendered from results.json alone: no model, no data.
        kept = work / "kept"
        kept.mkdir()
        shutil.copy(out / "results.json", kept / "results.json")
        shutil.copy(context, kept / "context.yaml")
        for path in (model, members, nonmembers, context):
            Path(path).unlink()
        # ... in another process with another hash seed: nothing may depend on set or dict order.
        rerender = subprocess.run(
            [sys.executable, "-m", "mia_audit", "render", str(kept / "results.json"), "--context",
             str(kept / "context.yaml"), "--out", str(work / "again")],
            cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True, text=True, timeout=300,
        )
        assert rerender.returncode == 0, rerender.stderr
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous
    document = json.loads((out / "results.json").read_text())
    return {
        "out": out,
        "again": work / "again",
        "run": run,
        "document": document,
        "result": AuditResult.model_validate(document),
        "text": pdf_text(out / "report.pdf"),
        "html": (out / "report.html").read_text(encoding="utf-8"),
        "context": CONTEXT_YAML.encode(),
    }


def test_run_writes_results_html_and_pdf_by_default(report):
    out = report["out"]
    assert {p.name for p in out.iterdir()} == {
        "results.json", "report.html", "report.pdf", "RESTRICTED_record_scores.csv"
    }
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-1.7")
    assert "report: " in report["run"].stdout


def test_pdf_has_every_section_in_order(report):
    text = report["text"]
    contents = text[text.find("Contents"):text.find("1. Document control")]
    positions = []
    for title in SECTION_TITLES:
        assert title.split(". ")[-1] in contents, title  # listed in the table of contents
        positions.append(text.rfind("Appendix A.") if title == "Appendix" else text.find(title))
    assert all(p > 0 for p in positions), dict(zip(SECTION_TITLES, positions))
    assert positions == sorted(positions)


def test_headline_numbers_in_the_pdf_equal_results_json(report):
    text, document = report["text"], report["document"]
    worst = document["worst_case"]
    head = worst["tpr_at_fpr_0.001"]
    summary = text[text.find("2. Executive summary"):text.find("3. Scope and processing")]
    assert "Leakage detected" in summary
    verdict = document["verdict"]
    assert f"policy outcome: {verdict['verdict'].upper()}" in summary and verdict["policy"] in summary
    assert f"Worst-case AUC {worst['auc']:.3f} [{worst['auc_ci'][0]:.3f}, {worst['auc_ci'][1]:.3f}]" in summary
    tpr = f"{head['tpr'] * 100:.2f}% [{head['ci'][0] * 100:.2f}%, {head['ci'][1] * 100:.2f}%]"
    assert tpr in summary
    members = document["data"]["members"]["n"]
    assert f"{worst['members_singled_out_at_0.001']} of {members}" in summary
    gap = document["utility"]["generalization_gap"]
    baseline = next(a for a in document["attacks"] if a["name"] == "baseline")
    assert f"{gap:+.3f} [{baseline['advantage_ci'][0]:.3f}, {baseline['advantage_ci'][1]:.3f}]" in summary
    assert f"AUC {worst['auc']:.3f} (95% CI [{worst['auc_ci'][0]:.3f}, {worst['auc_ci'][1]:.3f}])" in summary
    assert worst["attack"] in summary


def test_attack_table_rows_equal_results_json(report):
    text, document = report["text"], report["document"]
    table = text[text.find("6. Global results"):text.find("Attacks that beat chance")]
    for attack in document["attacks"]:
        match = re.search(rf"(?<!\w){re.escape(attack['name'])}(?!\w)", table)
        assert match, attack["name"]
        row = table[match.start():match.start() + 400]
        expected = [f"{attack['auc']:.3f}", f"[{attack['auc_ci'][0]:.3f}, {attack['auc_ci'][1]:.3f}]"]
        for key in ("0.001", "0.01", "0.1"):
            point = attack["tpr_at_fpr"][key]
            expected.append(f"{point['tpr'] * 100:.2f}%")
            expected.append(f"[{point['ci'][0] * 100:.2f}%, {point['ci'][1] * 100:.2f}%]")
        expected += [
            f"{attack['advantage']:+.3f}",
            f"[{attack['advantage_ci'][0]:.3f}, {attack['advantage_ci'][1]:.3f}]",
            f"{attack['balanced_accuracy']:.3f} {attack['epsilon_lower_bound']:.2f}",
        ]
        cursor = 0
        for value in expected:  # in this order within the row
            found = row.find(value, cursor)
            assert found >= 0, (attack["name"], value, row)
            cursor = found + len(value)


def test_pdf_is_pdfa3_with_metadata_and_attachments(report):
    out = report["out"]
    reader = PdfReader(out / "report.pdf")
    attached = reader.attachments
    assert attached["results.json"][0] == (out / "results.json").read_bytes()
    assert attached["context.yaml"][0] == report["context"]
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp or "<pdfaid:part>3</pdfaid:part>" in xmp
    assert 'pdfaid:conformance="U"' in xmp or "<pdfaid:conformance>U</pdfaid:conformance>" in xmp
    meta = reader.metadata
    assert meta.title.startswith("Membership-inference privacy impact assessment")
    assert meta.author.startswith("mia-audit")
    assert "membership-inference leakage" in meta.subject
    assert meta["/CreationDate"] == "D:20260101000000Z"
    assert "2026-01-01T00:00:00Z" in report["text"]


def test_render_from_results_alone_is_byte_identical(report):
    """Same results.json, context and SOURCE_DATE_EPOCH → the same bytes, without the model or the data."""
    for name in ("report.pdf", "report.html"):
        assert (report["again"] / name).read_bytes() == (report["out"] / name).read_bytes(), name


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            self.attributes.append((name, value or ""))
            if name == "id":
                self.ids.append(value)


def test_html_is_self_contained(report):
    html = report["html"]
    parsed = _Collector()
    parsed.feed(html)
    assert "script" not in parsed.tags
    assert not {"img", "link", "iframe", "object", "embed", "base", "audio", "video"} & set(parsed.tags)
    for name, value in parsed.attributes:
        assert name not in ("src", "srcset", "background", "action", "formaction"), (name, value)
        if name.endswith("href"):
            assert value.startswith("#"), (name, value)
        assert not name.startswith("on"), name
    for reference in re.findall(r"url\(\s*([^)]*)\)", html):
        assert reference.strip("'\" ").startswith("#"), reference
    assert "@import" not in html
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate ids across inline charts"
    assert parsed.tags.count("svg") == 3  # ROC, distributions, per-slice AUC


def test_hostile_names_are_escaped_in_html_and_inert_in_pdf(report):
    html, text = report["html"], report["text"]
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Example Clinic" in html
    # In the PDF the strings are plain text (meta column and context purpose), and no image exists.
    assert text.count(HOSTILE) >= 2
    reader = PdfReader(report["out"] / "report.pdf")
    for page in reader.pages:
        objects = page.get("/Resources", {}).get("/XObject", {}) or {}
        assert all(obj.get_object().get("/Subtype") != "/Image" for obj in objects.values())
    assert "external resource" not in report["run"].stderr


def test_report_holds_no_record_ids_or_per_record_scores(report):
    out = report["out"]
    everything = report["html"] + report["text"] + (out / "results.json").read_text()
    assert "REC-M" not in everything and "REC-N" not in everything
    restricted = (out / "RESTRICTED_record_scores.csv").read_text()
    assert "REC-M00000" in restricted  # ... they are only in the restricted file
    assert "RESTRICTED_record_scores" not in report["html"]
    assert "exported on request to a separate RESTRICTED file" in report["text"]


def test_restricted_export_scores_equal_an_independent_computation(report):
    path = report["out"] / "RESTRICTED_record_scores.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, rows = read_rows(path)
    assert header == ["attack", "set", "row", "id", "score"]
    document = report["document"]
    n_members, n_nonmembers = document["data"]["members"]["n"], document["data"]["nonmembers"]["n"]
    assert len(rows) == len(document["attacks"]) * (n_members + n_nonmembers)
    loss_rows = [r for r in rows if r[0] == "loss"]
    session = ort.InferenceSession(str(SAMPLES / "digits_mlp.onnx"))
    for side, csv_name, prefix in (("member", "members.csv", "REC-M"), ("nonmember", "nonmembers.csv", "REC-N")):
        data = np.loadtxt(SAMPLES / csv_name, delimiter=",", skiprows=1)
        x, y = data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64)
        logits = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float64)
        loss = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
        mine = [r for r in loss_rows if r[1] == side]
        assert [int(r[2]) for r in mine] == list(range(1, len(y) + 1))
        assert [r[3] for r in mine] == [f"{prefix}{i:05d}" for i in range(len(y))]
        np.testing.assert_allclose([float(r[4]) for r in mine], -loss, rtol=1e-6, atol=1e-9)


def test_context_fills_scope_and_signature_and_missing_items_stay_visible(report):
    text = report["text"]
    assert "Controller / covered entity Example Clinic" in text
    assert "A. Assessor" in text
    assert text.count("TO BE COMPLETED") >= 8  # processor, lawful basis, ... are not in the context
    assert "Train with DP-SGD" in text  # special-category data makes DP-SGD a requirement, not an option


def test_older_results_of_the_same_schema_render(report, tmp_path):
    """A results.json written before the distributions and slice fields existed still renders (both formats)."""
    document = dict(report["document"])
    for key in ("distributions", "slices", "slice_summary", "subjects"):
        document.pop(key, None)
    older = tmp_path / "results.json"
    older.write_text(json.dumps(document, indent=2))
    result = runner.invoke(app, ["render", str(older)])
    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "report.html").read_text()
    assert "not available in this results file" in html
    assert html.count("<svg") == 1  # ROC only
    assert "not measured" in html and "Not run in this audit.</strong> Leakage was measured over the whole" in html
    assert PdfReader(tmp_path / "report.pdf").attachments["results.json"][0] == older.read_bytes()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not a JSON document (line 1"),
        ('{"schema_version": "2.0"}', "results schema version '2.0' is not readable"),
        ('{"schema_version": "1.0", "tool_version": "0.1.0"}', "key 'seed': Field required"),
    ],
)
def test_render_refuses_bad_results_with_one_line(tmp_path, content, fragment):
    bad = tmp_path / "results.json"
    bad.write_text(content)
    result = runner.invoke(app, ["render", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "out").exists()


def test_bad_context_is_refused_before_the_audit(small_audit):
    context = small_audit["dir"] / "context.yaml"
    context.write_text("controller: X\ncontroler_typo: Y\n")
    out = small_audit["dir"] / "out"
    result = runner.invoke(app, ["run", str(small_audit["model"]), "--members", str(small_audit["members"]),
                                 "--nonmembers", str(small_audit["nonmembers"]), "--out", str(out),
                                 "--context", str(context)])
    assert result.exit_code == 2
    assert f"{context}: key 'controler_typo': unknown key" in result.stderr
    assert not out.exists()


def test_format_chooses_outputs(small_audit):
    out = small_audit["dir"] / "out"
    args = ["run", str(small_audit["model"]), "--members", str(small_audit["members"]), "--nonmembers",
            str(small_audit["nonmembers"]), "--out", str(out), "--bootstrap", "50", "--label-only-queries", "2"]
    bad = runner.invoke(app, [*args, "--format", "json,docx"])
    assert bad.exit_code == 2 and "--format: 'docx'" in bad.stderr and not out.exists()
    result = runner.invoke(app, [*args, "--format", "html"])
    assert result.exit_code == 3, result.stderr  # 150 non-members: the default policy cannot decide
    assert {p.name for p in out.iterdir()} == {"report.html"}


def test_policy_file_is_attached_to_the_pdf(small_audit):
    """DESIGN §5 / issue 3: PDF/A-3 with results.json and the policy file attached when one is given."""
    policy = small_audit["dir"] / "mia-policy.yaml"
    assert runner.invoke(app, ["policy", "init", str(policy)]).exit_code == 0
    out = small_audit["dir"] / "out-policy"
    result = runner.invoke(app, ["run", str(small_audit["model"]), "--members", str(small_audit["members"]),
                                 "--nonmembers", str(small_audit["nonmembers"]), "--out", str(out), "--bootstrap", "50",
                                 "--label-only-queries", "2", "--format", "json,pdf", "--policy", str(policy)])
    assert result.exit_code in (0, 1, 3), result.stderr
    attached = PdfReader(out / "report.pdf").attachments
    assert attached["policy.yaml"][0] == policy.read_bytes()
    assert attached["results.json"][0] == (out / "results.json").read_bytes()
