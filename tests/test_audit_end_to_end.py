"""The main job on the committed sample, through the real CLI, checked against independent computations."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.results import AuditResult
from tests.conftest import SAMPLES, read_rows, write_rows

runner = CliRunner()

#: The sample's audit in tests trains 4 shadow models (the CLI default is 16) to keep the suite fast.
TEST_SHADOWS = "4"
SHADOW_ATTACKS = {"shadow_class_vector", "shadow_top3", "lira_online", "lira_offline", "rmia"}


def run_sample(tmp_path, *extra, members=None, nonmembers=None):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "run", str(SAMPLES / "digits_mlp.onnx"),
            "--members", str(members or SAMPLES / "members.csv"),
            "--nonmembers", str(nonmembers or SAMPLES / "nonmembers.csv"),
            "--out", str(out), "--bootstrap", "200", "--json", "--format", "json", "--shadow-models", TEST_SHADOWS,
            *extra,
        ],
    )
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    assert result.exit_code == document.get("verdict", {}).get("exit_code", -1), result.stderr
    return result, out


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    result, out = run_sample(tmp_path_factory.mktemp("sample"))
    return result, out, json.loads(result.stdout)


def _load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64)


def test_results_json_validates_and_equals_stdout(sample_run):
    result, out, document = sample_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == document
    parsed = AuditResult.model_validate(document)
    assert parsed.schema_version == "1.0"
    assert {a.name for a in parsed.attacks} == {
        "baseline", "top1_confidence", "true_label_probability", "loss", "entropy", "modified_entropy",
        "label_only_noise", *SHADOW_ATTACKS,
    }
    families = {a.name: a.family for a in parsed.attacks}
    assert {families[name] for name in SHADOW_ATTACKS} == {"shadow", "reference"}
    assert all(a.parameters["n_shadow_models"] == 4 for a in parsed.attacks if a.name in SHADOW_ATTACKS)
    shadows = parsed.shadow_models
    assert shadows is not None and shadows.n_shadow_models == 4 and shadows.source == "onnx_graph"
    assert shadows.n_pool == 1797 and shadows.recipe["training"]["optimizer"] == "adam"
    for attack in parsed.attacks:
        assert set(attack.tpr_at_fpr) == {"0.001", "0.01", "0.1"}
        assert attack.auc_ci[0] <= attack.auc <= attack.auc_ci[1]
        for point in attack.tpr_at_fpr.values():
            assert point.ci[0] <= point.ci[1]
            assert point.n_nonmembers == 1497
    assert parsed.model.output_kind == "logits" and parsed.model.n_classes == 10
    assert parsed.data.members.n == 300 and parsed.data.nonmembers.n == 1497


def test_sample_leaks_and_numbers_match_an_independent_computation(sample_run):
    """Loss-attack AUC equals sklearn on onnxruntime outputs; baseline obeys advantage = g, AUC = (1+g)/2."""
    _, _, document = sample_run
    session = ort.InferenceSession(str(SAMPLES / "digits_mlp.onnx"))
    xm, ym = _load(SAMPLES / "members.csv")
    xn, yn = _load(SAMPLES / "nonmembers.csv")
    logits_m = session.run(None, {session.get_inputs()[0].name: xm})[0]
    logits_n = session.run(None, {session.get_inputs()[0].name: xn})[0]
    loss_m = -log_softmax(logits_m.astype(np.float64), axis=1)[np.arange(len(ym)), ym]
    loss_n = -log_softmax(logits_n.astype(np.float64), axis=1)[np.arange(len(yn)), yn]
    expected_auc = roc_auc_score(np.r_[np.ones(len(ym)), np.zeros(len(yn))], -np.r_[loss_m, loss_n])
    attacks = {a["name"]: a for a in document["attacks"]}
    assert attacks["loss"]["auc"] == pytest.approx(expected_auc, abs=2e-3)

    acc_m = np.mean(logits_m.argmax(1) == ym)
    acc_n = np.mean(logits_n.argmax(1) == yn)
    utility = document["utility"]
    assert utility["member_accuracy"] == pytest.approx(acc_m)
    assert utility["nonmember_accuracy"] == pytest.approx(acc_n)
    gap = acc_m - acc_n
    assert attacks["baseline"]["advantage"] == pytest.approx(gap, abs=1e-12)
    assert attacks["baseline"]["auc"] == pytest.approx((1 + gap) / 2, abs=1e-12)
    # The sample is overfit on purpose: the audit must find leakage the CI excludes chance for.
    assert gap > 0.03
    assert attacks["loss"]["auc_ci"][0] > 0.5
    assert document["worst_case"]["attack"] in attacks


def test_workflow_records_all_eight_steps_honestly(sample_run):
    _, _, document = sample_run
    steps = document["workflow"]
    assert [s["step"] for s in steps] == list(range(1, 9))
    status = {s["step"]: s["status"] for s in steps}
    assert status[7] == "skipped"
    assert all(status[i] == "done" for i in (1, 2, 3, 4, 5, 6, 8))
    assert all(s["detail"] for s in steps)
    assert "4 shadow models" in steps[4]["detail"] and "lira_online" in steps[4]["detail"]
    assert "lira_online" not in steps[3]["detail"]  # step 4 is metric and label-only attacks only


def test_evidence_flags_follow_the_number_of_nonmembers(sample_run):
    _, _, document = sample_run
    for attack in document["attacks"]:
        assert attack["tpr_at_fpr"]["0.001"]["flag"] == "low_evidence"  # 1497 × 0.001 < 10
        assert attack["tpr_at_fpr"]["0.01"]["flag"] == "ok"


def test_same_seed_same_numbers_other_seed_other_cis(tmp_path, sample_run):
    _, _, first = sample_run
    _, out = run_sample(tmp_path, "--no-cache")  # shadows retrained: training is seeded and deterministic
    again = json.loads((out / "results.json").read_text())
    strip = lambda d: [{k: v for k, v in a.items()} for a in d["attacks"]]  # noqa: E731
    assert strip(again) == strip(first)
    _, out2 = run_sample(tmp_path / "b", "--seed", "5", "--attacks", "loss")
    other = json.loads((out2 / "results.json").read_text())
    loss_first = next(a for a in first["attacks"] if a["name"] == "loss")
    loss_other = next(a for a in other["attacks"] if a["name"] == "loss")
    assert loss_other["auc"] == loss_first["auc"]  # the point estimate does not depend on the seed
    assert loss_other["auc_ci"] != loss_first["auc_ci"]


def test_label_exposure_runs_label_only_attacks(tmp_path):
    result, out = run_sample(tmp_path, "--exposure", "labels")
    document = json.loads(result.stdout)
    assert {a["name"] for a in document["attacks"]} == {"baseline", "label_only_noise"}
    assert "loss (needs scores)" in document["workflow"][3]["detail"]
    step5 = document["workflow"][4]
    assert step5["status"] == "skipped" and "--exposure labels" in step5["detail"]


def test_ids_never_reach_results_or_output(tmp_path):
    header, rows = read_rows(SAMPLES / "members.csv")
    _, nrows = read_rows(SAMPLES / "nonmembers.csv")
    members = write_rows(tmp_path / "m.csv", ["patient_id", *header], [[f"PATIENT-{i:05d}", *r] for i, r in enumerate(rows)])
    nonmembers = write_rows(
        tmp_path / "n.csv", ["patient_id", *header], [[f"OTHER-{i:05d}", *r] for i, r in enumerate(nrows)]
    )
    result, out = run_sample(tmp_path, "--id-column", "patient_id", "--attacks", "loss,baseline",
                             members=members, nonmembers=nonmembers)
    everything = result.stdout + result.stderr + (out / "results.json").read_text()
    assert "PATIENT-" not in everything and "OTHER-" not in everything
    assert "patient_id" not in json.loads(result.stdout)["data"]["feature_columns"]


def test_unknown_attack_name_is_an_input_error(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(SAMPLES / "members.csv"),
                                 "--nonmembers", str(SAMPLES / "nonmembers.csv"), "--out", str(out),
                                 "--attacks", "lira"])
    assert result.exit_code == 2
    assert "unknown attack 'lira'" in result.stderr
    assert not out.exists()
