"""Report section 8 (defense comparison) from a real, small step-7 run on the committed sample.

One module-scoped CLI run retrains the sample's architecture (30 epochs) with label smoothing and wraps the
deployed model with top-3 masking, re-attacks both, and renders HTML and PDF. The numbers printed in the report are checked
against results.json, formatted independently here; the masking statement's numbers are also checked against
onnxruntime (the baseline attack's advantage is member accuracy − attack-evaluation non-member accuracy).
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re

import numpy as np
import onnxruntime as ort
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from mia_audit.seeds import SeedStreams
from mia_audit.cli import app
from mia_audit.defenses.protocol import split_nonmembers
from mia_audit.report import ReportInputs, render_documents
from mia_audit.report.defense_chart import privacy_utility_chart
from mia_audit.report.defense_statements import masking_statements
from mia_audit.report.defense_view import build_defense_section
from mia_audit.results import AuditResult, DefenseRow
from tests.conftest import SAMPLES, read_rows

runner = CliRunner()
HOSTILE = "<img src=x onerror=alert(1)>"
EPOCH = "1767225600"
TITLES = {
    "original": "Original model (as deployed)",
    "retrained_baseline": "Retrained baseline (no defense)",
    "label_smoothing(epsilon=0.1)": "Label smoothing (epsilon = 0.1)",
    "top_k(k=3)": "Top-k masking (k = 3)",
}


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment (tags dropped, entities decoded, whitespace collapsed)."""
    fragment = fragment.replace("<wbr>", "").replace("&shy;", "")
    return _flat(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


@pytest.fixture(scope="module")
def step7(tmp_path_factory):
    work = tmp_path_factory.mktemp("defense-report")
    out = work / "out"
    recipe = work / "recipe.yaml"
    recipe.write_text("training:\n  epochs: 30\n")  # the retrained variants' recipe (keeps the test fast)
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        run = runner.invoke(app, [
            "run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(SAMPLES / "members.csv"),
            "--nonmembers", str(SAMPLES / "nonmembers.csv"), "--out", str(out), "--attacks", "baseline,loss",
            "--shadow-models", "0", "--defenses", "label_smoothing:0.1,top_k:3", "--defense-shadow-models", "0",
            "--bootstrap", "50", "--no-slices", "--shadow-recipe", str(recipe), "--quiet",
        ])
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous
    assert run.exit_code in (0, 1, 3), run.stderr
    document = json.loads((out / "results.json").read_text())
    html = (out / "report.html").read_text(encoding="utf-8")
    return {
        "out": out,
        "document": document,
        "result": AuditResult.model_validate(document),
        "html": html,
        "section": html[html.find('<section id="defenses">'):html.find('<section id="recommendations">')],
        "pdf": _flat(" ".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)),
    }


def _table_rows(section: str) -> list[str]:
    table = section[section.find('<table class="grid defenses">'):]
    body = table[table.find("<tbody>"):table.find("</tbody>")]
    return [_text(chunk) for chunk in re.split(r"<tr\b[^>]*>", body)[1:]]


def _expected_cells(row: dict) -> list[str]:
    """The row's numbers as the report must print them, formatted here from results.json."""
    point = row["worst_tpr_at_fpr_0.001"]
    if point["flag"] == "not_estimable":
        tpr = ["n/e‡"]
    else:
        mark = "†" if point["flag"] == "low_evidence" else ""
        tpr = [f"{point['tpr'] * 100:.2f}%{mark}", f"[{point['ci'][0] * 100:.2f}%, {point['ci'][1] * 100:.2f}%]"]
    advantage_ci = row["baseline_attack_advantage_ci"]
    return [
        f"{row['test_accuracy']:.3f}",
        f"({row['utility_drop']:+.3f})",
        f"{row['generalization_gap']:+.3f}",
        f"{row['worst_auc']:.3f}",
        f"[{row['worst_auc_ci'][0]:.3f}, {row['worst_auc_ci'][1]:.3f}]",
        row["worst_attack"],
        *tpr,
        f"{row['balanced_accuracy']:.3f}",
        f"{row['baseline_attack_advantage']:+.3f}",
        f"[{advantage_ci[0]:.3f}, {advantage_ci[1]:.3f}]",
        f"{row['effectiveness'] * 100:+.1f}%" if row["effectiveness"] is not None else "–",
        "Pareto-optimal" if row["pareto_optimal"] else "–",
    ]


def _in_order(text: str, values: list[str]) -> None:
    cursor = 0
    for value in values:
        found = text.find(value, cursor)
        assert found >= 0, (value, text)
        cursor = found + len(value)


def _title(row: dict) -> str:
    return TITLES[row["role"]] if row["role"] in TITLES else TITLES[row["label"]]


