"""Shapes, indexing, casts, constants and reductions (ONNX operator semantics, https://onnx.ai/onnx/operators/)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mia_audit.shadows.graph.attrs import ONNX_DTYPES, axes, ints
from mia_audit.shadows.graph.nodes import UnsupportedGraph
from mia_audit.shadows.graph.registry import op

# --- reshaping (with stacked rules: the model dimension stays in front) ---------------------------------


def _stacked_flatten(ctx, node, inputs, flags, k):
    if not flags[0]:
        return None
    x = inputs[0]
    axis = int(node.attrs.get("axis", 1)) % max(1, x.dim() - 1)
    return [x.reshape(k, math.prod(x.shape[1 : 1 + axis]), -1)], True


@op("Flatten", stacked=_stacked_flatten)
def _flatten(ctx, node, inputs):
    x = inputs[0]
    axis = int(node.attrs.get("axis", 1)) % max(1, x.dim()) if x.dim() else 0
    return [x.reshape(math.prod(x.shape[:axis]), -1)]


def _stacked_reshape(ctx, node, inputs, flags, k):
    if not flags[0] or flags[1]:
        return None
    x, shape = inputs[0], ints(inputs[1])
    allow_zero = bool(node.attrs.get("allowzero", 0))
    target = [x.shape[1 + i] if (d == 0 and not allow_zero) else d for i, d in enumerate(shape)]
    return [x.reshape(k, *target)], True


@op("Reshape", stacked=_stacked_reshape)
def _reshape(ctx, node, inputs):
    """A 0 in the target shape copies the input's dimension unless `allowzero` is set."""
    x, shape = inputs[0], ints(inputs[1])
    allow_zero = bool(node.attrs.get("allowzero", 0))
    target = [x.shape[i] if (d == 0 and not allow_zero) else d for i, d in enumerate(shape)]
    return [x.reshape(target)]


def _stacked_transpose(ctx, node, inputs, flags, k):
    if not flags[0]:
        return None
    perm = node.attrs.get("perm") or list(reversed(range(inputs[0].dim() - 1)))
    return [inputs[0].permute(0, *[p + 1 for p in perm])], True


@op("Transpose", stacked=_stacked_transpose)
def _transpose(ctx, node, inputs):
    x = inputs[0]
    perm = node.attrs.get("perm") or list(reversed(range(x.dim())))
    return [x.permute(*perm)]


@op("Unsqueeze")
def _unsqueeze(ctx, node, inputs):
    x = inputs[0]
    wanted = axes(node, inputs, 1) or []
    for axis in sorted(a % (x.dim() + len(wanted)) for a in wanted):
        x = x.unsqueeze(axis)
    return [x]


@op("Squeeze")
def _squeeze(ctx, node, inputs):
    x = inputs[0]
    wanted = axes(node, inputs, 1)
    if wanted is None:
        return [x.squeeze()]
    for axis in sorted((a % x.dim() for a in wanted), reverse=True):
        x = x.squeeze(axis)
    return [x]


@op("Concat")
def _concat(ctx, node, inputs):
    return [torch.cat([t for t in inputs if t is not None], dim=int(node.attrs.get("axis", 0)))]


# --- shapes, indexing, constants ----------------------------------------------------------------------


@op("Shape")
def _shape(ctx, node, inputs):
    dims = list(inputs[0].shape)
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return [torch.tensor(dims[start:end] if end is not None else dims[start:], dtype=torch.int64)]


@op("Gather")
def _gather(ctx, node, inputs):
    data, indices = inputs
    axis = int(node.attrs.get("axis", 0)) % data.dim()
    flat = indices.reshape(-1).to(torch.int64) % data.shape[axis]
    picked = torch.index_select(data, axis, flat)
    return [picked.reshape(*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :])]


@op("Slice")
def _slice(ctx, node, inputs):
    x = inputs[0]
    starts, ends = ints(inputs[1]), ints(inputs[2])
    axes_ = ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index: list[Any] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes_, steps):
        if step <= 0:
            raise UnsupportedGraph("operator Slice with a negative step is not supported")
        size = x.shape[axis]
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        index[axis % x.dim()] = slice(start, end, step)
    return [x[tuple(index)]]


@op("Cast")
def _cast(ctx, node, inputs):
    to = ONNX_DTYPES.get(int(node.attrs["to"]))
    if to is None:
        raise UnsupportedGraph(f"operator Cast to ONNX type {node.attrs['to']} is not supported")
    return [inputs[0].to(to)]


@op("Constant")
def _constant(ctx, node, inputs):
    return [node.attrs["value"]]


@op("ConstantOfShape")
def _constant_of_shape(ctx, node, inputs):
    value = node.attrs.get("value")
    fill = value.reshape(-1)[0] if isinstance(value, torch.Tensor) else torch.tensor(0.0)
    return [torch.full(ints(inputs[0]), fill.item(), dtype=fill.dtype)]


# --- reductions: one row per op -----------------------------------------------------------------------

REDUCTIONS = {"ReduceMean": torch.mean, "ReduceSum": torch.sum, "ReduceMax": torch.amax}


def _reduce(fn):
    """Over `axes` (attribute or input 2; all axes when absent), keeping them unless keepdims=0."""

    def run(ctx, node, inputs):
        x = inputs[0]
        wanted = axes(node, inputs, 1)
        keep = bool(node.attrs.get("keepdims", 1))
        if wanted is None:
            wanted = list(range(x.dim()))
        return [fn(x, dim=tuple(a % x.dim() for a in wanted), keepdim=keep)]

    return run


for _name, _fn in REDUCTIONS.items():
    op(_name)(_reduce(_fn))
