"""ONNX models through onnxruntime (CPU).

Handles what users really export (DESIGN.md §7):

- torch.onnx.export (either exporter): one float tensor output of logits or probabilities, dynamic
  or fixed batch dimension, weights inline or in an external-data sidecar file;
- skl2onnx classifiers: a label tensor plus a probabilities tensor, or a label tensor plus the
  default ZipMap output ``seq(map(int64|string, float))``. A ZipMap is cut off at load time and its
  input (the probabilities tensor) is fetched instead, so no Python dicts are built per record;
  columns are ordered by sorted class label, and the labels are exposed as `class_labels`;
- binary models with one sigmoid or logit column (k = 1).

Whether outputs are logits or probabilities is read from the graph when it says so: a classifier
converter's probabilities, a final Softmax/Sigmoid (probabilities) or LogSoftmax/Gemm/MatMul (logits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.errors import ModelLoadError
from mia_audit.models.base import ModelAdapter, OutputKind, short_reason
from mia_audit.models.registry import register_adapter

__all__ = ["OnnxAdapter"]

#: onnxruntime input type strings -> numpy dtypes the adapter can feed.
_INPUT_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
}
#: Output types that can hold class scores.
_SCORE_TYPES = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})
#: Output types of a predicted-label output (skl2onnx / onnxmltools classifiers).
_LABEL_TYPES = frozenset({"tensor(int64)", "tensor(int32)", "tensor(string)"})
#: Ops that only move or reshape values; walked through when reading the final op.
#: Producers whose classifiers output a label tensor plus a probabilities tensor.
_CLASSIFIER_CONVERTERS = frozenset({"skl2onnx", "onnxmltools"})
_PASS_THROUGH_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"})
_PROBABILITY_OPS = frozenset({"Softmax", "Sigmoid"})
_LOGIT_OPS = frozenset({"LogSoftmax", "Gemm", "MatMul"})
_LINEAR_OPS = frozenset({"Gemm", "MatMul", "Conv"})


def _final_op_kind(graph: Any, output_name: str) -> OutputKind | None:
    """Logits / probabilities from the op that produces `output_name`, or None if it does not say."""
    producer = {out: node for node in graph.node for out in node.output}
    node = producer.get(output_name)
    for _ in range(16):  # walk back through reshapes/casts
        if node is None or node.op_type not in _PASS_THROUGH_OPS:
            break
        node = producer.get(node.input[0]) if node.input else None
    if node is None:
        return None
    if node.op_type in _PROBABILITY_OPS:
        return "probabilities"
    if node.op_type in _LOGIT_OPS:
        return "logits"
    if node.op_type == "Add":  # a linear layer exported as MatMul + Add(bias)
        parents = [producer.get(name) for name in node.input]
        if any(p is not None and p.op_type in _LINEAR_OPS for p in parents):
            return "logits"
    return None


def _zipmap_node(graph: Any) -> tuple[Any, list[Any]] | None:
    """The ZipMap node producing a graph output, with its class labels (attribute order)."""
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        if node.op_type == "ZipMap" and node.output and node.output[0] in outputs:
            labels: list[Any] = []
            for attr in node.attribute:
                if attr.name == "classlabels_int64s":
                    labels = [int(v) for v in attr.ints]
                elif attr.name == "classlabels_strings":
                    labels = [v.decode("utf-8") for v in attr.strings]
            return node, labels
    return None


def _uses_external_data(model: Any) -> bool:
    from onnx import TensorProto

    return any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)


def _missing_external_file(model: Any, folder: Path) -> str | None:
    """The first external-data file an initializer names that does not exist next to the model."""
    from onnx import TensorProto

    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if location and not (folder / location).is_file():
            return location
    return None


def _cut_zipmap(model: Any, node: Any, n_labels: int) -> Any:
    """A copy of `model` whose ZipMap output is replaced by the ZipMap's input tensor."""
    import onnx
    from onnx import TensorProto, helper

    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    zip_out, zip_in = node.output[0], node.input[0]
    kept_nodes = [n for n in cut.graph.node if not (n.op_type == "ZipMap" and n.output[0] == zip_out)]
    del cut.graph.node[:]
    cut.graph.node.extend(kept_nodes)
    outputs = [o for o in cut.graph.output if o.name != zip_out]
    if zip_in not in {o.name for o in outputs}:
        outputs.append(helper.make_tensor_value_info(zip_in, TensorProto.FLOAT, [None, n_labels or None]))
    del cut.graph.output[:]
    cut.graph.output.extend(outputs)
    return cut