def test_the_run_compares_four_rows(step7):
    rows = step7["document"]["defenses"]["rows"]
    assert [row["role"] for row in rows] == ["original", "retrained_baseline", "variant", "variant"]
    assert [row["label"] for row in rows[2:]] == ["label_smoothing(epsilon=0.1)", "top_k(k=3)"]
    assert all(row["status"] == "done" for row in rows)


def test_table_rows_in_the_html_equal_results_json(step7):
    rows = step7["document"]["defenses"]["rows"]
    printed = _table_rows(step7["section"])
    assert len(printed) == len(rows)
    for index, (row, text) in enumerate(zip(rows, printed), start=1):
        assert text.startswith(f"{index} {_title(row)}"), text
        _in_order(text, _expected_cells(row))


def test_table_rows_in_the_pdf_equal_results_json(step7):
    text = step7["pdf"]
    section = text[text.find("8. Defense comparison"):text.find("9. Recommendations")]
    table = section[section.find("Pareto"):]
    for row in step7["document"]["defenses"]["rows"]:
        start = table.find(_title(row))
        assert start >= 0, _title(row)
        _in_order(table[start:start + 600], [v.replace("‡", "") for v in _expected_cells(row)])


def test_protocol_counts_recommendation_and_sources_are_printed(step7):
    defenses = step7["document"]["defenses"]
    section = _text(step7["section"])
    assert _flat(defenses["protocol"]) in section
    assert f"{defenses['n_train']} members" in section
    assert f"Utility test set {defenses['n_test']} non-members" in section
    assert f"Attack-evaluation non-members {defenses['n_attack_nonmembers']}" in section
    assert f"epochs {defenses['recipe']['epochs']}" in section
    assert _flat(defenses["recommendation"]) in section
    for row in defenses["rows"]:
        for defense in row["defenses"]:
            assert f"{defense['title']} {defense['reference']}" in section
    assert "Li, Li & Ribeiro 2021, CODASPY (seeds/003 §4.1)" in section
    epochs = defenses["rows"][2]["training"]["epochs"]
    assert f"#3 label_smoothing(epsilon=0.1): {epochs} epochs" in section


def test_executive_summary_names_the_measured_trade_off(step7):
    html = step7["html"]
    summary = _text(html[html.find('<section id="executive-summary">'):html.find('<section id="scope">')])
    assert "Defense comparison (section 8). " + _flat(step7["document"]["defenses"]["recommendation"]) in summary
    pdf = step7["pdf"]
    pdf_summary = pdf[pdf.find("2. Executive summary"):pdf.find("3. Scope and processing")]
    assert "Defense comparison (section 8)." in pdf_summary


def _attack_eval_advantage() -> tuple[float, float, float]:
    """Independently: the sample model's labels (onnxruntime), the step-7 split, the baseline attack's advantage."""
    session = ort.InferenceSession(str(SAMPLES / "digits_mlp.onnx"))
    name = session.get_inputs()[0].name

    def load(path):
        header, rows = read_rows(path)
        label = header.index("label")
        x = np.array([[float(v) for j, v in enumerate(r) if j != label] for r in rows], dtype=np.float32)
        return x, np.array([int(r[label]) for r in rows])

    (xm, ym), (xn, yn) = load(SAMPLES / "members.csv"), load(SAMPLES / "nonmembers.csv")
    member_correct = session.run(None, {name: xm})[0].argmax(1) == ym
    test, attack = split_nonmembers(labels=yn, rng=SeedStreams(run_seed=0).child("defenses").numpy("split"), parts=2)
    nonmember_correct = session.run(None, {name: xn})[0].argmax(1) == yn
    member_acc = member_correct.mean()
    return member_acc - nonmember_correct[attack].mean(), member_acc, nonmember_correct[test].mean()


def test_masking_statement_quotes_the_measured_baseline_attack(step7):
    rows = {row["label"]: row for row in step7["document"]["defenses"]["rows"]}
    masked, original = rows["top_k(k=3)"], rows["original model (as deployed)"]
    assert step7["result"].config["seed"] == 0
    advantage, member_acc, test_acc = _attack_eval_advantage()
    # top-k keeps the predicted label: the masked row's baseline attack is the original model's label gap
    assert masked["baseline_attack_advantage"] == pytest.approx(advantage, abs=1e-12)
    assert masked["member_accuracy"] == pytest.approx(member_acc) and masked["test_accuracy"] == pytest.approx(test_acc)
    section = _text(step7["section"])
    statement = section[section.find("Confidence masking and the label-only baseline attack"):]
    ci_masked, ci_original = masked["baseline_attack_advantage_ci"], original["baseline_attack_advantage_ci"]
    expected = (
        "Top-k masking (k = 3) leaves the label-only baseline attack untouched, as Li, Li & Ribeiro (2021, §4.1) show: "
        f"the label-only baseline attack's advantage is {masked['baseline_attack_advantage']:+.3f} "
        f"[{ci_masked[0]:.3f}, {ci_masked[1]:.3f}] with top_k(k=3) vs {original['baseline_attack_advantage']:+.3f} "
        f"[{ci_original[0]:.3f}, {ci_original[1]:.3f}] for the original model."
    )
    assert expected in statement
    assert f"member and test accuracy {member_acc:.3f} and {test_acc:.3f} in both rows" in statement
    assert "(748 attack-evaluation vs 1,497)" in statement
    assert "Top-k masking (k = 3) leaves the label-only baseline attack untouched" in step7["pdf"]


