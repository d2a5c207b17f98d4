"""ONNX graph → `TrainableGraph` (architecture only; the model's trained weights are never reused).

Steps: the graph is cut to the nodes the audited output depends on (a label branch, ArgMax, ZipMap or
ArrayFeatureExtractor that only map scores to labels are neither converted nor refused); ops whose
weights live in attributes (ONNX-ML LinearClassifier / LinearRegressor) are lowered to table ops; every
remaining op must be in the op table (`mia_audit.shadows.graph`), else the conversion is refused naming it.

Which constants are re-drawn for the shadows and which are kept is each op's weight rule in the table:

- re-drawn (trainable): weights and biases of Gemm, MatMul and Conv (and of a lowered LinearClassifier /
  LinearRegressor); an Add right after a MatMul/Conv (a bias exported separately); Batch/Layer/Instance/
  Group normalisation scale and shift; PRelu slopes;
- reset: BatchNormalization running mean (0) and variance (1);
- kept as in the model: every other constant — input scaling or standardisation (`x / 16`,
  `(x − mean) / std`, an ONNX-ML Scaler / Normalizer / Imputer), reshape targets. These are preprocessing
  fixed before training, not learned.

The converted graph is checked against onnxruntime with the model's own weights on a few records
before any shadow is trained (`shadows.clone`): a conversion that does not reproduce the model is
refused, never silently trained.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mia_audit.shadows.graph import GraphNode, Head, TrainableGraph, UnsupportedGraph
from mia_audit.shadows.graph.nodes import ML_DOMAIN, WeightContext
from mia_audit.shadows.graph.registry import LowerContext, lookup

__all__ = ["graph_from_onnx", "load_onnx_proto"]

_FLOAT_TYPES = {1: torch.float32, 11: torch.float64, 10: torch.float16}


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


def _op_label(node: GraphNode) -> str:
    return f"{node.op} (domain {node.domain})" if node.domain not in ("", "ai.onnx") else node.op


def _cone(nodes: list[GraphNode], output: str) -> list[GraphNode]:
    """The nodes `output` depends on, in graph order: a label branch, a ZipMap or any other node the
    audited output does not need is not converted (nor refused)."""
    wanted, chosen = {output}, []
    for node in reversed(nodes):
        if wanted.intersection(node.outputs):
            chosen.append(node)
            wanted.update(name for name in node.inputs if name)
    return chosen[::-1]


def _fold_constants(nodes: list[GraphNode], values: dict[str, np.ndarray]) -> list[GraphNode]:
    """Constant nodes become constants like initializers (so a weight exported as a Constant is a weight)."""
    kept = []
    for node in nodes:
        if node.key == "Constant" and isinstance(node.attrs.get("value"), torch.Tensor):
            values[node.outputs[0]] = node.attrs["value"].numpy()
        else:
            kept.append(node)
    return kept


def _lower(nodes: list[GraphNode], values: dict[str, np.ndarray], graph_input: str) -> list[GraphNode]:
    """Nodes whose op is rewritten at import time (weights kept in attributes) replaced by table ops."""
    taken = {graph_input} | {name for node in nodes for name in (*node.inputs, *node.outputs)}
    context = LowerContext(constants=values, taken=taken)
    result: list[GraphNode] = []
    for node in nodes:
        entry = lookup(node.key)
        if entry is not None and entry.lower is not None:
            result.extend(dataclasses.replace(new, domain="") for new in entry.lower(node, context))
        else:
            result.append(node)
    return result


def _check_inputs(nodes: list[GraphNode], available: set[str]) -> None:
    """Every value a node reads is the graph input, a constant or an earlier node's output."""
    known = set(available)
    for node in nodes:
        missing = [name for name in node.inputs if name and name not in known]
        if missing:
            raise UnsupportedGraph(f"operator {_op_label(node)} reads {missing[0]!r}, which the converter cannot compute")
        known.update(node.outputs)


#: What the training loss may read through: ops that do not change any value.
_EXACT_PASS = frozenset({"Identity", "Cast", "Dropout"})