@register_adapter("onnx", suffixes=(".onnx",))
class OnnxAdapter(ModelAdapter):
    """An ONNX classifier run by onnxruntime on the CPU execution provider."""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """ONNX is protobuf, which has no magic number: accept anything that is not a zip archive."""
        return not head.startswith(b"PK\x03\x04")

    def __init__(self, *, path: Path) -> None:
        super().__init__(path=path)
        import onnx
        import onnxruntime as ort

        try:
            model = onnx.load(str(self.path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf/OS errors all mean "not a valid model"
            raise ModelLoadError(f"{self.path}: not a valid ONNX model ({short_reason(exc)})") from None
        if not model.HasField("graph") or not model.graph.output:
            raise ModelLoadError(f"{self.path}: not a valid ONNX model (no graph with outputs found)")

        missing = _missing_external_file(model, self.path.parent)
        if missing is not None:
            raise ModelLoadError(
                f"{self.path}: the model's weights are in a separate file {missing!r} that is not "
                "next to it; keep the external-data file beside the .onnx file"
            )

        # A ZipMap output is cut off so we fetch its input tensor (no per-record dicts).
        zipmap = _zipmap_node(model.graph)
        self._class_labels: list[Any] | None = None
        self._column_order: np.ndarray | None = None
        self._zipmap_output: str | None = None  # set when the ZipMap is kept (per-row fallback)
        self._zipmap_input: str | None = None  # set when the ZipMap is cut off
        source: str | bytes = str(self.path)
        if zipmap is not None:
            node, labels = zipmap
            if labels:
                self._class_labels = sorted(labels)
                order = np.argsort(np.asarray(labels, dtype=object), kind="stable")
                if not np.array_equal(order, np.arange(len(labels))):
                    self._column_order = order
            if _uses_external_data(model):
                self._zipmap_output = node.output[0]
            else:
                source = _cut_zipmap(model, node, len(labels)).SerializeToString()
                self._zipmap_input = node.input[0]

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{self.path}: not a valid ONNX model ({short_reason(exc)})") from None
        self._ort_version = ort.__version__
        self._producer = f"{model.producer_name} {model.producer_version}".strip()
        self._opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}

        self._init_input()
        self._init_output(model, zipmap_labels=None if zipmap is None else zipmap[1])

    # ------------------------------------------------------------------ load-time analysis
    def _init_input(self) -> None:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            listed = ", ".join(f"{i.name}: {i.type}" for i in inputs) or "none"
            raise ModelLoadError(
                f"{self.path}: model has {len(inputs)} inputs ({listed}); only single-input models are supported"
            )
        inp = inputs[0]
        self._input_name: str = inp.name
        if inp.type not in _INPUT_DTYPES:
            raise ModelLoadError(f"{self.path}: unsupported input type {inp.type} for input {inp.name!r}")
        self._input_dtype = np.dtype(_INPUT_DTYPES[inp.type])
        shape = list(inp.shape) if inp.shape is not None else None
        self._fixed_batch: int | None = None
        if not shape:
            self._input_shape: tuple[int | None, ...] | None = None
            return
        batch = shape[0]
        if isinstance(batch, int) and batch > 0:
            self._fixed_batch = batch
        self._input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in shape[1:])

    def _init_output(self, model: Any, *, zipmap_labels: list[Any] | None) -> None:
        outputs = self._session.get_outputs()
        labels_out = [o for o in outputs if o.type in _LABEL_TYPES and len(o.shape or []) <= 1]
        native: OutputKind | None = None
        zip_name = self._zipmap_input or self._zipmap_output
        if zip_name is not None:
            chosen = zip_name
            native = "probabilities"
            self._n_outputs = len(zipmap_labels) if zipmap_labels else None
        else:
            scores = [o for o in outputs if o.type in _SCORE_TYPES]
            if not scores:
                listed = ", ".join(f"{o.name}: {o.type}" for o in outputs)
                raise ModelLoadError(
                    f"{self.path}: model has no floating-point output to use as class scores (outputs: {listed})"
                )
            probs = [o for o in scores if "prob" in o.name.lower()]
            out = probs[0] if (len(scores) > 1 and probs) else scores[0]
            chosen = out.name
            shape = list(out.shape) if out.shape is not None else None
            if shape is not None and len(shape) > 2:
                raise ModelLoadError(
                    f"{self.path}: output {out.name!r} has shape {shape}; expected (batch, classes) scores"
                )
            if shape is not None and len(shape) == 1:
                self._n_outputs = 1
            elif shape is not None and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
                self._n_outputs = shape[1]
            converter = model.producer_name.lower() in _CLASSIFIER_CONVERTERS
            if labels_out and (converter or "prob" in chosen.lower()):
                native = "probabilities"  # a classifier converter's label + probabilities pair
            else:
                native = _final_op_kind(model.graph, chosen)
        self._output_name: str = chosen
        self._native_kind = native

    # ------------------------------------------------------------------ declared properties
    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """Per-record input shape from the graph (batch dimension dropped; None = dynamic)."""
        return self._input_shape

    @property
    def input_dtype(self) -> np.dtype:
        """Input element type declared by the graph (tensor(float) -> float32, ...)."""
        return self._input_dtype

    @property
    def native_output_kind(self) -> OutputKind | None:
        """What the graph says the selected output is, or None when it does not say."""
        return self._native_kind

    @property
    def class_labels(self) -> list[Any] | None:
        """Sorted class labels from a skl2onnx ZipMap (the output column order), else None."""
        return None if self._class_labels is None else list(self._class_labels)

    @property
    def session(self) -> Any:
        """The underlying onnxruntime InferenceSession (for benchmarks and diagnostics)."""
        return self._session

    @property
    def output_name(self) -> str:
        """Name of the graph output used as class scores."""
        return self._output_name

    def runtime_info(self) -> dict[str, Any]:
        """onnxruntime version, providers, the input/output used and the model's producer/opsets."""
        info: dict[str, Any] = {
            "format": self.format_name,
            "onnxruntime": self._ort_version,
            "providers": list(self._session.get_providers()),
            "input": self._input_name,
            "output": self._output_name,
            "producer": self._producer,
            "opsets": dict(self._opsets),
        }
        if self._fixed_batch is not None:
            info["fixed_batch_size"] = self._fixed_batch
        return info

    # ------------------------------------------------------------------ running
    def _effective_batch_size(self, batch_size: int) -> int:
        return self._fixed_batch or batch_size

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        res = self._session.run([self._output_name], {self._input_name: x})[0]
        if self._zipmap_output is not None:
            res = self._zipmap_rows_to_array(res)
        elif self._column_order is not None:
            res = np.asarray(res)[:, self._column_order]
        return res

    def _zipmap_rows_to_array(self, rows: list[dict[Any, float]]) -> np.ndarray:
        """ZipMap's list of {label: probability} dicts -> (n, k) array in sorted-label order."""
        n = len(rows)
        if n == 0:
            return np.empty((0, len(self._class_labels or [])), dtype=np.float64)
        keys = self._class_labels if self._class_labels else sorted(rows[0])
        if self._class_labels is None:
            self._class_labels = list(keys)
        k = len(keys)
        try:
            flat = np.fromiter((row[key] for row in rows for key in keys), dtype=np.float64, count=n * k)
        except KeyError as exc:
            raise ModelLoadError(f"{self.path}: ZipMap output is missing class {exc.args[0]!r}") from None
        return flat.reshape(n, k)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        b = self._fixed_batch
        if b is None or x.shape[0] == b:
            return self._run_once(x)
        # A fixed batch dimension: run in chunks of exactly b rows, padding the last one.
        parts = []
        for start in range(0, x.shape[0], b):
            chunk = x[start : start + b]
            rows = chunk.shape[0]
            if rows < b:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - rows, axis=0)])
            parts.append(np.asarray(self._run_once(chunk))[:rows])
        return np.concatenate(parts)
