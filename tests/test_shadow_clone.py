"""Trainable clones: ONNX / TorchScript graphs converted to torch with fresh weights, checked against
onnxruntime and the in-memory models; vectorized training checked against one-at-a-time training."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mia_audit.seeds import SeedStreams
from mia_audit.models import load_model
from mia_audit.shadows.clone import ShadowUnavailable, make_shadow_source, recipe_example
from mia_audit.shadows.graph import UnsupportedGraph
from mia_audit.shadows.keep import keep_mask
from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
from mia_audit.shadows.recipe import ShadowRecipe, SklearnRecipe, TrainingRecipe
from mia_audit.shadows.sklearn_trainer import train_sklearn_shadows
from mia_audit.shadows.torch_trainer import CalibrationTarget, train_torch_shadows
from tests import model_factories as mf
from tests.conftest import SAMPLES

BUILDERS = {
    "dynamo_logits": lambda tmp: mf.torch_mlp_onnx(tmp_path=tmp, exporter="dynamo"),
    "legacy_probabilities": lambda tmp: mf.torch_mlp_onnx(tmp_path=tmp, exporter="legacy", output="probabilities"),
    "binary_sigmoid": lambda tmp: mf.torch_binary_onnx(tmp_path=tmp, output="sigmoid"),
    "binary_logit": lambda tmp: mf.torch_binary_onnx(tmp_path=tmp, output="logit", exporter="legacy"),
    "torchscript_script": lambda tmp: mf.torchscript_mlp(tmp_path=tmp, method="script"),
    "torchscript_trace_probabilities": lambda tmp: mf.torchscript_mlp(tmp_path=tmp, method="trace", output="probabilities"),
}


def _source(built, *, recipe=None):
    model = load_model(path=built.path)
    model.check_input(built.x[:2])
    return model, make_shadow_source(
        model=model,
        model_path=built.path,
        recipe=recipe,
        output_kind=built.output_kind,
        x_check=built.x,
        n_classes=model.n_classes,
        pool_x=built.x.astype(np.float64),
        calibration=None,
    )


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_converted_graph_reproduces_the_model_and_gets_fresh_weights(tmp_path, kind):
    built = BUILDERS[kind](tmp_path)
    model, source = _source(built)  # make_shadow_source refuses a conversion that does not reproduce the model
    graph = source.graph
    assert source.name == ("torchscript_via_onnx" if kind.startswith("torchscript") else "onnx_graph")
    proto = load_onnx_proto(built.path) if source.name == "onnx_graph" else None
    if proto is not None:  # the model's own weights through the converted graph = the in-memory model
        _, original, running = graph_from_onnx(
            proto=proto, output_name=model.output_name, output_kind=built.output_kind, n_outputs=model.n_raw_outputs
        )
        out, _ = graph.run(original, running, torch.from_numpy(built.x), training=False)
        np.testing.assert_allclose(out.double().numpy().reshape(len(built.x), -1), built.reference(built.x), atol=1e-5)
    fresh = graph.init_params(generator=torch.Generator().manual_seed(0))
    for name, spec in graph.params.items():
        assert fresh[name].shape == spec.shape
        if spec.init == "uniform":
            assert float(fresh[name].abs().max()) <= spec.bound
    first_layer = min(graph.params, key=lambda name: -len(graph.params[name].shape))
    assert not torch.equal(fresh[first_layer], graph.init_params(generator=torch.Generator().manual_seed(1))[first_layer])
    expected_head = {"binary_sigmoid": "sigmoid", "binary_logit": "binary_logit"}.get(kind)
    if expected_head:
        assert graph.head == expected_head
    if "probabilities" in kind:
        assert graph.head == "softmax"  # trained with cross-entropy on the logits before the Softmax


class _Cnn(torch.nn.Module):
    """Conv → ReLU → BatchNorm (not foldable into the conv) → pools → Linear → Softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        h = self.bn(torch.relu(self.conv(x)))
        h = torch.nn.functional.avg_pool2d(torch.nn.functional.max_pool2d(h, 2), 1)
        return torch.softmax(self.fc(torch.flatten(h, 1)), dim=1)


