"""Section 7 of the report (slices, subpopulations, data subjects) and the executive summary's worst-slice line.

One module-scoped audit of the committed sample through the CLI, with a meta column `site` whose values
include a hostile string, a numeric meta column `age` (quantile bins) and a data-subject column (three records
per subject), so the section shows column slices, model-output slices, insufficient slices and subjects. The
numbers in the HTML table and the PDF are checked against results.json, formatted independently here.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.report import ReportInputs, render_documents
from mia_audit.report.charts import slice_auc_chart
from mia_audit.report.slice_view import CHART_LIMIT, TABLE_LIMIT, top_slices
from mia_audit.report.subject_view import SUBJECT_LIMIT
from mia_audit.results import AuditResult
from tests.conftest import SAMPLES, read_rows, write_rows

runner = CliRunner()
HOSTILE = "<img src=x onerror=alert(1)>"
SITES = (HOSTILE, "north", "south")
GENERATED = "2026-01-01T00:00:00Z"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


class _Tables(HTMLParser):
    """Cell texts of every <table>, keyed by its class attribute (body rows only)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._current: list[list[str]] | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self.img_tags = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.img_tags += 1
        if tag == "table":
            self._current = self.tables.setdefault(attrs.get("class", ""), [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._current is not None:
            self._current.append([])
        elif tag in ("td", "th") and self._in_body and self._current is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._current[-1].append(_flat("".join(self._cell)).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


def _manifest(path: Path, rows: list[list[str]], header: list[str], prefix: str) -> Path:
    body = [[f"person-{prefix}{i // 3:04d}", SITES[i % 3], str(20 + (7 * i) % 60), *row] for i, row in enumerate(rows)]
    return write_rows(path, ["subject", "site", "age", *header], body)


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    work = tmp_path_factory.mktemp("report-slices")
    header, member_rows = read_rows(SAMPLES / "members.csv")
    _, nonmember_rows = read_rows(SAMPLES / "nonmembers.csv")
    members = _manifest(work / "members.csv", member_rows, header, "m")
    nonmembers = _manifest(work / "nonmembers.csv", nonmember_rows, header, "n")
    out = work / "out"
    run = runner.invoke(app, [
        "run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(members), "--nonmembers", str(nonmembers),
        "--out", str(out), "--meta-columns", "site,age", "--slice-columns", "site,age", "--group-column", "subject",
        "--attacks", "loss,baseline,modified_entropy", "--shadow-models", "0", "--bootstrap", "100", "--quiet",
    ])
    assert run.exit_code in (0, 1, 3), run.stderr  # the default policy's verdict
    raw = (out / "results.json").read_bytes()
    html = (out / "report.html").read_text(encoding="utf-8")
    text = _flat(" ".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages))
    text = re.sub(r"(?<=\w)([-‐–]) (?=\w)", r"\1", text)  # undo line breaks after hyphens ("non- members")
    return {"result": AuditResult.model_validate_json(raw), "raw": raw, "html": html, "text": text}


def _section(html: str) -> str:
    return html[html.index('<section id="slices">'):html.index('<section id="defenses">')]


def _top_ranked_by_slice(result: AuditResult) -> list:
    """Independent of the view: each tested slice's entry with the smallest rank, best first."""
    best: dict[str, object] = {}
    for entry in result.slices:
        if entry.rank is not None and (entry.name not in best or entry.rank < best[entry.name].rank):
            best[entry.name] = entry
    return sorted(best.values(), key=lambda e: e.rank)


def _ci(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def test_executive_summary_worst_slice_line_equals_results_json(audit):
    result, text = audit["result"], audit["text"]
    worst = result.slice_summary.worst
    assert worst is not None and worst.significant and not worst.name.startswith(("correctness", "loss_percentile"))
    summary = text[text.index("2. Executive summary"):text.index("3. Scope and processing")]
    line = summary[summary.index("Worst slice"):summary.index("Worst case over data subjects")]
    assert f"{worst.name} — AUC {worst.auc:.3f} {_ci(worst.auc_ci)}" in line
    assert f"same attack on all records {worst.global_auc:.3f} {_ci(worst.global_auc_ci)}" in line
    assert f"adjusted p {worst.p_value_adjusted:.2g} over {result.slice_summary.n_tested} tests" in line
    assert f"attack {worst.attack}, {worst.n_members} members / {worst.n_nonmembers} non-" in line
    subjects = result.subjects.worst_case
    assert f"{subjects.attack} — AUC {subjects.auc:.3f} {_ci(subjects.auc_ci)}" in summary


def test_worst_slices_table_has_each_slice_once_with_its_top_ranked_attack(audit):
    result, html = audit["result"], audit["html"]
    rows = _tables(_section(html)).tables["grid slices"]
    expected = _top_ranked_by_slice(result)
    assert len(expected) > TABLE_LIMIT  # the run has more tested slices than the table shows
    assert len(rows) == TABLE_LIMIT
    names = [re.sub(r"^\d+\. |\s*worst slice$", "", row[0]).replace(" ◆", "") for row in rows]
    assert len(set(names)) == len(names)
    assert result.slice_summary.worst.name in names
    assert {entry.name for entry in result.slice_summary.worst_slices} <= set(names)
    by_name = {entry.name: entry for entry in expected}
    global_auc = {attack.name: attack for attack in result.attacks}
    positions = {entry.name: index for index, entry in enumerate(expected, start=1)}
    for row, name in zip(rows, names):
        entry = by_name[name]
        reference = global_auc[entry.attack]
        assert row[0].startswith(f"{positions[name]}. ")
        assert row[1] == entry.attack
        assert row[2] == f"{entry.n_members:,} / {entry.n_nonmembers:,}"
        assert row[3] == f"{entry.auc:.3f}{_ci(entry.auc_ci)}"
        assert row[4] == f"{reference.auc:.3f}{_ci(reference.auc_ci)}"
        point = entry.tpr_at_fpr["0.001"]
        assert row[5].startswith("n/e‡" if point.flag == "not_estimable" else f"{point.tpr * 100:.2f}%")
        assert row[6] == (
            f"{entry.member_accuracy:.3f} / {entry.nonmember_accuracy:.3f}gap {entry.accuracy_gap:+.3f}"
        )
        assert row[7] == f"{entry.p_value_adjusted:.2g}"
        assert row[8] == ("yes" if entry.significant else "no")
        assert ("◆" in row[0]) == entry.by_model_output
    assert [positions[name] for name in names] == sorted(positions[name] for name in names)


def test_worst_slice_numbers_and_exposure_are_in_the_pdf(audit):
    result, text = audit["result"], audit["text"]
    summary = result.slice_summary
    section = text[text.rindex("7. Slices and subpopulations"):text.rindex("8. Defense comparison")]
    worst = summary.worst
    assert f"{worst.auc:.3f} {_ci(worst.auc_ci)}" in section
    assert f"{worst.n_members:,} / {worst.n_nonmembers:,}" in section
    assert (
        f"{summary.n_tested} slice × attack pairs tested" in section
        and f"Of the {summary.n_tested} pairs, {summary.n_significant} are significant" in section
    )
    assert f"fewer than {summary.min_records} members or non-members is not tested" in section
    assert f"{summary.n_insufficient} of the {summary.n_slices} here" in section
    members = summary.members_singled_out_at_0_001
    assert f"{members} distinct member{'s' if members != 1 else ''} could be singled out at 0.1% FPR" in section
    if summary.members_singled_out_flag == "not_estimable":
        assert "not estimable: these slices have fewer than 1,000 non-members" in section
    for entry in summary.worst_slices:
        assert f"{entry.members_singled_out_at_0_001} of {entry.n_members}" in section
    insufficient = {e.name for e in result.slices if e.flag == "insufficient_evidence"}
    for name in insufficient:
        assert name in section
    assert "DeLong" in section and "Mann–Whitney" in section and "Benjamini–Hochberg" in section
    assert "not chosen as the worst slice" in section
    assert "Not run in this audit" not in section


def test_slice_chart_is_labelled_ranked_and_deterministic(audit):
    result, html = audit["result"], audit["html"]
    section = _section(html)
    svg = section[section.index('<svg class="chart-svg" role="img" aria-label="slices"'):]
    svg = svg[:svg.index("</svg>")]
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for expected in ("AUC (0.5 = chance, 1.0 = members fully separated)", "Slice (rank 1 at the top)",
                     "slice AUC with 95% CI", "same attack on all records", "chance (AUC 0.5)",
                     "slice cut by the model&#39;s own output", "Per-slice AUC with 95% confidence intervals"):
        assert expected.replace("&#39;", "'") in labels or expected in labels, expected
    shown = _top_ranked_by_slice(result)[:CHART_LIMIT]
    slice_labels = [label for label in labels if "=" in label and not label.startswith("AUC")]
    assert len(slice_labels) == min(CHART_LIMIT, len(_top_ranked_by_slice(result)))
    assert slice_labels[0] == shown[0].name.replace("<", "&lt;").replace(">", "&gt;")
    ids = re.findall(r'id="([^"]+)"', svg)
    assert ids and all(identifier.startswith("slices-") for identifier in ids)
    chosen = top_slices(result, limit=CHART_LIMIT)
    args = dict(slices=chosen, global_auc={a.name: a.auc for a in result.attacks}, worst=result.slice_summary.worst.name)
    assert slice_auc_chart(**args) == slice_auc_chart(**args)
    assert "Figure 3." in section and "not with the global worst-case attack" in section


def test_hostile_slice_values_are_escaped_in_html_and_plain_text_in_pdf(audit):
    html, text = audit["html"], audit["text"]
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # in the chart's tick labels
    assert _tables(html).img_tags == 0
    # In the PDF it is just text (chart label and table; the cell may wrap at a space).
    assert f"site={HOSTILE}".replace(" ", "") in text.replace(" ", "")


def test_subject_table_and_worst_case_equal_results_json(audit):
    result, html, text = audit["result"], audit["html"], audit["text"]
    subjects = result.subjects
    rows = _tables(_section(html)).tables["grid subjects"]
    assert 0 < len(rows) <= SUBJECT_LIMIT
    listed = {(re.sub(r" worst case$", "", row[0]), row[1]) for row in rows}
    assert len(listed) == len(rows)
    for row in rows:
        attack = next(a for a in subjects.attacks if a.name == re.sub(r" worst case$", "", row[0])
                      and a.aggregation == row[1])
        assert row[2] == f"{attack.n_members:,} / {attack.n_nonmembers:,}"
        assert row[3] == f"{attack.auc:.3f}{_ci(attack.auc_ci)}"
        assert row[5] == f"{attack.advantage:+.3f}{_ci(attack.advantage_ci)}"
    worst = subjects.worst_case
    assert rows[0][0].endswith("worst case") and f"{rows[0][0][:-len(' worst case')]} ({rows[0][1]})" == worst.attack
    assert f"Worst case over subjects: {worst.attack}, AUC {worst.auc:.3f} {_ci(worst.auc_ci)}" in text
    assert f"{subjects.n_member_subjects} member and {subjects.n_nonmember_subjects} non-member subjects" in text
    # Subject ids and record ids never reach the report.
    assert "person-" not in html and "person-" not in text


def test_methodology_and_appendix_describe_the_slice_step(audit):
    text = audit["text"]
    methodology = text[text.rindex("5. Methodology"):text.rindex("6. Global results")]
    assert "Step 6 also measures every attack on slices" in methodology
    appendix = text[text.rindex("Appendix A."):]
    assert "Benjamini–Hochberg-adjusted over every slice × attack tested" in appendix
    assert "Slice methods as recorded in results.json" in appendix
    for method in audit["result"].slice_summary.methods:
        assert method.replace("_", " ") in appendix


def _html_of(result: AuditResult) -> str:
    raw = result.to_json().encode()
    rendered = render_documents(inputs=ReportInputs(result=result, results_json=raw, generated_utc=GENERATED),
                                formats=("html",))
    return rendered.files["report.html"].decode()


def _summary_row(html: str, label: str) -> str:
    start = html.index(f'<th scope="row">{label}</th>')
    return _flat(re.sub(r"<[^>]+>", " ", html[start:html.index("</tr>", start)]))


def test_placeholder_only_without_slices_and_worst_slice_line_variants(audit):
    result = audit["result"]
    bare = result.model_copy(update={"slices": [], "slice_summary": None, "subjects": None})
    html = _html_of(bare)
    assert "Not run in this audit.</strong> Leakage was measured over the whole population only" in _section(html)
    assert "not measured" in _summary_row(html, "Worst slice")
    assert "Worst case over data subjects" not in html
    assert "no data-subject column was given" in _section(html)

    # Subjects alone: the slices placeholder stays, the subject table is shown.
    only_subjects = result.model_copy(update={"slices": [], "slice_summary": None})
    section = _section(_html_of(only_subjects))
    assert "Not run in this audit." in section and 'class="grid subjects"' in section

    # Nothing significant: the line says so and still names the top-ranked slice with its numbers.
    summary = result.slice_summary
    calm = result.model_copy(update={
        "slices": [entry.model_copy(update={"significant": False}) for entry in result.slices],
        "slice_summary": summary.model_copy(update={
            "n_significant": 0, "worst": summary.worst.model_copy(update={"significant": False})}),
    })
    line = _summary_row(_html_of(calm), "Worst slice")
    worst = summary.worst
    assert "no slice significantly above chance" in line and "FDR 0.05" in line
    assert f"AUC {worst.auc:.3f} {_ci(worst.auc_ci)}" in line

    # Slices measured but none large enough to test.
    untested = result.model_copy(update={
        "slices": [entry.model_copy(update={"flag": "insufficient_evidence", "rank": None, "auc": None,
                                            "auc_ci": None}) for entry in result.slices],
        "slice_summary": summary.model_copy(update={"n_tested": 0, "n_significant": 0, "worst": None,
                                                    "worst_slices": []}),
    })
    html = _html_of(untested)
    assert "none tested" in _summary_row(html, "Worst slice")
    assert "Not run in this audit." not in _section(html) and 'class="grid slices"' not in html
    assert 'aria-label="slices"' not in html


def test_summary_worst_slices_are_kept_even_below_the_limit(audit):
    """The table never drops the disparity summary's worst slices, even when others rank above them."""
    result = audit["result"]
    ranked = _top_ranked_by_slice(result)
    worst = result.slice_summary.worst.name
    assert ranked[0].by_model_output and ranked[0].name != worst  # a loss-percentile slice leads the ranking
    assert [entry.name for entry in top_slices(result, limit=1)] == [worst]
    required = {worst} | {entry.name for entry in result.slice_summary.worst_slices}
    assert {entry.name for entry in top_slices(result, limit=len(required))} == required
