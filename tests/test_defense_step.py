"""Step 7 end to end on a small overfit model, plus the pieces checked against independent computations."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from mia_audit.seeds import SeedStreams
from mia_audit.cli import app
from mia_audit.defenses import TrainingPlan, parse_defenses
from mia_audit.defenses.graph_module import DeployedVariant, GraphClassifier, export_onnx, with_dropout
from mia_audit.defenses.comparison import pareto_front
from mia_audit.defenses.protocol import split_nonmembers
from mia_audit.defenses.trainer import TrainRecipe, make_training_data, train_with_plan
from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
from tests.conftest import write_rows

runner = CliRunner()
N_FEATURES = 8


def _overfit_model(folder):
    """A 8-64-64-2 MLP fitted hard to 160 members with 25% flipped labels: it leaks clearly."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(560, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    flip = rng.random(560) < 0.25
    y = np.where(flip, 1 - y, y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xm, ym = torch.from_numpy(x[:160]), torch.from_numpy(y[:160])
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xm), ym).backward()
        opt.step()
    path = folder / "model.onnx"
    export_onnx(net.eval(), example=x, path=path)
    header = [f"f{i}" for i in range(N_FEATURES)] + ["label"]
    rows = [[repr(float(v)) for v in record] + [str(label)] for record, label in zip(x, y)]
    members = write_rows(folder / "m.csv", header, rows[:160])
    nonmembers = write_rows(folder / "n.csv", header, rows[160:])
    return path, members, nonmembers, x, y


@pytest.fixture(scope="module")
def step7(tmp_path_factory):
    folder = tmp_path_factory.mktemp("step7")
    model, members, nonmembers, x, y = _overfit_model(folder)
    recipe = folder / "recipe.yaml"
    recipe.write_text("training: {epochs: 150, batch_size: 32, lr: 0.003}\n")
    out = folder / "out"
    result = runner.invoke(app, [
        "run", str(model), "--members", str(members), "--nonmembers", str(nonmembers), "--out", str(out),
        "--attacks", "baseline,loss", "--shadow-models", "0", "--bootstrap", "50", "--format", "json", "--json",
        "--shadow-recipe", str(recipe), "--defense-shadow-models", "0", "--export-defended", str(folder / "defended"),
        "--defenses", "top_k:1,dp_sgd:epsilon=0.5,label_smoothing:0.2,dp_sgd+mixup",
    ])
    document = json.loads(result.stdout)
    assert result.exit_code == document["verdict"]["exit_code"], result.stderr
    return {"document": document, "model": model, "x": x, "y": y, "folder": folder}


def _rows(step7):
    return {row["label"]: row for row in step7["document"]["defenses"]["rows"]}


def test_comparison_has_original_baseline_and_every_variant(step7):
    rows = _rows(step7)
    assert list(rows)[:2] == ["original model (as deployed)", "retrained baseline (no defense)"]
    assert {"top_k(k=1)", "dp_sgd(epsilon=0.5, delta=1e-05, max_grad_norm=1.0)", "label_smoothing(epsilon=0.2)"} <= set(rows)
    skipped = rows["dp_sgd(epsilon=4.0, delta=1e-05, max_grad_norm=1.0)+mixup(alpha=1.0)"]
    assert skipped["status"] == "skipped" and "mix-up" in skipped["reason"]
    step = step7["document"]["workflow"][6]
    assert step["status"] == "done" and "re-audited" in step["detail"]


def test_top_k_masking_leaves_the_baseline_attack_untouched(step7):
    """Li, Li & Ribeiro 2021 §4.1: masking keeps the label, so the label-only baseline advantage is the gap of the
    deployed model on the same records — computed here independently with onnxruntime."""
    x, y = step7["x"], step7["y"]
    session = ort.InferenceSession(str(step7["model"]))
    predicted = session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)
    attack_split = split_nonmembers(labels=y[160:], rng=SeedStreams(run_seed=0).child("defenses").numpy("split"), parts=2)[1]
    gap = np.mean(predicted[:160] == y[:160]) - np.mean(predicted[160:][attack_split] == y[160:][attack_split])
    top_k = _rows(step7)["top_k(k=1)"]
    assert top_k["baseline_attack_advantage"] == pytest.approx(gap, abs=1e-12)
    assert top_k["utility_drop"] is not None


