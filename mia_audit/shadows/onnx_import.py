"""ONNX graph → `TrainableGraph` (architecture only; the model's trained weights are never reused).

Which initializers are re-drawn for the shadows and which are kept:

- re-drawn (trainable): weights and biases of Gemm, MatMul and Conv; an Add right after a MatMul/Conv
  (a bias exported separately); BatchNormalization and LayerNormalization scale/shift; PRelu slopes;
- reset: BatchNormalization running mean (0) and variance (1);
- kept as in the model: every other constant — input scaling or standardisation (`x / 16`,
  `(x − mean) / std`), reshape targets. These are preprocessing fixed before training, not learned.

The converted graph is checked against onnxruntime with the model's own weights on a few records
before any shadow is trained (`verify_against`): a conversion that does not reproduce the model is
refused, never silently trained.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mia_audit.shadows.graph import (
    GraphNode,
    Head,
    ParamSpec,
    TrainableGraph,
    UnsupportedGraph,
    supported_ops,
    uniform_bound,
)

__all__ = ["graph_from_onnx", "load_onnx_proto"]

_FLOAT_TYPES = {1: torch.float32, 11: torch.float64, 10: torch.float16}
_LINEAR_PRODUCERS = frozenset({"MatMul", "Conv", "Gemm"})
# Ops that do not change which column is which; walked through when looking for the output head.
_PASS_THROUGH = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Cast"})


def load_onnx_proto(path: Path) -> Any:
    """The ONNX ModelProto, external data loaded from the model's folder."""
    import onnx

    return onnx.load(str(path))


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import AttributeProto, numpy_helper

    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type == AttributeProto.FLOAT:
            attrs[attr.name] = attr.f
        elif attr.type == AttributeProto.INT:
            attrs[attr.name] = attr.i
        elif attr.type == AttributeProto.STRING:
            attrs[attr.name] = attr.s.decode("utf-8", "replace")
        elif attr.type == AttributeProto.FLOATS:
            attrs[attr.name] = list(attr.floats)
        elif attr.type == AttributeProto.INTS:
            attrs[attr.name] = list(attr.ints)
        elif attr.type == AttributeProto.TENSOR:
            attrs[attr.name] = torch.from_numpy(np.array(numpy_helper.to_array(attr.t)))
        elif attr.type == AttributeProto.STRINGS:
            attrs[attr.name] = [s.decode("utf-8", "replace") for s in attr.strings]
        else:
            attrs[attr.name] = None
    if node.op_type == "Constant" and "value" not in attrs:
        for key in ("value_float", "value_int"):
            if key in attrs:
                attrs["value"] = torch.tensor(attrs[key])
        for key in ("value_floats", "value_ints"):
            if key in attrs:
                attrs["value"] = torch.tensor(attrs[key])
        if "value" not in attrs:
            raise UnsupportedGraph("a Constant node of an unsupported kind (sparse or string)")
    return attrs


def _op_label(node: Any) -> str:
    return f"{node.op_type} (domain {node.domain})" if node.domain not in ("", "ai.onnx") else node.op_type


def _find_head(
    *, producers: dict[str, GraphNode], output: str, output_kind: str, n_outputs: int | None
) -> tuple[Head, str]:
    """What the training loss reads: the logits before a final Softmax/LogSoftmax/Sigmoid, or the output."""
    node = producers.get(output)
    hops = 0
    while node is not None and node.op in _PASS_THROUGH and hops < 8:
        node = producers.get(node.inputs[0])
        hops += 1
    if node is not None and hops == 0:
        if node.op == "Softmax":
            return "softmax", node.inputs[0]
        if node.op == "LogSoftmax":
            return "log_softmax", node.inputs[0]
        if node.op == "Sigmoid" and n_outputs == 1:
            return "sigmoid", node.inputs[0]
    if output_kind == "logits":
        return ("binary_logit" if n_outputs == 1 else "ce"), output
    return "probabilities", output