def test_cnn_with_batch_norm_converts_and_trains(tmp_path):
    torch.manual_seed(0)
    net = _Cnn()
    with torch.no_grad():  # non-trivial running statistics, so a wrong BatchNorm would show
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    net.eval()
    path = tmp_path / "cnn.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 1, 6, 6),), str(path), input_names=["x"], output_names=["p"],
                          dynamic_axes={"x": {0: "b"}, "p": {0: "b"}}, dynamo=False)
    x = np.random.default_rng(0).normal(size=(40, 1, 6, 6)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 40)
    built = mf.BuiltModel(path=path, reference=lambda v: net(torch.from_numpy(v)).detach().double().numpy(), x=x, y=y,
                          output_kind="probabilities")
    _, source = _source(built)
    assert "BatchNormalization" in source.graph.description and source.graph.running
    keep = keep_mask(n_records=40, n_shadows=4, rng=np.random.default_rng(0))
    raw, report = train_torch_shadows(graph=source.graph, x=x, y=y, keep=keep, recipe=TrainingRecipe(epochs=3, batch_size=8),
                                      seeds=SeedStreams(run_seed=0), calibration=None)
    assert raw.shape == (40, 4, 3) and np.all(np.isfinite(raw))
    np.testing.assert_allclose(raw.sum(axis=2), 1.0, atol=1e-5)  # outputs are the graph's own (Softmax)


def test_vectorized_training_equals_training_one_model_at_a_time(tmp_path):
    """K models trained together with vmap = the same K models trained one after another (SGD, same seeds)."""
    built = mf.torch_mlp_onnx(tmp_path=tmp_path, n_samples=60)
    _, source = _source(built)
    keep = keep_mask(n_records=60, n_shadows=6, rng=np.random.default_rng(2))
    recipe = TrainingRecipe(optimizer="sgd", lr=0.05, epochs=4, batch_size=8)
    together, _ = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=7), calibration=None)
    apart, _ = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep,
                                   recipe=recipe.model_copy(update={"models_per_batch": 1}), seeds=SeedStreams(run_seed=7), calibration=None)
    np.testing.assert_allclose(together, apart, atol=1e-5)
    again, _ = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=7), calibration=None)
    np.testing.assert_array_equal(together, again)
    other, _ = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=8), calibration=None)
    assert not np.allclose(together, other)


def test_calibration_stops_when_the_shadows_fit_like_the_target(tmp_path):
    built = mf.torch_mlp_onnx(tmp_path=tmp_path, n_samples=60)
    _, source = _source(built)
    keep = keep_mask(n_records=60, n_shadows=4, rng=np.random.default_rng(0))
    recipe = TrainingRecipe(max_epochs=50, check_every=2, batch_size=16)
    easy = CalibrationTarget(member_accuracy=0.0, median_member_loss=10.0)
    _, report = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=0), calibration=easy)
    assert report.epochs == 2 and report.calibrated
    impossible = CalibrationTarget(member_accuracy=1.0, median_member_loss=0.0)
    _, report = train_torch_shadows(graph=source.graph, x=built.x, y=built.y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=0),
                                    calibration=impossible)
    assert report.epochs == 50 and not report.calibrated


def test_tree_ensemble_is_refused_with_a_recipe_to_supply(tmp_path):
    built = mf.sklearn_onnx(tmp_path=tmp_path, estimator="random_forest", zipmap=True)
    with pytest.raises(ShadowUnavailable) as refused:
        _source(built)
    message = str(refused.value)
    assert "TreeEnsembleClassifier (domain ai.onnx.ml)" in message
    assert "--shadow-recipe" in message and "RandomForestClassifier" in message and "n_estimators: 10" in message
    with pytest.raises(UnsupportedGraph, match="ai.onnx.ml"):
        graph_from_onnx(proto=load_onnx_proto(built.path), output_name="probabilities", output_kind="probabilities",
                        n_outputs=3)
    logreg = mf.sklearn_onnx(tmp_path=tmp_path, estimator="logreg")
    assert "LogisticRegression" in recipe_example(proto=load_onnx_proto(logreg.path))