def test_dp_sgd_reports_epsilon_and_reduces_leakage(step7):
    rows = _rows(step7)
    dp = rows["dp_sgd(epsilon=0.5, delta=1e-05, max_grad_norm=1.0)"]
    baseline = rows["retrained baseline (no defense)"]
    assert 0 < dp["dp_epsilon"] <= 0.5 + 1e-9 and dp["dp_delta"] == 1e-5
    assert dp["training"]["dp_accountant"] == "rdp"
    assert dp["worst_auc"] < baseline["worst_auc"]
    assert dp["generalization_gap"] < baseline["generalization_gap"]


def test_retrained_variants_are_exported_and_reload(step7):
    files = sorted(p.name for p in (step7["folder"] / "defended").iterdir())
    assert len(files) == 2 and all(name.endswith(".onnx") for name in files)  # dp_sgd and label smoothing
    session = ort.InferenceSession(str(step7["folder"] / "defended" / files[0]))
    p = session.run(None, {session.get_inputs()[0].name: step7["x"][:20]})[0]
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_export_reproduces_in_memory_predictions(tmp_path, step7):
    graph, _, _ = graph_from_onnx(proto=load_onnx_proto(step7["model"]), output_name="probabilities",
                                  output_kind="logits", n_outputs=2)
    x, y = step7["x"], step7["y"]
    module, _ = train_with_plan(make_module=lambda: GraphClassifier(graph, seed=1),
                                data=make_training_data(x=x[:100], y=y[:100], n_classes=2),
                                plan=parse_defenses("dropout:0.3")[0].plan(), recipe=TrainRecipe(epochs=3), seeds=SeedStreams(run_seed=1))
    deployed = DeployedVariant(module, output_steps=[("top_k", 1.0)]).eval()
    export_onnx(deployed, example=x, path=tmp_path / "v.onnx")
    session = ort.InferenceSession(str(tmp_path / "v.onnx"))
    exported = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        in_memory = deployed(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(exported, in_memory, atol=1e-6)
    assert np.all((exported > 0).sum(1) == 1)


def test_dropout_goes_into_the_converted_graph_after_hidden_activations(step7):
    graph, _, _ = graph_from_onnx(proto=load_onnx_proto(step7["model"]), output_name="probabilities",
                                  output_kind="logits", n_outputs=2)
    dropped, sites = with_dropout(graph, p=0.5, generator=torch.Generator().manual_seed(0))
    assert len(sites) == 2 and all(site.startswith("after Relu") for site in sites)
    module = GraphClassifier(dropped, seed=0)
    x = torch.from_numpy(step7["x"][:50])
    module.train()
    assert not torch.equal(module(x), module(x))  # stochastic in training
    module.eval()
    assert torch.equal(module(x), module(x))  # identity at inference


def test_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [90, 60, 30])
    parts = split_nonmembers(labels=labels, rng=np.random.default_rng(3), parts=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(180))
    for part in parts:
        assert np.bincount(labels[part], minlength=3).tolist() == [30, 20, 10]
    again = split_nonmembers(labels=labels, rng=np.random.default_rng(3), parts=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(0)
    acc, auc = rng.random(30).tolist(), rng.random(30).tolist()
    flags = pareto_front(accuracy=acc, auc=auc)
    for i in range(30):
        dominated = any(acc[j] >= acc[i] and auc[j] <= auc[i] and (acc[j], auc[j]) != (acc[i], auc[i]) for j in range(30))
        assert flags[i] == (not dominated)


def test_dropout_changes_the_retrained_graph_model(tmp_path, step7):
    """The dropout defense must reach a converted graph (not only torch activation modules)."""
    graph, _, _ = graph_from_onnx(proto=load_onnx_proto(step7["model"]), output_name="probabilities",
                                  output_kind="logits", n_outputs=2)
    x, y = step7["x"][:160], step7["y"][:160]
    data = make_training_data(x=x, y=y, n_classes=2)
    recipe = TrainRecipe(epochs=5)
    plain, _ = train_with_plan(make_module=lambda: GraphClassifier(graph, seed=2), data=data, plan=TrainingPlan(),
                               recipe=recipe, seeds=SeedStreams(run_seed=2))
    dropped, report = train_with_plan(make_module=lambda: GraphClassifier(graph, seed=2), data=data,
                                      plan=parse_defenses("dropout:0.5")[0].plan(), recipe=recipe, seeds=SeedStreams(run_seed=2))
    assert len(report.dropout_sites) == 2
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(torch.from_numpy(x)), dropped.eval()(torch.from_numpy(x)))
