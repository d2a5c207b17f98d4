"""The ONNX-ML operators scikit-learn converters (skl2onnx) emit around a model (ai.onnx.ml domain,
https://onnx.ai/onnx/operators/ — the `onnx_aionnxml_*` pages).

- Preprocessing (Scaler, Normalizer, Imputer, Binarizer, OneHotEncoder, ArrayFeatureExtractor,
  FeatureVectorizer) and ZipMap are fixed functions of their attributes: kept exactly as in the model,
  never trained (like input scaling in a torch graph).
- LinearClassifier and LinearRegressor keep their weights in attributes. At import time they are lowered
  to a Gemm — so the weights become a trainable dense layer, initialised like a new torch Linear — followed
  by the model's post-transform as its own node (Softmax / Sigmoid / none). A shadow of a logistic
  regression is therefore a logistic regression trained with cross-entropy on its logits; a binary one
  (skl2onnx writes the weight vector twice, as −w and w) keeps a single trainable vector.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mia_audit.shadows.graph.attrs import text
from mia_audit.shadows.graph.nodes import ML_DOMAIN, GraphNode, UnsupportedGraph
from mia_audit.shadows.graph.registry import LowerContext, lowered, op
from mia_audit.shadows.graph.stacking import follow_first


def _floating(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.float32)


def _per_column(values, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(list(values), dtype=like.dtype)


@op("Scaler", domain=ML_DOMAIN, stacked=follow_first)
def _scaler(ctx, node, inputs):
    """Y = (X − offset) · scale, per column (or one value for all)."""
    x = _floating(inputs[0])
    offset = _per_column(node.attrs.get("offset", [0.0]), x)
    scale = _per_column(node.attrs.get("scale", [1.0]), x)
    return [(x - offset) * scale]


@op("Normalizer", domain=ML_DOMAIN, stacked=follow_first)
def _normalizer(ctx, node, inputs):
    """Each row divided by its maximum (MAX), sum of absolute values (L1) or Euclidean norm (L2)."""
    x = _floating(inputs[0])
    norm = text(node.attrs.get("norm", "MAX"))
    if norm == "L1":
        return [x / x.abs().sum(dim=-1, keepdim=True)]
    if norm == "L2":
        return [x / torch.sqrt((x * x).sum(dim=-1, keepdim=True))]
    if norm == "MAX":
        return [x / x.amax(dim=-1, keepdim=True)]
    raise UnsupportedGraph(f"operator Normalizer with norm={norm} is not supported")


@op("Imputer", domain=ML_DOMAIN, stacked=follow_first)
def _imputer(ctx, node, inputs):
    """Values equal to `replaced_value_float` (NaN: missing values) replaced by the column's imputed value."""
    x = _floating(inputs[0])
    replaced = float(node.attrs.get("replaced_value_float", 0.0))
    imputed = _per_column(node.attrs.get("imputed_value_floats", [0.0]), x)
    missing = torch.isnan(x) if math.isnan(replaced) else x == replaced
    return [torch.where(missing, imputed.expand_as(x), x)]


@op("Binarizer", domain=ML_DOMAIN, stacked=follow_first, gradient="none")
def _binarizer(ctx, node, inputs):
    x = inputs[0]
    return [(x > float(node.attrs.get("threshold", 0.0))).to(x.dtype)]


@op("OneHotEncoder", domain=ML_DOMAIN, gradient="none")
def _one_hot_encoder(ctx, node, inputs):
    """A new last axis with one column per category of `cats_int64s` (numeric inputs; unknown values give a
    row of zeros, as with zeros=1)."""
    if "cats_int64s" not in node.attrs:
        raise UnsupportedGraph("operator OneHotEncoder over string categories is not supported (numeric inputs only)")
    x = inputs[0].to(torch.int64)
    categories = torch.as_tensor(list(node.attrs["cats_int64s"]), dtype=torch.int64)
    return [(x.unsqueeze(-1) == categories).to(torch.float32)]


@op("ArrayFeatureExtractor", domain=ML_DOMAIN)
def _array_feature_extractor(ctx, node, inputs):
    """The columns `Y` of the last axis of X (a 1-D X gives one row)."""
    x, index = inputs
    picked = torch.index_select(x, -1, index.reshape(-1).to(torch.int64))
    return [picked.unsqueeze(0) if x.dim() == 1 else picked]


@op("FeatureVectorizer", domain=ML_DOMAIN)
def _feature_vectorizer(ctx, node, inputs):
    """Inputs flattened per row, each cut or zero-padded to its `inputdimensions`, then concatenated."""
    sizes = list(node.attrs.get("inputdimensions", []))
    parts = []
    for x, size in zip(inputs, sizes):
        rows = _floating(x).reshape(x.shape[0] if x.dim() > 1 else 1, -1)
        rows = rows[:, :size]
        parts.append(torch.nn.functional.pad(rows, (0, int(size) - rows.shape[1])))
    return [torch.cat(parts, dim=1)]


@op("ZipMap", domain=ML_DOMAIN, stacked=follow_first)
def _zip_map(ctx, node, inputs):
    """One {label: score} map per row. As a tensor: the score columns in sorted label order — the order
    mia-audit reads a ZipMap output in."""
    labels = node.attrs.get("classlabels_int64s") or node.attrs.get("classlabels_strings") or []
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    x = inputs[0]
    return [x if order == list(range(len(labels))) else x[..., order]]


# --- linear models: lowered to Gemm + the post-transform --------------------------------------------------


def _node(op_name: str, inputs: list[str], outputs: list[str], opset: int, **attrs) -> GraphNode:
    return GraphNode(op=op_name, inputs=tuple(inputs), outputs=tuple(outputs), attrs=attrs, opset=max(13, opset))


