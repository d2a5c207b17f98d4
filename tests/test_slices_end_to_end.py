"""Slices and subjects through the real CLI on real trained models (issue 5, "Done means").

- A model trained with one site's labels randomized has to memorize that site's records: the slice site=A
  must come out as the worst slice with a significant Benjamini–Hochberg-adjusted p-value.
- A linear model trained on the same data without the randomization leaks nowhere: no slice is significant.
- The subject-level audit's numbers equal a hand computation, and overlapping subjects are refused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score, roc_curve
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.results import AuditResult
from tests.conftest import SAMPLES, read_rows, write_rows

runner = CliRunner()
SITES = ("A", "B", "C", "D")
N = 800  # members; as many non-members


def _site_data(*, randomize_site_a: bool, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * N, 6)).astype(np.float32)
    site = rng.integers(0, 4, 2 * N)
    y = ((x @ np.array([1.5, -1.0, 0.8, 0.0, 0.5, -0.7]) + 0.3 * rng.normal(size=2 * N)) > 0).astype(np.int64)
    if randomize_site_a:  # site A's labels are noise, members and non-members alike: only memorization fits them
        in_a = site == 0
        y[in_a] = rng.integers(0, 2, int(in_a.sum()))
    features = np.column_stack([x, np.eye(4, dtype=np.float32)[site]])
    return features, site, y


def _train_onnx(*, path: Path, features, y, hidden: int, epochs: int, seed: int = 0) -> Path:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hidden:
            model = torch.nn.Sequential(
                torch.nn.Linear(features.shape[1], hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2),
            )
        else:
            model = torch.nn.Linear(features.shape[1], 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        x, target = torch.from_numpy(features), torch.from_numpy(y)
        for _ in range(epochs):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
    model.eval()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(2, features.shape[1]),), str(path), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )
    return path


def _manifest(path: Path, features, site, y) -> Path:
    header = [f"x{i}" for i in range(6)] + [f"site_{s}" for s in SITES] + ["site", "label"]
    rows = [[f"{v:.7g}" for v in f] + [SITES[s], int(label)] for f, s, label in zip(features, site, y)]
    return write_rows(path, header, rows)


def _site_audit(tmp_path: Path, *, randomize_site_a: bool, hidden: int, epochs: int, extra=()):
    features, site, y = _site_data(randomize_site_a=randomize_site_a)
    model = _train_onnx(path=tmp_path / "model.onnx", features=features[:N], y=y[:N], hidden=hidden, epochs=epochs)
    members = _manifest(tmp_path / "members.csv", features[:N], site[:N], y[:N])
    nonmembers = _manifest(tmp_path / "nonmembers.csv", features[N:], site[N:], y[N:])
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(model), "--members", str(members), "--nonmembers", str(nonmembers), "--out", str(out),
         "--meta-columns", "site", "--slice-columns", "site,x0", "--bootstrap", "100", "--quiet", "--format", "json", *extra],
    )
    assert result.exit_code in (0, 1, 3), result.stderr  # the default policy's verdict
    return result, AuditResult.model_validate_json((out / "results.json").read_text())


@pytest.fixture(scope="module")
def memorized(tmp_path_factory):
    return _site_audit(tmp_path_factory.mktemp("memorized"), randomize_site_a=True, hidden=64, epochs=300)


def test_memorized_site_is_the_worst_slice_and_significant(memorized):
    result, document = memorized
    summary = document.slice_summary
    assert summary.worst.name == "site=A"
    assert summary.worst.significant and summary.worst.p_value_adjusted < 1e-6
    assert summary.worst.auc_difference > 0.1  # far above the same attack on everyone
    assert summary.worst_slices[0].name == "site=A"
    # Among the population slices (not cut by the model's own output), site=A leads the ranking outright.
    population = [entry for entry in document.slices if entry.rank is not None and not entry.by_model_output]
    assert population[0].name == "site=A"
    best_other = max(entry.auc_ci[0] for entry in population if entry.name != "site=A")
    assert population[0].auc_ci[0] > best_other
    # the CLI summary names it first
    assert "1. site=A" in result.stdout


def test_memorized_run_reports_complete_slice_entries(memorized):
    _, document = memorized
    attacks = {attack.name for attack in document.attacks}
    names = {entry.name for entry in document.slices}
    assert {"site=A", "site=B", "site=C", "site=D", "true_class=0", "true_class=1", "correctness=correct"} <= names
    assert any(name.startswith("x0=< ") for name in names) and any(name.startswith("loss_percentile=") for name in names)
    for name in names:  # every slice is evaluated for every attack present
        assert {entry.attack for entry in document.slices if entry.name == name} == attacks
    for entry in document.slices:
        if entry.flag == "ok":
            assert set(entry.tpr_at_fpr) == {"0.001", "0.01", "0.1"}
            assert entry.tpr_at_fpr["0.001"].flag == "not_estimable"  # a slice holds < 1000 non-members
            assert entry.subpopulation is not None and entry.p_value_adjusted is not None
            assert entry.accuracy_gap == pytest.approx(entry.member_accuracy - entry.nonmember_accuracy)
    site_a = next(e for e in document.slices if e.name == "site=A" and e.attack == "baseline")
    assert site_a.member_accuracy > 0.95 and site_a.nonmember_accuracy < 0.7  # memorized noise
    step6 = document.workflow[5].detail
    assert "slices" in step6 and "Benjamini" in step6


def test_homogeneous_model_has_no_significant_slice(tmp_path):
    _, document = _site_audit(tmp_path, randomize_site_a=False, hidden=0, epochs=300)
    assert document.slice_summary.n_tested > 50
    assert document.slice_summary.n_significant == 0
    assert not any(entry.significant for entry in document.slices)
    assert not document.slice_summary.worst.significant


def test_no_slices_option_and_older_results_still_validate(tmp_path, small_audit):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(small_audit["model"]), "--members", str(small_audit["members"]), "--nonmembers",
         str(small_audit["nonmembers"]), "--out", str(out), "--bootstrap", "50", "--attacks", "loss", "--no-slices",
         "--json", "--format", "json"],
    )
    assert result.exit_code in (0, 1, 3), result.stderr  # the default policy's verdict
    document = json.loads(result.stdout)
    assert document["slices"] == [] and document["slice_summary"] is None and document["subjects"] is None
    for key in ("slices", "slice_summary", "subjects"):
        del document[key]
    AuditResult.model_validate(document)  # a results.json written before this feature


@pytest.mark.parametrize(
    "options,message",
    [
        (["--slice-columns", "zipcode"], "column 'zipcode'"),
        (["--slice-intersections", "pixel_0"], "--slice-intersections: 'pixel_0' is not of the form A*B"),
        (["--slice-intersections", "@class*nothing"], "column 'nothing'"),
    ],
)
def test_bad_slice_options_are_input_errors(tmp_path, small_audit, options, message):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(small_audit["model"]), "--members", str(small_audit["members"]), "--nonmembers",
         str(small_audit["nonmembers"]), "--out", str(out), *options],
    )
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# --- data-subject level ------------------------------------------------------------------------------


def _with_subjects(tmp_path: Path, *, per_subject: int = 3, leak_row: int | None = None):
    header, member_rows = read_rows(SAMPLES / "members.csv")
    _, nonmember_rows = read_rows(SAMPLES / "nonmembers.csv")
    member_ids = [f"person-m{i // per_subject:04d}" for i in range(len(member_rows))]
    nonmember_ids = [f"person-n{i // per_subject:04d}" for i in range(len(nonmember_rows))]
    if leak_row is not None:
        nonmember_ids[leak_row] = member_ids[21]  # person-m0007, member rows 22-24
    members = write_rows(tmp_path / "m.csv", ["subject", *header], [[s, *r] for s, r in zip(member_ids, member_rows)])
    nonmembers = write_rows(
        tmp_path / "n.csv", ["subject", *header], [[s, *r] for s, r in zip(nonmember_ids, nonmember_rows)]
    )
    return members, nonmembers, member_ids, nonmember_ids


def _record_losses(path: Path) -> np.ndarray:
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 66))
    x, y = data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64)
    session = ort.InferenceSession(str(SAMPLES / "digits_mlp.onnx"))
    logits = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float64)
    return -log_softmax(logits, axis=1)[np.arange(len(y)), y]


def _by_hand(ids: list[str], scores: np.ndarray, how: str) -> list[float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for subject, score in zip(ids, scores):
        groups[subject].append(float(score))
    return [sum(v) / len(v) if how == "mean" else max(v) for _, v in sorted(groups.items())]


def test_subject_level_audit_matches_a_hand_computation(tmp_path):
    members, nonmembers, member_ids, nonmember_ids = _with_subjects(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(members), "--nonmembers", str(nonmembers),
         "--out", str(out), "--group-column", "subject", "--attacks", "loss,baseline", "--bootstrap", "100",
         "--quiet", "--json", "--format", "json"],
    )
    assert result.exit_code in (0, 1, 3), result.stderr  # the default policy's verdict
    subjects = AuditResult.model_validate_json(result.stdout).subjects
    assert subjects.group_column == "subject"
    assert (subjects.n_member_subjects, subjects.n_nonmember_subjects) == (100, 499)
    assert subjects.records_per_subject["max"] == 3 and subjects.records_per_subject["min"] == 3
    loss_m, loss_n = -_record_losses(members), -_record_losses(nonmembers)  # loss attack: higher = member
    for how in ("mean", "max"):
        entry = next(a for a in subjects.attacks if a.name == "loss" and a.aggregation == how)
        m, n = _by_hand(member_ids, loss_m, how), _by_hand(nonmember_ids, loss_n, how)
        truth, scores = np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n]
        assert entry.n_members == 100 and entry.n_nonmembers == 499
        assert entry.auc == pytest.approx(roc_auc_score(truth, scores), abs=2e-3)
        fpr, tpr, _ = roc_curve(truth, scores, drop_intermediate=False)
        assert entry.tpr_at_fpr["0.1"].tpr == pytest.approx(tpr[fpr <= 0.1].max(), abs=0.011)
        assert entry.tpr_at_fpr["0.01"].flag == "low_evidence"  # 499 subjects × 1% < 10
    assert {(a.name, a.aggregation) for a in subjects.attacks} == {
        ("loss", "mean"), ("loss", "max"), ("baseline", "mean"), ("baseline", "max")
    }
    assert subjects.worst_case is not None
    assert "person-" not in result.stdout + result.stderr  # subject ids never leave the manifests
    assert "subjects ('subject')" in result.stderr  # the summary line (on stderr with --json)


def test_subject_on_both_sides_is_refused_naming_files_and_rows(tmp_path):
    members, nonmembers, _, _ = _with_subjects(tmp_path, leak_row=41)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(members), "--nonmembers", str(nonmembers),
         "--out", str(out), "--group-column", "subject"],
    )
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("mia-audit: error:") and len(line.splitlines()) == 1
    assert f"{nonmembers}: column 'subject', row 42" in line
    assert f"{members} row 22" in line  # the first member record of that subject (rows 22-24 are person-m0007)
    assert "person-" not in line  # the subject's id is not repeated
    assert not out.exists()


def test_empty_subject_id_is_refused(tmp_path):
    members, nonmembers, _, _ = _with_subjects(tmp_path)
    header, rows = read_rows(members)
    rows[4][0] = ""
    write_rows(members, header, rows)
    result = runner.invoke(
        app,
        ["run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(members), "--nonmembers", str(nonmembers),
         "--out", str(tmp_path / "out"), "--group-column", "subject"],
    )
    assert result.exit_code == 2
    assert f"{members}: column 'subject', row 5 (line 6): empty data-subject id" in result.stderr
