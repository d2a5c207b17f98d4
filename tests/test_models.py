"""Model adapters against REAL exported models (torch.onnx.export, torch.jit, skl2onnx).

Ground truth is the in-memory model each file was exported from (torch forward / predict_proba).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mia_audit.errors import InputError, ModelLoadError
from mia_audit.models import available_formats, load_model, normalize_outputs
from mia_audit.models import onnx_adapter
from mia_audit.models.registry import register_adapter
from tests.model_factories import (
    BuiltModel,
    sklearn_binary_onnx,
    sklearn_onnx,
    torch_binary_onnx,
    torch_mlp_onnx,
    torchscript_mlp,
)

ATOL = 1e-5

# name -> (factory, kwargs, n_features, n_classes)
CASES: dict[str, tuple[Callable[..., BuiltModel], dict[str, Any], int, int]] = {
    "onnx-dynamo-logits": (torch_mlp_onnx, {"output": "logits"}, 4, 3),
    "onnx-dynamo-probabilities": (torch_mlp_onnx, {"output": "probabilities"}, 4, 3),
    "onnx-dynamo-external-data": (torch_mlp_onnx, {"external_data": True, "n_features": 5, "n_classes": 4, "seed": 1}, 5, 4),
    "onnx-legacy-logits": (torch_mlp_onnx, {"exporter": "legacy"}, 4, 3),
    "onnx-legacy-probabilities-fixed-batch": (
        torch_mlp_onnx,
        {"exporter": "legacy", "output": "probabilities", "dynamic_batch": False},
        4,
        3,
    ),
    "torchscript-script": (torchscript_mlp, {"method": "script"}, 4, 3),
    "torchscript-trace": (torchscript_mlp, {"method": "trace", "n_features": 6, "n_classes": 5}, 6, 5),
    "torchscript-probabilities": (torchscript_mlp, {"output": "probabilities"}, 4, 3),
    "sklearn-logreg-zipmap": (sklearn_onnx, {"estimator": "logreg", "zipmap": True}, 4, 3),
    "sklearn-logreg-tensor": (sklearn_onnx, {"estimator": "logreg", "zipmap": False}, 4, 3),
    "sklearn-rf-zipmap": (sklearn_onnx, {"estimator": "random_forest", "zipmap": True}, 4, 3),
    "sklearn-rf-tensor-5-classes": (sklearn_onnx, {"estimator": "random_forest", "zipmap": False, "n_classes": 5}, 8, 5),
    "sklearn-binary-tensor": (sklearn_binary_onnx, {"zipmap": False}, 30, 2),
    "sklearn-binary-zipmap": (sklearn_binary_onnx, {"zipmap": True}, 30, 2),
}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BuiltModel]:
    """Build each model once per module: build(factory, **kwargs)."""
    root = tmp_path_factory.mktemp("models")
    cache: dict[tuple[Any, ...], BuiltModel] = {}

    def _build(factory: Callable[..., BuiltModel], **kwargs: Any) -> BuiltModel:
        key = (factory.__name__, tuple(sorted(kwargs.items())))
        if key not in cache:
            folder = root / f"m{len(cache)}"
            folder.mkdir()
            cache[key] = factory(tmp_path=folder, **kwargs)
        return cache[key]

    return _build


def _case(build: Callable[..., BuiltModel], name: str) -> tuple[BuiltModel, int, int]:
    factory, kwargs, n_features, n_classes = CASES[name]
    return build(factory, **kwargs), n_features, n_classes


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _one_line(exc: pytest.ExceptionInfo[BaseException], path: Path) -> str:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------------------------------- real models
@pytest.mark.parametrize("name", list(CASES))
def test_outputs_match_in_memory_model(build: Callable[..., BuiltModel], name: str) -> None:
    built, n_features, n_classes = _case(build, name)
    model = load_model(path=built.path)
    model.check_input(built.x[:2])
    raw = model.predict_raw(built.x, batch_size=1024)

    assert raw.dtype == np.float64 and raw.shape == (len(built.x), n_classes)
    np.testing.assert_allclose(raw, built.reference(built.x), atol=ATOL, rtol=0)
    assert model.n_classes == n_classes
    assert model.input_dtype == np.float32
    expected_format = "torchscript" if name.startswith("torchscript") else "onnx"
    assert model.format_name == expected_format
    assert model.input_shape == (None if expected_format == "torchscript" else (n_features,))

    scores, kind = normalize_outputs(
        raw=raw, output_kind="auto", native_kind=model.native_output_kind, source=str(model.path)
    )
    assert kind == built.output_kind
    np.testing.assert_array_equal(scores.argmax(axis=1), built.reference(built.x).argmax(axis=1))


@pytest.mark.parametrize("name", list(CASES))
def test_batched_equals_single_batch(build: Callable[..., BuiltModel], name: str) -> None:
    built, _, _ = _case(build, name)
    x = np.resize(built.x, (50, built.x.shape[1]))
    model = load_model(path=built.path)
    small = model.predict_raw(x, batch_size=7)
    whole = model.predict_raw(x, batch_size=50)
    assert small.shape == whole.shape == (50, model.n_raw_outputs)
    np.testing.assert_allclose(small, whole, atol=1e-6, rtol=0)
    np.testing.assert_allclose(small, built.reference(x), atol=ATOL, rtol=0)


def test_native_output_kinds_from_graph(build: Callable[..., BuiltModel]) -> None:
    kinds = {name: load_model(path=_case(build, name)[0].path).native_output_kind for name in CASES}
    assert kinds["onnx-dynamo-logits"] == "logits"  # final Gemm
    assert kinds["onnx-legacy-logits"] == "logits"
    assert kinds["onnx-dynamo-probabilities"] == "probabilities"  # final Softmax
    assert kinds["onnx-legacy-probabilities-fixed-batch"] == "probabilities"
    assert all(kinds[n] == "probabilities" for n in CASES if n.startswith("sklearn"))
    assert all(kinds[n] is None for n in CASES if n.startswith("torchscript"))


def test_fixed_batch_dimension_is_padded(build: Callable[..., BuiltModel]) -> None:
    built, _, _ = _case(build, "onnx-legacy-probabilities-fixed-batch")
    model = load_model(path=built.path)
    assert model.runtime_info()["fixed_batch_size"] == 8
    x = built.x[:13]  # one full batch of 8, one padded batch of 5
    np.testing.assert_allclose(model.predict_raw(x, batch_size=1000), built.reference(x), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------- binary
@pytest.mark.parametrize("output", ["sigmoid", "logit"])
def test_binary_single_column_becomes_two(build: Callable[..., BuiltModel], output: str) -> None:
    built = build(torch_binary_onnx, output=output)
    model = load_model(path=built.path)
    raw = model.predict_raw(built.x, batch_size=16)
    assert raw.shape == (len(built.x), 1)
    assert model.n_raw_outputs == 1 and model.n_classes == 2
    np.testing.assert_allclose(raw, built.reference(built.x), atol=ATOL, rtol=0)

    scores, kind = normalize_outputs(
        raw=raw, output_kind="auto", native_kind=model.native_output_kind, source=str(model.path)
    )
    assert scores.shape == (len(built.x), 2)
    assert kind == built.output_kind
    p1 = raw[:, 0] if output == "sigmoid" else _sigmoid(raw[:, 0])
    probs = scores if kind == "probabilities" else _softmax(scores)
    np.testing.assert_allclose(probs[:, 1], p1, atol=1e-12)
    np.testing.assert_allclose(probs[:, 0], 1.0 - p1, atol=1e-12)


def test_binary_logit_detection_without_graph_hint(build: Callable[..., BuiltModel]) -> None:
    """Value-based detection: a logit column outside [0, 1] is logits, a sigmoid column probabilities."""
    for output, expected in [("sigmoid", "probabilities"), ("logit", "logits")]:
        built = build(torch_binary_onnx, output=output)
        raw = load_model(path=built.path).predict_raw(built.x, batch_size=64)
        assert normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="m")[1] == expected


# ---------------------------------------------------------------------------------------- kinds
def test_auto_detection_and_overrides_on_torchscript(build: Callable[..., BuiltModel]) -> None:
    logits_model = load_model(path=build(torchscript_mlp, method="script").path)
    raw = logits_model.predict_raw(build(torchscript_mlp, method="script").x, batch_size=64)
    assert logits_model.native_output_kind is None
    assert normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="m.pt")[1] == "logits"
    scores, kind = normalize_outputs(raw=raw, output_kind="logits", native_kind=None, source="m.pt")
    assert kind == "logits"
    np.testing.assert_array_equal(scores, raw)
    with pytest.raises(InputError, match=r"^m\.pt: outputs declared as probabilities but row 0 "):
        normalize_outputs(raw=raw, output_kind="probabilities", native_kind=None, source="m.pt")

    prob_built = build(torchscript_mlp, output="probabilities")
    prob_raw = load_model(path=prob_built.path).predict_raw(prob_built.x, batch_size=64)
    assert normalize_outputs(raw=prob_raw, output_kind="auto", native_kind=None, source="m")[1] == "probabilities"
    # Explicit "logits" wins over detection (log-softmax of p is then taken as the logits).
    assert normalize_outputs(raw=prob_raw, output_kind="logits", native_kind=None, source="m")[1] == "logits"


def test_probabilities_override_on_onnx_logits_is_input_error(build: Callable[..., BuiltModel]) -> None:
    built, _, _ = _case(build, "onnx-dynamo-logits")
    model = load_model(path=built.path)
    raw = model.predict_raw(built.x, batch_size=64)
    with pytest.raises(InputError) as exc:
        normalize_outputs(raw=raw, output_kind="probabilities", native_kind=model.native_output_kind, source=str(model.path))
    message = _one_line(exc, built.path)
    assert "row 0" in message


# ---------------------------------------------------------------------------------------- ZipMap
@pytest.mark.parametrize(
    "labels",
    [["zebra", "apple", "mango"], [10, 2, 7]],
    ids=["strings", "unsorted-ints"],
)
@pytest.mark.parametrize("estimator", ["logreg", "random_forest"])
def test_zipmap_columns_follow_sorted_class_labels(
    build: Callable[..., BuiltModel], labels: list[Any], estimator: str
) -> None:
    built = build(sklearn_onnx, estimator=estimator, zipmap=True, labels=tuple(labels))
    model = load_model(path=built.path)
    assert model.class_labels == sorted(labels) == built.class_labels
    assert model.n_classes == 3
    raw = model.predict_raw(built.x, batch_size=7)
    np.testing.assert_allclose(raw, built.reference(built.x), atol=ATOL, rtol=0)
    # Column j is the probability of class_labels[j]: the argmax column names sklearn's prediction.
    predicted = np.asarray(model.class_labels, dtype=object)[raw.argmax(axis=1)]
    estimator_obj = built.extra["estimator"]
    np.testing.assert_array_equal(predicted, estimator_obj.predict(built.x.astype(np.float64)).astype(object))


def test_zipmap_with_unsorted_labels_in_graph_is_reordered(build: Callable[..., BuiltModel], tmp_path: Path) -> None:
    """A ZipMap whose classlabels are not sorted: columns still come out in sorted-label order."""
    import onnx

    built = build(sklearn_onnx, estimator="logreg", zipmap=True)
    proto = onnx.load(str(built.path))
    zipmap = next(n for n in proto.graph.node if n.op_type == "ZipMap")
    attr = next(a for a in zipmap.attribute if a.name == "classlabels_int64s")
    # Relabel graph columns 0,1,2 as classes 2,0,1: sorted class c is original column perm.index(c).
    perm = [2, 0, 1]
    del attr.ints[:]
    attr.ints.extend(perm)
    path = tmp_path / "relabelled.onnx"
    onnx.save(proto, str(path))
    model = load_model(path=path)
    assert model.class_labels == [0, 1, 2]
    ref = built.reference(built.x)
    expected = ref[:, [perm.index(c) for c in range(3)]]
    np.testing.assert_allclose(model.predict_raw(built.x, batch_size=9), expected, atol=ATOL, rtol=0)


def test_zipmap_per_row_fallback_matches(build: Callable[..., BuiltModel], monkeypatch: pytest.MonkeyPatch) -> None:
    """When the ZipMap cannot be cut off (external data), the per-row dict conversion gives the same."""
    built = build(sklearn_onnx, estimator="logreg", zipmap=True, labels=("zebra", "apple", "mango"))
    fast = load_model(path=built.path).predict_raw(built.x, batch_size=32)
    monkeypatch.setattr(onnx_adapter, "_uses_external_data", lambda model: True)
    slow_model = load_model(path=built.path)
    assert slow_model.output_name == "output_probability"
    slow = slow_model.predict_raw(built.x, batch_size=32)
    np.testing.assert_allclose(slow, fast, atol=1e-7, rtol=0)
    assert slow_model.class_labels == ["apple", "mango", "zebra"]


# ---------------------------------------------------------------------------------------- registry
def test_registry_formats_and_dispatch(build: Callable[..., BuiltModel], tmp_path: Path) -> None:
    assert available_formats()[:2] == ["onnx", "torchscript"]
    onnx_built, _, _ = _case(build, "onnx-dynamo-logits")
    ts_built, _, _ = _case(build, "torchscript-script")
    # Unknown suffix: sniffed from content (zip -> torchscript, else onnx).
    onnx_bin = tmp_path / "model.bin"
    onnx_bin.write_bytes(onnx_built.path.read_bytes())
    ts_bin = tmp_path / "model.data"
    ts_bin.write_bytes(ts_built.path.read_bytes())
    assert load_model(path=onnx_bin).format_name == "onnx"
    assert load_model(path=ts_bin).format_name == "torchscript"
    # Explicit format wins over the suffix; every TorchScript suffix dispatches.
    misnamed = tmp_path / "really_onnx.pt"
    misnamed.write_bytes(onnx_built.path.read_bytes())
    assert load_model(path=misnamed, model_format="onnx").format_name == "onnx"
    for suffix in (".pth", ".ts", ".torchscript", ".PT"):
        renamed = tmp_path / f"m{suffix}"
        renamed.write_bytes(ts_built.path.read_bytes())
        assert load_model(path=renamed).format_name == "torchscript"
    with pytest.raises(ModelLoadError, match="unknown model format 'keras'.*onnx, torchscript"):
        load_model(path=onnx_built.path, model_format="keras")


def test_register_adapter_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_adapter("onnx", suffixes=(".other",))(type("Dup", (), {}))
    with pytest.raises(ValueError, match="suffix '.onnx' is already registered"):
        register_adapter("brand-new-format", suffixes=(".onnx",))(type("Dup", (), {}))
    assert "brand-new-format" not in available_formats()


def test_runtime_info(build: Callable[..., BuiltModel]) -> None:
    onnx_info = load_model(path=_case(build, "sklearn-logreg-tensor")[0].path).runtime_info()
    assert onnx_info["format"] == "onnx" and onnx_info["onnxruntime"]
    assert onnx_info["providers"] == ["CPUExecutionProvider"]
    assert onnx_info["producer"].startswith("skl2onnx")
    ts_info = load_model(path=_case(build, "torchscript-script")[0].path).runtime_info()
    assert ts_info["format"] == "torchscript" and ts_info["torch"].startswith("2.")


def test_torchscript_n_classes_needs_a_trial_run(build: Callable[..., BuiltModel]) -> None:
    built, _, _ = _case(build, "torchscript-trace")
    model = load_model(path=built.path)
    with pytest.raises(RuntimeError, match="check_input"):
        _ = model.n_classes
    model.check_input(built.x[:5])
    assert model.n_classes == 5


def test_torchscript_accepts_read_only_float64_input(build: Callable[..., BuiltModel]) -> None:
    built, _, _ = _case(build, "torchscript-script")
    x = built.x.astype(np.float64)
    x.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = load_model(path=built.path).predict_raw(x, batch_size=10)
    np.testing.assert_allclose(raw, built.reference(built.x), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    assert str(exc.value) == f"{path}: model file not found"


@pytest.mark.parametrize("name", ["random.onnx", "random.bin"])
def test_random_bytes_is_not_a_valid_onnx_model(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    assert f"{path}: not a valid ONNX model (" in _one_line(exc, path)


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_onnx(build: Callable[..., BuiltModel], tmp_path: Path, keep: float) -> None:
    data = _case(build, "onnx-dynamo-logits")[0].path.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    assert f"{path}: not a valid ONNX model (" in _one_line(exc, path)


def test_missing_external_data_sidecar(build: Callable[..., BuiltModel], tmp_path: Path) -> None:
    built, _, _ = _case(build, "onnx-dynamo-external-data")
    path = tmp_path / "alone.onnx"
    path.write_bytes(built.path.read_bytes())  # the .data file is not copied
    assert Path(str(built.path) + ".data").stat().st_size > 0
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    assert f"separate file '{built.path.name}.data' that is not next to it" in _one_line(exc, path)


def test_empty_file_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="model file is empty"):
        load_model(path=empty)
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(path=tmp_path)


def test_random_bytes_with_torchscript_suffix(tmp_path: Path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(b"PK\x03\x04" + os.urandom(500))
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    assert f"{path}: not a valid TorchScript model (" in _one_line(exc, path)


def test_torch_save_checkpoint_gets_a_hint(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(4, 3).state_dict(), str(path))
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    message = _one_line(exc, path)
    assert "torch.save() checkpoint" in message and "torch.jit.script" in message


@pytest.mark.parametrize("name", ["onnx-dynamo-logits", "sklearn-logreg-zipmap", "onnx-legacy-probabilities-fixed-batch"])
def test_wrong_feature_count_onnx(build: Callable[..., BuiltModel], name: str) -> None:
    built, n_features, _ = _case(build, name)
    model = load_model(path=built.path)
    x = np.zeros((3, n_features + 1), dtype=np.float32)
    expected = f"{built.path}: expects {n_features} input features but members.csv has {n_features + 1} feature columns"
    with pytest.raises(InputError) as exc:
        model.check_input(x, data_name="members.csv")
    assert str(exc.value) == expected
    with pytest.raises(InputError, match=f"expects {n_features} input features but the data has {n_features + 1} "):
        model.predict_raw(x, batch_size=2)
    with pytest.raises(InputError, match="expects records of shape"):
        model.check_input(np.zeros((3, 2, n_features), dtype=np.float32))
    with pytest.raises(InputError, match="array of records"):
        model.check_input(np.zeros(n_features, dtype=np.float32))


def test_wrong_feature_count_torchscript(build: Callable[..., BuiltModel]) -> None:
    built, _, _ = _case(build, "torchscript-script")
    model = load_model(path=built.path)
    with pytest.raises(InputError) as exc:
        model.check_input(np.zeros((10, 5)))
    message = _one_line(exc, built.path)
    assert message == (
        f"{built.path}: model rejected the input of shape (2, 5): "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x5 and 4x16)"
    )
    with pytest.raises(InputError) as exc:
        model.predict_raw(np.zeros((10, 5)), batch_size=4)
    assert f"{built.path}: model failed on rows 0-3" in _one_line(exc, built.path)


def _tiny_graph(path: Path, *, two_inputs: bool = False, int_output: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3])]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3]))
        nodes = [helper.make_node("Add", ["a", "b"], ["out"])]
        outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])]
    elif int_output:
        nodes = [helper.make_node("ArgMax", ["a"], ["out"], axis=1, keepdims=0)]
        outputs = [helper.make_tensor_value_info("out", TensorProto.INT64, [None])]
    else:
        nodes = [helper.make_node("Relu", ["a"], ["out"])]
        outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_multi_input_graph_is_rejected(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path / "two.onnx", two_inputs=True)
    with pytest.raises(ModelLoadError) as exc:
        load_model(path=path)
    message = _one_line(exc, path)
    assert "2 inputs (a: tensor(float), b: tensor(float))" in message


def test_graph_without_score_output_is_rejected(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path / "argmax.onnx", int_output=True)
    with pytest.raises(ModelLoadError, match="no floating-point output"):
        load_model(path=path)


def test_graph_with_unknown_final_op_has_no_native_kind(tmp_path: Path) -> None:
    model = load_model(path=_tiny_graph(tmp_path / "relu.onnx"))
    assert model.native_output_kind is None
    assert model.n_classes == 3


# ---------------------------------------------------------------------------------------- normalize_outputs
def test_normalize_detects_probabilities_and_logits() -> None:
    probs = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    out, kind = normalize_outputs(raw=probs, output_kind="auto", native_kind=None, source="m")
    assert kind == "probabilities" and out.dtype == np.float64
    np.testing.assert_array_equal(out, probs)
    logits = np.array([[0.2, 0.3], [0.5, 0.5]])  # in [0, 1] but rows do not sum to 1
    assert normalize_outputs(raw=logits, output_kind="auto", native_kind=None, source="m")[1] == "logits"
    assert normalize_outputs(raw=probs, output_kind="auto", native_kind="logits", source="m")[1] == "logits"


def test_normalize_single_column() -> None:
    p = np.array([[0.1], [0.9], [0.5]], dtype=np.float32)
    out, kind = normalize_outputs(raw=p, output_kind="auto", native_kind=None, source="m")
    assert kind == "probabilities"
    np.testing.assert_allclose(out, np.column_stack([1 - p[:, 0], p[:, 0]]).astype(np.float64), atol=1e-7)
    z = np.array([-3.0, 0.0, 2.5])  # 1-D raw is one column too
    out, kind = normalize_outputs(raw=z, output_kind="auto", native_kind=None, source="m")
    assert kind == "logits"
    np.testing.assert_array_equal(out, np.column_stack([np.zeros(3), z]))
    np.testing.assert_allclose(_softmax(out)[:, 1], _sigmoid(z), atol=1e-12)
    # A logit column that happens to lie in [0, 1] needs the override (or the graph's hint).
    small = np.array([[0.2], [0.7]])
    assert normalize_outputs(raw=small, output_kind="logits", native_kind=None, source="m")[1] == "logits"


def test_normalize_rejects_non_finite_with_row() -> None:
    raw = np.zeros((5, 3))
    raw[3, 1] = np.nan
    with pytest.raises(InputError, match=r"^m\.onnx: model output is NaN or infinite at row 3$"):
        normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="m.onnx")
    raw[3, 1] = 0.0
    raw[4, 0] = -np.inf
    with pytest.raises(InputError, match="at row 4"):
        normalize_outputs(raw=raw, output_kind="logits", native_kind=None, source="m.onnx")


def test_normalize_probability_validation_names_first_bad_row() -> None:
    raw = np.array([[0.5, 0.5], [0.3, 0.7], [0.6, 0.6], [0.2, 0.1]])
    with pytest.raises(InputError, match=r"^m: outputs declared as probabilities but row 2 does not sum to 1$"):
        normalize_outputs(raw=raw, output_kind="probabilities", native_kind=None, source="m")
    raw = np.array([[0.5, 0.5], [1.5, -0.5]])
    with pytest.raises(InputError, match="row 1 has values outside"):
        normalize_outputs(raw=raw, output_kind="probabilities", native_kind=None, source="m")
    with pytest.raises(InputError, match="according to the model graph but row 1"):
        normalize_outputs(raw=raw, output_kind="auto", native_kind="probabilities", source="m")
    with pytest.raises(InputError, match="row 1 has values outside"):
        normalize_outputs(raw=np.array([[0.5], [1.2]]), output_kind="probabilities", native_kind=None, source="m")


def test_normalize_clips_float32_rounding_and_never_mutates_input() -> None:
    raw = np.array([[1.0000001, 0.0, 0.0], [0.2, 0.3, 0.5]])
    before = raw.copy()
    out, kind = normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="m")
    assert kind == "probabilities" and out.max() == 1.0
    np.testing.assert_array_equal(raw, before)
    logits = np.array([[1.0, 2.0], [3.0, 4.0]])
    out, _ = normalize_outputs(raw=logits, output_kind="logits", native_kind=None, source="m")
    assert out is not logits


def test_normalize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="output_kind"):
        normalize_outputs(raw=np.zeros((2, 2)), output_kind="scores", native_kind=None, source="m")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        normalize_outputs(raw=np.zeros((2, 2, 2)), output_kind="auto", native_kind=None, source="m")