def graph_from_onnx(
    *, proto: Any, output_name: str, output_kind: str, n_outputs: int | None
) -> tuple[TrainableGraph, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Convert an ONNX model to a `TrainableGraph`.

    Returns the graph plus the model's own values of the trainable tensors and running statistics —
    used only to check the conversion against onnxruntime, never to initialise a shadow.
    Raises `UnsupportedGraph` naming every operator (and domain) the converter cannot train.
    """
    from onnx import numpy_helper

    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 17)
    known = supported_ops()
    unsupported = sorted(
        {_op_label(n) for n in graph.node if n.domain not in ("", "ai.onnx") or n.op_type not in known}
    )
    if unsupported:
        raise UnsupportedGraph(
            f"the model graph uses ONNX operator(s) mia-audit cannot retrain: {', '.join(unsupported)}"
        )
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedGraph(f"the model graph has {len(inputs)} inputs; shadow training needs exactly one")
    elem_type = inputs[0].type.tensor_type.elem_type
    if elem_type not in _FLOAT_TYPES:
        raise UnsupportedGraph(
            "the model takes non-floating-point input (e.g. token ids for an embedding); "
            "shadow training supports floating-point feature or tensor inputs"
        )
    input_dtype = _FLOAT_TYPES[elem_type]
    if input_dtype == torch.float16:
        input_dtype = torch.float32

    nodes = [
        GraphNode(
            op=n.op_type,
            inputs=tuple(n.input),
            outputs=tuple(n.output),
            attrs=_attributes(n),
            opset=opset,
        )
        for n in graph.node
    ]
    producers = {out: node for node in nodes for out in node.outputs}
    values = {name: np.array(numpy_helper.to_array(t)) for name, t in initializers.items()}
    is_float = {name: np.issubdtype(v.dtype, np.floating) for name, v in values.items()}

    params: dict[str, ParamSpec] = {}
    running: dict[str, str] = {}
    layer_fan_in: dict[str, int] = {}  # node output name -> fan_in of the layer that produced it

    def trainable(name: str, spec: ParamSpec) -> None:
        if name in values and is_float[name]:
            params.setdefault(name, spec)

    for node in nodes:
        ins = node.inputs
        if node.op == "Gemm" and len(ins) >= 2 and ins[1] in values:
            shape = values[ins[1]].shape
            fan_in = shape[1] if node.attrs.get("transB", 0) else shape[0]
            trainable(ins[1], ParamSpec(shape=tuple(shape), init="uniform", bound=uniform_bound(fan_in)))
            if len(ins) > 2 and ins[2]:
                trainable(ins[2], ParamSpec(shape=values[ins[2]].shape, init="uniform", bound=uniform_bound(fan_in)))
            layer_fan_in[node.outputs[0]] = fan_in
        elif node.op == "MatMul":
            if ins[1] in values and values[ins[1]].ndim >= 2:
                fan_in = values[ins[1]].shape[-2]
                trainable(ins[1], ParamSpec(shape=values[ins[1]].shape, init="uniform", bound=uniform_bound(fan_in)))
                layer_fan_in[node.outputs[0]] = fan_in
            elif ins[0] in values and values[ins[0]].ndim >= 2:
                fan_in = values[ins[0]].shape[-1]
                trainable(ins[0], ParamSpec(shape=values[ins[0]].shape, init="uniform", bound=uniform_bound(fan_in)))
                layer_fan_in[node.outputs[0]] = fan_in
        elif node.op == "Conv" and ins[1] in values:
            shape = values[ins[1]].shape
            fan_in = int(shape[1] * math.prod(shape[2:]))
            trainable(ins[1], ParamSpec(shape=tuple(shape), init="uniform", bound=uniform_bound(fan_in)))
            if len(ins) > 2 and ins[2]:
                trainable(ins[2], ParamSpec(shape=values[ins[2]].shape, init="uniform", bound=uniform_bound(fan_in)))
            layer_fan_in[node.outputs[0]] = fan_in
        elif node.op == "Add":
            for this, other in ((ins[0], ins[1]), (ins[1], ins[0])):
                if this in values and other in layer_fan_in:
                    bound = uniform_bound(layer_fan_in[other])
                    trainable(this, ParamSpec(shape=values[this].shape, init="uniform", bound=bound))
        elif node.op == "BatchNormalization":
            trainable(ins[1], ParamSpec(shape=values[ins[1]].shape, init="ones"))
            trainable(ins[2], ParamSpec(shape=values[ins[2]].shape, init="zeros"))
            for name, kind in ((ins[3], "mean"), (ins[4], "var")):
                if name not in values:
                    raise UnsupportedGraph("a BatchNormalization whose running statistics are not constants")
                running[name] = kind
        elif node.op == "LayerNormalization":
            trainable(ins[1], ParamSpec(shape=values[ins[1]].shape, init="ones"))
            if len(ins) > 2 and ins[2]:
                trainable(ins[2], ParamSpec(shape=values[ins[2]].shape, init="zeros"))
        elif node.op == "PRelu" and ins[1] in values:
            trainable(ins[1], ParamSpec(shape=values[ins[1]].shape, init="constant", value=0.25))

    if not params:
        raise UnsupportedGraph("the model graph has no trainable layer (Gemm, MatMul or Conv with constant weights)")

    def tensor(name: str) -> torch.Tensor:
        value = values[name]
        if np.issubdtype(value.dtype, np.floating):
            return torch.from_numpy(value.astype(np.float64)).to(input_dtype)
        return torch.from_numpy(value.copy())

    constants = {name: tensor(name) for name in values if name not in params and name not in running}
    original = {name: tensor(name) for name in params}
    original_running = {name: tensor(name) for name in running}
    head, head_input = _find_head(
        producers=producers, output=output_name, output_kind=output_kind, n_outputs=n_outputs
    )
    ops = sorted({node.op for node in nodes})
    result = TrainableGraph(
        input_name=inputs[0].name,
        output_name=output_name,
        input_dtype=input_dtype,
        nodes=nodes,
        params=params,
        running=running,  # type: ignore[arg-type]
        constants=constants,
        head=head,
        head_input=head_input,
        description=f"{len(nodes)} ONNX nodes ({', '.join(ops)}), {sum(math.prod(s.shape) for s in params.values())} trainable values",
        running_shapes={name: tuple(values[name].shape) for name in running},
    )
    return result, original, original_running