def test_masking_statement_follows_the_data():
    """Labels changed by the masking, a combined variant, and a missing baseline attack are said as such."""
    from mia_audit.results import DefenseApplied

    top_k = DefenseApplied(name="top_k", title="Top-k masking", kind="output", parameters={"k": 1}, reference="r")
    smooth = DefenseApplied(name="label_smoothing", title="Label smoothing", kind="training",
                            parameters={"epsilon": 0.1}, reference="r")
    common = {"status": "done", "member_accuracy": 1.0, "baseline_attack_advantage_ci": (0.01, 0.09)}
    original = DefenseRow(label="original", role="original", test_accuracy=0.9, baseline_attack_advantage=0.1,
                          **common)
    relabelled = DefenseRow(label="top_k(k=1)", role="variant", defenses=[top_k], test_accuracy=0.8,
                            baseline_attack_advantage=0.2, **common)
    trained = DefenseRow(label="label_smoothing(epsilon=0.1)", role="variant", defenses=[smooth], test_accuracy=0.91,
                         baseline_attack_advantage=0.05, **common)
    combined = DefenseRow(label="label_smoothing(epsilon=0.1)+top_k(k=1)", role="variant", defenses=[smooth, top_k],
                          test_accuracy=0.91, baseline_attack_advantage=0.05, **common)
    lines = masking_statements([original, relabelled, trained, combined])
    assert len(lines) == 2
    assert "changed some predicted labels (test accuracy 0.800 vs 0.900" in lines[0]
    assert "untouched" not in lines[0]
    assert "leaves the label-only baseline attack untouched" in lines[1]
    assert "+0.050 [0.010, 0.090] with label_smoothing(epsilon=0.1)+top_k(k=1) vs +0.050 [0.010, 0.090] for " \
           "label_smoothing(epsilon=0.1)" in lines[1]
    no_baseline = original.model_copy(update={"baseline_attack_advantage": None})
    assert "no baseline attack on the unmasked model" in masking_statements([no_baseline, relabelled])[0]


def test_privacy_utility_chart_is_labelled_and_deterministic(step7):
    section = step7["section"]
    svg = re.search(r"<svg.*?</svg>", section, flags=re.DOTALL).group(0)
    assert 'aria-label="privacy-utility"' in svg
    for label in ("Test accuracy (utility, higher is better)", "Worst-case attack AUC (lower is more private)",
                  "chance (AUC = 0.5)", "Pareto front (higher accuracy, lower AUC)"):
        assert label in svg
    rows = step7["document"]["defenses"]["rows"]
    for index, row in enumerate(rows, start=1):
        assert f"{index}. {_title(row)}" + (" — Pareto-optimal" if row["pareto_optimal"] else "") in svg
    ids = re.findall(r'id="([^"]+)"', svg)
    assert ids and all(identifier.startswith("privacy-utility-") for identifier in ids)
    figure = 4 if 'aria-label="slices"' in step7["html"] else 3  # numbered after the slice chart when it exists
    assert f"Figure {figure}. Privacy/utility trade-off" in _text(section)
    points = build_defense_section(step7["result"].defenses).points
    assert privacy_utility_chart(points=points) == privacy_utility_chart(points=points)
    assert [(p.test_accuracy, p.auc, tuple(p.auc_ci)) for p in points] == [
        (row["test_accuracy"], row["worst_auc"], tuple(row["worst_auc_ci"])) for row in rows
    ]


def test_recommendations_cite_the_measured_defense(step7):
    defenses = step7["document"]["defenses"]
    rows = defenses["rows"]
    baseline = next(r for r in rows if r["role"] == "retrained_baseline")
    pareto = [r for r in rows if r["role"] == "variant" and r["pareto_optimal"]]
    pool = [r for r in pareto if r["utility_drop"] <= 0.02] or pareto
    best = min(pool, key=lambda r: (r["worst_auc"], -r["test_accuracy"]))
    html = step7["html"]
    recommendations = _text(html[html.find('<section id="recommendations">'):html.find('<section id="policy">')])
    auc = f"worst-case AUC {best['worst_auc']:.3f} [{best['worst_auc_ci'][0]:.3f}, {best['worst_auc_ci'][1]:.3f}]"
    if best["worst_auc"] < baseline["worst_auc"]:
        assert f"Adopt the measured best trade-off: {best['label']}" in recommendations
        assert f"{best['label']}: {auc} ({best['worst_attack']})" in recommendations
    else:
        assert "No tested defense lowered the attack at an acceptable utility cost" in recommendations