def _weights(node: GraphNode, rows: int) -> tuple[np.ndarray, np.ndarray]:
    coefficients = np.asarray(node.attrs.get("coefficients", []), dtype=np.float32)
    intercepts = np.asarray(node.attrs.get("intercepts", []), dtype=np.float32)
    if rows <= 0 or coefficients.size % rows:
        raise UnsupportedGraph(f"operator {node.op} has {coefficients.size} coefficients for {rows} outputs")
    if intercepts.size == 0:
        intercepts = np.zeros(rows, dtype=np.float32)
    return coefficients.reshape(rows, -1), intercepts


def _dense(node: GraphNode, ctx: LowerContext, x: str, w: np.ndarray, b: np.ndarray, out: str) -> GraphNode:
    """out = x · wᵀ + b with w, b new (trainable) constants."""
    w_name, b_name = ctx.fresh(f"{node.outputs[-1]}.weight"), ctx.fresh(f"{node.outputs[-1]}.bias")
    ctx.constants[w_name], ctx.constants[b_name] = w, b
    return _node("Gemm", [x, w_name, b_name], [out], node.opset, transB=1)


def _constant(ctx: LowerContext, hint: str, value) -> str:
    name = ctx.fresh(hint)
    ctx.constants[name] = np.asarray(value)
    return name


@lowered("LinearClassifier", domain=ML_DOMAIN)
def _linear_classifier(node: GraphNode, ctx: LowerContext) -> list[GraphNode]:
    """Scores X·Wᵀ + b, then the post-transform, as onnxruntime computes them: with one weight row and two
    class labels the scores are [1 − s, s] (NONE) or [1 − σ(s), σ(s)] (LOGISTIC)."""
    post = text(node.attrs.get("post_transform", "NONE"))
    if post not in ("NONE", "SOFTMAX", "LOGISTIC"):
        raise UnsupportedGraph(f"operator LinearClassifier with post_transform={post} is not supported")
    labels = node.attrs.get("classlabels_ints") or node.attrs.get("classlabels_strings") or []
    rows = len(node.attrs.get("intercepts", [])) or len(labels)
    w, b = _weights(node, rows)
    x, (label_out, scores_out) = node.inputs[0], (list(node.outputs) + [""])[:2]
    nodes: list[GraphNode] = []
    one_row = rows == 1 and len(labels) == 2
    tied = rows == 2 and np.array_equal(w[0], -w[1]) and b[0] == -b[1]
    z = ctx.fresh(f"{scores_out or label_out}.logit")
    if one_row or tied:  # one trainable vector, z = x·w + b
        nodes.append(_dense(node, ctx, x, w[1:] if tied else w, b[1:] if tied else b, z))
        raw = ctx.fresh(f"{z}.pair")
        if one_row and post != "LOGISTIC":  # [1 − z, z]
            other = ctx.fresh(f"{z}.complement")
            nodes.append(_node("Sub", [_constant(ctx, "one", np.float32(1.0)), z], [other], node.opset))
        elif post == "LOGISTIC":  # [σ(−z), σ(z)] = softmax([0, z]): cross-entropy on [0, z] is the logistic loss
            other = ctx.fresh(f"{z}.zero")
            nodes.append(_node("Mul", [z, _constant(ctx, "zero", np.float32(0.0))], [other], node.opset))
        else:  # tied, NONE or SOFTMAX: [−z, z]
            other = ctx.fresh(f"{z}.negated")
            nodes.append(_node("Neg", [z], [other], node.opset))
        nodes.append(_node("Concat", [other, z], [raw], node.opset, axis=1))
        final = {"LOGISTIC": "Softmax", "SOFTMAX": "Softmax" if tied else None}.get(post)
        label_source = z
    else:
        raw = z
        nodes.append(_dense(node, ctx, x, w, b, raw))
        final = {"SOFTMAX": "Softmax", "LOGISTIC": "Sigmoid"}.get(post)
        label_source = None
    if scores_out:
        nodes.append(_node(final or "Identity", [raw], [scores_out], node.opset, **({"axis": -1} if final == "Softmax" else {})))
    if label_out and "classlabels_ints" in node.attrs:
        index = ctx.fresh(f"{label_out}.index")
        if label_source is not None and one_row:  # label = labels[s > 0]
            positive = ctx.fresh(f"{label_out}.positive")
            nodes.append(_node("Greater", [label_source, _constant(ctx, "zero", np.float32(0.0))], [positive], node.opset))
            nodes.append(_node("Cast", [positive], [index], node.opset, to=7))
            picked = ctx.fresh(f"{label_out}.column")
            nodes.append(_node("Squeeze", [index, _constant(ctx, "axis", np.array([1]))], [picked], node.opset))
            index = picked
        else:
            nodes.append(_node("ArgMax", [raw], [index], node.opset, axis=1, keepdims=0))
        classes = _constant(ctx, "classes", np.asarray(node.attrs["classlabels_ints"], dtype=np.int64))
        nodes.append(_node("Gather", [classes, index], [label_out], node.opset, axis=0))
    return nodes


@lowered("LinearRegressor", domain=ML_DOMAIN)
def _linear_regressor(node: GraphNode, ctx: LowerContext) -> list[GraphNode]:
    """Y = X·Wᵀ + b (`targets` columns); only post_transform NONE."""
    post = text(node.attrs.get("post_transform", "NONE"))
    if post != "NONE":
        raise UnsupportedGraph(f"operator LinearRegressor with post_transform={post} is not supported")
    w, b = _weights(node, int(node.attrs.get("targets", 1)))
    return [_dense(node, ctx, node.inputs[0], w, b, node.outputs[0])]