def _is_l1_normalizer(node: GraphNode) -> bool:
    return node.key == f"{ML_DOMAIN}:Normalizer" and str(node.attrs.get("norm", "")) == "L1"


def _find_head(
    *, producers: dict[str, GraphNode], output: str, output_kind: str, n_outputs: int | None
) -> tuple[Head, str]:
    """What the training loss reads: the logits before a final Softmax/LogSoftmax/Sigmoid, or the output.

    Identity / Cast / Dropout are walked through; so is an L1 Normalizer (skl2onnx puts one after a
    logistic regression's softmax), but then only a Softmax counts — its rows already sum to one. A reshape
    on the way means the loss reads the output itself.
    """
    node = producers.get(output)
    normalised, hops = False, 0
    while node is not None and hops < 8 and (node.op in _EXACT_PASS or _is_l1_normalizer(node)):
        normalised = normalised or _is_l1_normalizer(node)
        node = producers.get(node.inputs[0])
        hops += 1
    if node is not None and node.domain == "":
        if node.op == "Softmax" and node.attrs.get("axis", -1) in (-1, 1):
            return "softmax", node.inputs[0]
        if node.op == "LogSoftmax" and not normalised:
            return "log_softmax", node.inputs[0]
        if node.op == "Sigmoid" and n_outputs == 1 and not normalised:
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

    all_nodes = [
        GraphNode(
            op=n.op_type,
            inputs=tuple(n.input),
            outputs=tuple(n.output),
            attrs=_attributes(n),
            opset=opset,
            domain="" if n.domain == "ai.onnx" else n.domain,
        )
        for n in graph.node
    ]
    needed = _cone(all_nodes, output_name)
    unsupported = sorted({_op_label(n) for n in needed if lookup(n.key) is None})
    if unsupported:
        raise UnsupportedGraph(
            f"the model graph uses ONNX operator(s) mia-audit cannot retrain: {', '.join(unsupported)}"
        )
    values = {name: np.array(numpy_helper.to_array(t)) for name, t in initializers.items()}
    needed = _fold_constants(needed, values)
    nodes = _cone(_lower(needed, values, inputs[0].name), output_name)
    _check_inputs(nodes, {inputs[0].name, *values})
    producers = {out: node for node in nodes for out in node.outputs}

    weights = WeightContext(
        shapes={name: tuple(v.shape) for name, v in values.items() if np.issubdtype(v.dtype, np.floating)}
    )
    for node in nodes:
        rule = lookup(node.key).weights
        if rule is not None:
            rule(node, weights)
    params, running = weights.params, weights.running
    if not params:
        raise UnsupportedGraph(
            "the model graph has no trainable layer (Gemm, MatMul, Conv or a linear model with constant weights)"
        )

    def tensor(name: str) -> torch.Tensor:
        value = values[name]
        if np.issubdtype(value.dtype, np.floating):
            return torch.from_numpy(value.astype(np.float64)).to(input_dtype)
        return torch.from_numpy(value.copy())

    used = {name for node in nodes for name in node.inputs}
    constants = {name: tensor(name) for name in values if name in used and name not in params and name not in running}
    original = {name: tensor(name) for name in params}
    original_running = {name: tensor(name) for name in running}
    head, head_input = _find_head(
        producers=producers, output=output_name, output_kind=output_kind, n_outputs=n_outputs
    )
    ops = sorted({node.op for node in nodes})  # after lowering: what is actually run
    result = TrainableGraph(
        input_name=inputs[0].name,
        output_name=output_name,
        input_dtype=input_dtype,
        nodes=nodes,
        params=params,
        running=dict(running),
        constants=constants,
        head=head,
        head_input=head_input,
        description=f"{len(nodes)} ONNX nodes ({', '.join(ops)}), {sum(math.prod(s.shape) for s in params.values())} trainable values",
        running_shapes={name: tuple(values[name].shape) for name in running},
    )
    return result, original, original_running
