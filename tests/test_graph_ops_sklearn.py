"""scikit-learn graphs as skl2onnx writes them convert to trainable graphs (issue 11, ai.onnx.ml part), and
the converter only converts what the audited output depends on.

Ground truth: the fitted estimator's `predict_proba` and onnxruntime on the same file. Structure: the
shadows of a logistic regression are logistic regressions — one dense layer of the estimator's shape
(a binary one: a single weight vector, skl2onnx writes it twice as −w and w) with the softmax head, so
they are trained with cross-entropy on the logits; preprocessing (Scaler, Imputer, Normalizer,
Binarizer) is kept exactly, not trained.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, Normalizer, StandardScaler

from mia_audit.shadows.graph import UnsupportedGraph
from mia_audit.shadows.onnx_import import graph_from_onnx


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = (load_breast_cancer if name == "breast_cancer" else load_digits)(return_X_y=True)
    return x[:400].astype(np.float32), y[:400]


PIPELINES = {
    "binary_logreg_scaler": ("breast_cancer", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
    "logreg_imputer": ("digits", lambda: make_pipeline(SimpleImputer(), LogisticRegression(max_iter=300))),
    "logreg_normalizer": ("digits", lambda: make_pipeline(Normalizer(), LogisticRegression(max_iter=300))),
    "logreg_binarizer": ("digits", lambda: make_pipeline(Binarizer(threshold=4.0), LogisticRegression(max_iter=300))),
    "binary_mlp": ("breast_cancer", lambda: make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=50, random_state=0))),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_skl2onnx_graph_converts_and_reproduces_the_estimator(name):
    from skl2onnx import to_onnx

    dataset, factory = PIPELINES[name]
    x, y = _data(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = factory().fit(x, y)
        proto = to_onnx(estimator, x[:1])  # default options: label + ZipMap outputs
    scores = next(n for n in proto.graph.node if n.op_type == "ZipMap").input[0]  # what the ONNX adapter reads
    graph, original, running = graph_from_onnx(proto=proto, output_name=scores, output_kind="probabilities", n_outputs=None)
    with torch.no_grad():
        got = graph.run(original, running, torch.from_numpy(x), training=False)[0].double().numpy()
    np.testing.assert_allclose(got, estimator.predict_proba(x), atol=1e-5)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = session.run(["output_probability"], {proto.graph.input[0].name: x})[0]  # the ZipMap's dicts
    expected = np.array([[row[key] for key in sorted(row)] for row in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert "ZipMap" not in {node.op for node in graph.nodes}  # the label/ZipMap branches are not converted
    model = estimator[-1]
    if isinstance(model, LogisticRegression):
        k = 1 if len(model.classes_) == 2 else len(model.classes_)
        assert graph.n_parameters == k * (x.shape[1] + 1)  # one dense layer: the estimator's coef_ and intercept_
        assert graph.head == "softmax"  # cross-entropy on the logits: the logistic loss
        assert {node.op for node in graph.nodes} & {"Scaler", "Imputer", "Normalizer", "Binarizer"} or isinstance(estimator[0], StandardScaler)


def test_binary_logistic_regression_shadow_is_a_logistic_regression():
    """Fresh weights through the converted binary graph give [1 − σ(w·x + b), σ(w·x + b)] on the scaled input."""
    from skl2onnx import to_onnx

    x, y = _data("breast_cancer")
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    proto = to_onnx(estimator, x[:1])
    scores = next(n for n in proto.graph.node if n.op_type == "ZipMap").input[0]
    graph, _, _ = graph_from_onnx(proto=proto, output_name=scores, output_kind="probabilities", n_outputs=None)
    fresh = graph.init_params(generator=torch.Generator().manual_seed(3))
    (w,) = [v for v in fresh.values() if v.dim() == 2]
    (b,) = [v for v in fresh.values() if v.dim() == 1]
    scaler = estimator[0]
    z = ((x - scaler.mean_) / scaler.scale_).astype(np.float32) @ w.numpy().T + b.numpy()
    p = 1.0 / (1.0 + np.exp(-z[:, 0]))
    got = graph.run(fresh, {}, torch.from_numpy(x), training=False)[0].detach().numpy()
    np.testing.assert_allclose(got, np.column_stack([1 - p, p]), atol=1e-5)


def _branching_model(*, label_op: str, domain: str):
    """X → MatMul → Softmax → "probs", plus an op of `domain` reading probs → "label"."""
    nodes = [
        helper.make_node("MatMul", ["X", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node(label_op, ["probs"], ["label"], domain=domain),
    ]
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.arange(6, dtype=np.float32).tolist())
    graph = helper.make_graph(
        nodes, "branching", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, None), helper.make_tensor_value_info("label", TensorProto.INT64, None)],
        initializer=[w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)])


def test_nodes_the_output_does_not_need_are_neither_converted_nor_refused():
    proto = _branching_model(label_op="MysteryLabeller", domain="com.example")
    graph, _, _ = graph_from_onnx(proto=proto, output_name="probs", output_kind="probabilities", n_outputs=2)
    assert [node.op for node in graph.nodes] == ["MatMul", "Softmax"]
    with pytest.raises(UnsupportedGraph, match=r"MysteryLabeller \(domain com\.example\)"):
        graph_from_onnx(proto=proto, output_name="label", output_kind="probabilities", n_outputs=2)