def test_hostile_strings_in_a_comparison_are_escaped(step7):
    result: AuditResult = step7["result"]
    defenses = result.defenses
    hostile_rows = [
        row.model_copy(update={"label": f"{row.label}{HOSTILE}", "training": {**row.training, "notes": [HOSTILE]}})
        for row in defenses.rows
    ]
    hostile_rows.append(DefenseRow(label=HOSTILE, role="variant", status="skipped", reason=f"refused: {HOSTILE}"))
    hostile = result.model_copy(update={"defenses": defenses.model_copy(update={
        "rows": hostile_rows, "notes": [HOSTILE], "recommendation": f"pick {HOSTILE}", "protocol": HOSTILE,
    })})
    raw = hostile.to_json().encode()
    rendered = render_documents(
        inputs=ReportInputs(result=hostile, results_json=raw, generated_utc="2026-01-01T00:00:00Z"), formats=("html",)
    ).files["report.html"].decode()
    assert HOSTILE not in rendered
    assert "<img" not in rendered
    section = rendered[rendered.find('<section id="defenses">'):rendered.find('<section id="recommendations">')]
    assert section.count("&lt;img src=x onerror=alert(1)&gt;") >= 6  # protocol, recommendation, notes, skipped row, chart
    assert "skipped" in _text(section) and "refused: <img src=x onerror=alert(1)>" in _text(section)


def test_without_step_7_the_section_says_not_run(step7):
    result = step7["result"].model_copy(update={"defenses": None})
    html = render_documents(
        inputs=ReportInputs(result=result, results_json=result.to_json().encode(),
                            generated_utc="2026-01-01T00:00:00Z"), formats=("html",),
    ).files["report.html"].decode()
    section = html[html.find('<section id="defenses">'):html.find('<section id="recommendations">')]
    assert "Not run in this audit." in section and "privacy-utility" not in html
    assert "Defense comparison (section 8)." not in html


def test_literature_check_states_agreement_and_disagreement_with_the_numbers():
    from mia_audit.report.defense_statements import literature_comparison
    from mia_audit.results import DefenseApplied

    def variant(name, parameters, **values):
        defense = DefenseApplied(name=name, title=name, kind="training", parameters=parameters, reference="r")
        return DefenseRow(label=f"{name}()", role="variant", defenses=[defense], member_accuracy=1.0, **values)

    base = DefenseRow(label="baseline", role="retrained_baseline", test_accuracy=0.95, utility_drop=0.0,
                      generalization_gap=0.05, worst_auc=0.62, worst_auc_ci=(0.58, 0.66))
    smoothing = variant("label_smoothing", {"epsilon": 0.1}, test_accuracy=0.96, utility_drop=-0.01,
                        generalization_gap=0.04, worst_auc=0.67, worst_auc_ci=(0.63, 0.71))
    dropout = variant("dropout", {"p": 0.5}, test_accuracy=0.95, utility_drop=0.0, generalization_gap=0.05,
                      worst_auc=0.66, worst_auc_ci=(0.62, 0.70))
    dp = variant("dp_sgd", {"epsilon": 4.0}, test_accuracy=0.40, utility_drop=0.55, generalization_gap=0.06,
                 worst_auc=0.53, worst_auc_ci=(0.49, 0.57), dp_epsilon=3.99, dp_delta=1e-5,
                 training={"dp_noise_multiplier": 4.9})
    mixup = variant("mixup", {"alpha": 1.0}, test_accuracy=0.951, utility_drop=-0.001, generalization_gap=0.049,
                    worst_auc=0.66, worst_auc_ci=(0.62, 0.70))
    lines = literature_comparison([base, smoothing, dropout, dp, mixup], n_test=749, n_train=300)
    assert len(lines) == 3
    assert "worst-case AUC 0.670 [0.630, 0.710] vs the retrained baseline's 0.620 [0.580, 0.660]" in lines[0]
    assert lines[0].endswith("This audit does not reproduce the seed's finding.")
    assert "Consistent in direction with the literature." in lines[1]
    assert "noise multiplier 4.90 to reach this ε with 300 training records" in lines[1]
    error = 1.96 * np.sqrt(0.951 * 0.049 / 749)  # one test accuracy's sampling error, computed here
    assert f"(+0.001 narrower)" in lines[2] and f"(±{error:.3f}), so it is not established" in lines[2]