def test_sklearn_shadows_in_parallel_map_missing_classes_to_zero(tmp_path):
    built = mf.sklearn_onnx(tmp_path=tmp_path, estimator="random_forest", zipmap=True)
    x, y = built.x.astype(np.float64), np.asarray(built.y)
    keep = keep_mask(n_records=len(y), n_shadows=4, rng=np.random.default_rng(0))
    keep[y == 2, 0] = False  # shadow 0 never sees class 2
    recipe = SklearnRecipe(estimator="RandomForestClassifier", params={"n_estimators": 5})
    proba = train_sklearn_shadows(recipe=recipe, x=x, y=y, keep=keep, n_classes=3, seeds=SeedStreams(run_seed=0))
    assert proba.shape == (len(y), 4, 3)
    np.testing.assert_allclose(proba.sum(axis=2), 1.0)
    assert np.all(proba[:, 0, 2] == 0.0)
    again = train_sklearn_shadows(recipe=recipe, x=x, y=y, keep=keep, n_classes=3, seeds=SeedStreams(run_seed=0))
    np.testing.assert_array_equal(proba, again)
    _, source = _source(built, recipe=ShadowRecipe(sklearn=recipe))
    assert source.name == "sklearn_recipe" and source.output_kind == "probabilities"


def test_sample_graph_keeps_input_scaling_and_matches_onnxruntime():
    proto = load_onnx_proto(SAMPLES / "digits_mlp.onnx")
    graph, original, running = graph_from_onnx(proto=proto, output_name="logits", output_kind="logits", n_outputs=10)
    assert graph.head == "ce" and len(graph.params) == 6  # 3 Gemm weights + biases; the /16 scaling is kept
    x = np.loadtxt(SAMPLES / "members.csv", delimiter=",", skiprows=1, max_rows=20)[:, :-1].astype(np.float32)
    session = ort.InferenceSession(str(SAMPLES / "digits_mlp.onnx"))
    expected = session.run(None, {"pixels": x})[0]
    got, _ = graph.run(original, running, torch.from_numpy(x), training=False)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["dynamo_logits", "legacy_probabilities", "binary_sigmoid", "torchscript_script"])
def test_stacked_evaluation_equals_vmap(tmp_path, kind):
    """The vmap-free path for dense graphs computes what vmap over the single-model graph computes."""
    from mia_audit.shadows.graph import run_stacked

    built = BUILDERS[kind](tmp_path)
    _, source = _source(built)
    graph = source.graph
    draws = [graph.init_params(generator=torch.Generator().manual_seed(k)) for k in range(3)]
    params = {name: torch.stack([d[name] for d in draws]) for name in draws[0]}
    x = torch.from_numpy(built.x)
    single = torch.stack([graph.run(d, {}, x, training=False)[0] for d in draws])
    np.testing.assert_allclose(run_stacked(graph, params, x, x_stacked=False).numpy(), single.numpy(), atol=1e-6)
    per_model = torch.stack([x[k::3][:10] for k in range(3)])
    single = torch.stack([graph.run(d, {}, per_model[k], training=False, output=graph.head_input)[0] for k, d in enumerate(draws)])
    got = run_stacked(graph, params, per_model, x_stacked=True, output=graph.head_input)
    np.testing.assert_allclose(got.numpy(), single.numpy(), atol=1e-6)


def test_graphs_without_stacked_rules_use_vmap():
    from mia_audit.shadows.graph import GraphNode, NotStackable, ParamSpec, TrainableGraph, run_stacked

    graph = TrainableGraph(
        input_name="x", output_name="y", input_dtype=torch.float32,
        nodes=[GraphNode("Conv", ("x", "w"), ("y",), {})], params={"w": ParamSpec((2, 1, 1, 1), "uniform", 1.0)},
        running={}, constants={}, head="ce", head_input="y",
    )
    with pytest.raises(NotStackable, match="Conv"):
        run_stacked(graph, {"w": torch.ones(3, 2, 1, 1, 1)}, torch.ones(4, 1, 2, 2), x_stacked=False)
