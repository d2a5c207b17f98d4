"""Report building blocks without a PDF: context.yaml, histograms, charts, optional sections, verdict."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mia_audit.context import load_context
from mia_audit.evaluation.distributions import LOSS_EDGES, PROBABILITY_EDGES, fixed_bin_counts
from mia_audit.errors import InputError
from mia_audit.report import ReportInputs, render_documents
from mia_audit.report.charts import histogram_chart, roc_chart

GENERATED = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def result(sample_audit_run):
    return sample_audit_run.result


def _html(result, **extra) -> str:
    raw = result.to_json().encode()
    rendered = render_documents(inputs=ReportInputs(result=result, results_json=raw, generated_utc=GENERATED, **extra),
                                formats=("html",))
    return rendered.files["report.html"].decode()


# --- context.yaml -----------------------------------------------------------------------------------------


def test_context_loads_and_keeps_exact_bytes(tmp_path):
    path = tmp_path / "context.yaml"
    path.write_bytes(b"controller: ACME\ndata_categories: [age, diagnosis]\nspecial_category: false\n")
    context, raw = load_context(path=path)
    assert context.controller == "ACME" and context.data_categories == ["age", "diagnosis"]
    assert context.special_category is False and raw == path.read_bytes()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("controller: [unclosed\n", "not valid UTF-8 YAML (line"),
        ("- a\n- b\n", "must be a mapping"),
        ("exposure: everything\n", "key 'exposure'"),
        ("controler: typo\n", "key 'controler': unknown key"),
    ],
)
def test_bad_context_names_the_file_and_key(tmp_path, content, fragment):
    path = tmp_path / "context.yaml"
    path.write_text(content)
    with pytest.raises(InputError) as error:
        load_context(path=path)
    assert str(path) in str(error.value) and fragment in str(error.value)


# --- histograms ------------------------------------------------------------------------------------------


def test_fixed_bin_counts_agree_with_numpy_and_clip_into_the_end_bins():
    rng = np.random.default_rng(3)
    inside = rng.uniform(0, 1, 500)
    expected, _ = np.histogram(inside, bins=np.asarray(PROBABILITY_EDGES))
    assert fixed_bin_counts(values=inside, edges=PROBABILITY_EDGES) == expected.tolist()
    losses = np.array([0.0, 1e-20, 2e-12, 2.0, 1e9, np.inf])
    counts = fixed_bin_counts(values=losses, edges=LOSS_EDGES)
    assert sum(counts) == len(losses)
    assert counts[0] == 3 and counts[-1] == 2  # below 1e-12 → first bin, above 1e3 → last bin


def test_result_histograms_count_every_record(result):
    for histogram in result.distributions.values():
        assert sum(histogram.members) == result.data.members.n
        assert sum(histogram.nonmembers) == result.data.nonmembers.n
        assert len(histogram.edges) == len(histogram.members) + 1


# --- charts ----------------------------------------------------------------------------------------------


def test_charts_are_deterministic_labelled_and_prefixed(result):
    first = roc_chart(attacks=result.attacks, name="roc")
    assert first == roc_chart(attacks=result.attacks, name="roc")
    assert first.startswith("<svg") and "<script" not in first and "<!--" not in first
    for label in ("False positive rate", "True positive rate", "FPR = 0.1%", "chance"):
        assert label in first
    for attack in result.attacks:
        assert f"{attack.name} (AUC {attack.auc:.3f})" in first
    ids = re.findall(r'id="([^"]+)"', first)
    assert ids and all(identifier.startswith("roc-") for identifier in ids)
    histograms = histogram_chart(histograms=list(result.distributions.values()), name="distributions")
    assert "members (n = 300)" in histograms and "non-members (n = 1,497)" in histograms
    assert "Probability of the true label" in histograms


def test_any_number_of_attacks_including_shadow_families(result):
    """Shadow attacks arrive as extra `attacks` entries: table and ROC must take any number of them."""
    extra = [
        attack.model_copy(update={"name": f"shadow_{index}_{attack.name}", "family": "shadow"})
        for index, attack in enumerate(result.attacks * 3)
    ]
    many = result.model_copy(update={"attacks": result.attacks + extra})
    html = _html(many)
    for attack in many.attacks:
        assert f"{attack.name.replace('_', '_<wbr>')}" in html
        assert f"{attack.name} (AUC {attack.auc:.3f})" in html  # legend entry
    used_by = html[html.find("Used by: "):]
    assert "shadow_0_" in used_by[: used_by.find("</td>")]  # threat model lists the shadow attacks


def test_optional_sections_render_real_data_when_present(result):
    """Without slices section 7 is a placeholder; the verdict renders its section (the defense comparison has
    its own tests, on a real step-7 run, in test_report_defenses.py)."""
    plain = _html(result.model_copy(update={"slices": [], "slice_summary": None}))
    assert plain.count("Not run in this audit.") == 3
    assert "No policy was applied" in plain

    from mia_audit.gate.verdict import RuleResult, Verdict

    later = result.model_copy(update={"verdict": Verdict(
        verdict="fail", exit_code=1, summary="1 of 1 rules failed.", policy="policy file p.yaml",
        evaluated_on="2026-11-25",
        rules=[RuleResult(id="auc", kind="threshold", target="worst case", metric="auc", on="point", value=0.576,
                          warn=0.5, fail=0.55, outcome="fail", reason="worst-case AUC 0.576 > 0.55")])})
    html = _html(later)
    assert html.count("Not run in this audit.") == 1  # only the defense comparison (no --defenses)
    section = html[html.find('id="defenses"'):html.find('id="recommendations"')]
    assert "Not run in this audit." in section and "Workflow step 7: skipped" in section
    worst = result.slice_summary.worst
    assert worst.name in html
    assert "policy outcome: FAIL" in html and "worst-case AUC 0.576 &gt; 0.55" in html
    assert "Verdict: FAIL" in html and "policy file p.yaml" in html


def test_verdict_without_leakage_says_so_and_is_not_a_pass(result):
    chance = result.model_copy(
        update={
            "attacks": [
                a.model_copy(update={"auc_ci": (0.45, 0.55), "advantage_ci": (-0.01, 0.05), "tpr_at_fpr": {
                    k: p.model_copy(update={"ci": (0.0, float(k))}) for k, p in a.tpr_at_fpr.items()}})
                for a in result.attacks
            ]
        }
    )
    html = _html(chance)
    assert "No leakage detected at this audit&#39;s resolution" in html
    assert "this is not proof that the model does not leak" in html
    assert "No policy was applied" in html


def test_pdf_renderer_refuses_every_fetch():
    """Injected references (network, file, stylesheet, CSS url()) are refused, and the PDF still renders."""
    from datetime import datetime

    from mia_audit.report.pdf import render_pdf

    html = (
        '<html><body><p>text</p><img src="http://example.com/a.png"><img src="file:///etc/passwd">'
        '<link rel="stylesheet" href="https://example.com/s.css">'
        '<div style="background: url(file:///etc/hostname)">x</div></body></html>'
    )
    pdf, refused = render_pdf(html=html, attachments=[], moment=datetime(2026, 1, 1))
    assert pdf.startswith(b"%PDF")
    assert sorted(refused) == sorted(
        ["http://example.com/a.png", "file:///etc/passwd", "https://example.com/s.css", "file:///etc/hostname"]
    )


def test_built_package_carries_the_templates(tmp_path):
    """A non-editable install gets report_templates/ inside the package (setup.py's build_py copies it)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    build = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    packaged = build / "mia_audit" / "report_templates"
    for name in ("report.html.j2", "report.css", "_generic_table.html.j2"):
        assert (packaged / name).read_bytes() == (ROOT / "report_templates" / name).read_bytes()
    found = subprocess.run(
        [sys.executable, "-c", "from mia_audit.report.templates import templates_dir; print(templates_dir())"],
        cwd=tmp_path, env={"PYTHONPATH": str(build), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        check=True, timeout=120,
    )
    assert found.stdout.strip() == str(packaged)
