"""Shapes, indexing, casts and constants (ONNX operator semantics, https://onnx.ai/onnx/operators/)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mia_audit.shadows.graph.attrs import ONNX_DTYPES, axes, ints
from mia_audit.shadows.graph.nodes import GraphNode, UnsupportedGraph, WeightContext
from mia_audit.shadows.graph.registry import op
from mia_audit.shadows.graph.stacking import along_axis, follow_first, logical_rank

# --- reshaping (with stacked rules: the model dimension stays in front) ---------------------------------


def _carry_affine(node: GraphNode, ctx: WeightContext) -> None:
    ctx.carry_affine(node)


def _stacked_flatten(ctx, node, inputs, flags, k):
    if not flags[0]:
        return None
    x = inputs[0]
    axis = int(node.attrs.get("axis", 1)) % max(1, x.dim() - 1)
    return [x.reshape(k, math.prod(x.shape[1 : 1 + axis]), -1)], True


@op("Flatten", weights=_carry_affine, stacked=_stacked_flatten)
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


@op("Reshape", weights=_carry_affine, stacked=_stacked_reshape)
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


@op("Transpose", weights=_carry_affine, stacked=_stacked_transpose)
def _transpose(ctx, node, inputs):
    x = inputs[0]
    perm = node.attrs.get("perm") or list(reversed(range(x.dim())))
    return [x.permute(*perm)]


def _unsqueeze_axes(node, inputs, rank: int) -> list[int]:
    wanted = axes(node, inputs, 1) or []
    return sorted(a % (rank + len(wanted)) for a in wanted)


def _stacked_unsqueeze(ctx, node, inputs, flags, k):
    if not flags[0] or any(flags[1:]):
        return None
    x = inputs[0]
    for axis in _unsqueeze_axes(node, inputs, logical_rank(x, True)):
        x = x.unsqueeze(axis + 1)
    return [x], True


@op("Unsqueeze", weights=_carry_affine, stacked=_stacked_unsqueeze)
def _unsqueeze(ctx, node, inputs):
    x = inputs[0]
    for axis in _unsqueeze_axes(node, inputs, x.dim()):
        x = x.unsqueeze(axis)
    return [x]


def _squeeze_axes(node, inputs, shape: tuple[int, ...]) -> list[int]:
    """Listed axes, or every axis of size 1; in decreasing order."""
    wanted = axes(node, inputs, 1)
    if wanted is None:
        wanted = [i for i, d in enumerate(shape) if d == 1]
    return sorted((a % len(shape) for a in wanted), reverse=True)


def _stacked_squeeze(ctx, node, inputs, flags, k):
    if not flags[0] or any(flags[1:]):
        return None
    x = inputs[0]
    for axis in _squeeze_axes(node, inputs, tuple(x.shape[1:])):
        x = x.squeeze(axis + 1)
    return [x], True


@op("Squeeze", weights=_carry_affine, stacked=_stacked_squeeze)
def _squeeze(ctx, node, inputs):
    x = inputs[0]
    for axis in _squeeze_axes(node, inputs, tuple(x.shape)):
        x = x.squeeze(axis)
    return [x]


def _stacked_concat(ctx, node, inputs, flags, k):
    """Unstacked inputs are repeated for every model; the axis moves past the model dimension. (Shape
    arithmetic, where no input is stacked, is evaluated plainly.)"""
    if not any(flags):
        return None
    present = [(v, f) for v, f in zip(inputs, flags) if v is not None]
    rank = logical_rank(*present[0])
    axis = int(node.attrs.get("axis", 0)) % max(1, rank) + 1
    parts = [v if f else v.unsqueeze(0).expand(k, *v.shape) for v, f in present]
    return [torch.cat(parts, dim=axis)], True


@op("Concat", stacked=_stacked_concat)
def _concat(ctx, node, inputs):
    return [torch.cat([t for t in inputs if t is not None], dim=int(node.attrs.get("axis", 0)))]


def _split_sizes(node, inputs, size: int) -> list[int]:
    """From input 2 (opset ≥ 13) or the `split` attribute; else equal parts (the last smaller, opset 18)."""
    if len(inputs) > 1 and inputs[1] is not None:
        return ints(inputs[1])
    if "split" in node.attrs:
        return list(node.attrs["split"])
    parts = int(node.attrs.get("num_outputs", len(node.outputs)))
    step = -(-size // parts)
    return [min(step, size - i * step) for i in range(parts)]


@op("Split", stacked=along_axis(0))
def _split(ctx, node, inputs):
    x = inputs[0]
    axis = int(node.attrs.get("axis", 0)) % x.dim()
    return list(torch.split(x, _split_sizes(node, inputs, x.shape[axis]), dim=axis))


def _stacked_expand(ctx, node, inputs, flags, k):
    if not flags[0] or flags[1]:
        return None
    x = inputs[0]
    target = torch.broadcast_shapes(tuple(x.shape[1:]), tuple(ints(inputs[1])))
    x = x.reshape(k, *([1] * (len(target) - (x.dim() - 1))), *x.shape[1:])
    return [x.expand(k, *target)], True


@op("Expand", stacked=_stacked_expand)
def _expand(ctx, node, inputs):
    """Bidirectional broadcasting of the input to the given shape."""
    x = inputs[0]
    return [x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(ints(inputs[1]))))]


def _stacked_tile(ctx, node, inputs, flags, k):
    if not flags[0] or flags[1]:
        return None
    return [inputs[0].repeat(1, *ints(inputs[1]))], True


@op("Tile", stacked=_stacked_tile)
def _tile(ctx, node, inputs):
    return [inputs[0].repeat(*ints(inputs[1]))]


# --- shapes, indexing, constants ----------------------------------------------------------------------


def _dims(node, shape: list[int]) -> list[int]:
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return shape[start:end] if end is not None else shape[start:]


def _stacked_shape(ctx, node, inputs, flags, k):
    """The shape of one model's tensor (every model's is the same); not stacked."""
    shape = list(inputs[0].shape[1:] if flags[0] else inputs[0].shape)
    return [torch.tensor(_dims(node, shape), dtype=torch.int64)], False


@op("Shape", stacked=_stacked_shape, gradient="none")
def _shape(ctx, node, inputs):
    return [torch.tensor(_dims(node, list(inputs[0].shape)), dtype=torch.int64)]


@op("Size", gradient="none")
def _size(ctx, node, inputs):
    return [torch.tensor(inputs[0].numel(), dtype=torch.int64)]


@op("Gather", stacked=along_axis(0))
def _gather(ctx, node, inputs):
    data, indices = inputs
    axis = int(node.attrs.get("axis", 0)) % data.dim()
    flat = indices.reshape(-1).to(torch.int64) % data.shape[axis]
    picked = torch.index_select(data, axis, flat)
    return [picked.reshape(*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :])]


@op("GatherElements")
def _gather_elements(ctx, node, inputs):
    data, indices = inputs
    axis = int(node.attrs.get("axis", 0)) % data.dim()
    return [torch.gather(data, axis, indices.to(torch.int64) % data.shape[axis])]


def _slice_index(start: int, end: int, step: int, size: int) -> slice | torch.Tensor:
    """ONNX Slice bounds on one axis: negative starts/ends count from the end, then clamp (to [0, size] for
    positive steps, [0, size−1] / [−1, size−1] for negative ones)."""
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    if step > 0:
        return slice(max(0, min(size, start)), max(0, min(size, end)), step)
    start, end = max(0, min(size - 1, start)), max(-1, min(size - 1, end))
    return torch.arange(start, end, step, dtype=torch.int64)


def _slice_axes(inputs, x_rank: int) -> tuple[list[int], list[int], list[int], list[int]]:
    starts, ends = ints(inputs[1]), ints(inputs[2])
    axes_ = ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    if any(step == 0 for step in steps):
        raise UnsupportedGraph("operator Slice with a zero step")
    return starts, ends, [a % x_rank for a in axes_], steps


def _sliced(x: torch.Tensor, bounds, offset: int) -> torch.Tensor:
    index: list[Any] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(*bounds):
        picked = _slice_index(start, end, step, x.shape[axis + offset])
        if isinstance(picked, slice):
            index[axis + offset] = picked
        else:
            x = torch.index_select(x, axis + offset, picked)
    return x[tuple(index)]


def _stacked_slice(ctx, node, inputs, flags, k):
    if not flags[0] or any(flags[1:]):
        return None
    return [_sliced(inputs[0], _slice_axes(inputs, inputs[0].dim() - 1), 1)], True


@op("Slice", stacked=_stacked_slice)
def _slice(ctx, node, inputs):
    if node.opset < 10:  # starts / ends / axes were attributes
        attrs = node.attrs
        legacy = [torch.tensor(attrs["starts"]), torch.tensor(attrs["ends"]), torch.tensor(attrs["axes"]) if "axes" in attrs else None]
        inputs = [inputs[0], *legacy]
    return [_sliced(inputs[0], _slice_axes(inputs, inputs[0].dim()), 0)]


def _pad_index(size: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Source positions of a padded (or, for negative pads, cropped) axis in edge / reflect / wrap mode."""
    positions = torch.arange(-before, size + after)
    if mode == "edge":
        return positions.clamp(0, size - 1)
    if mode == "wrap":
        return positions % size
    period = max(1, 2 * (size - 1))  # reflect: mirror at the first and last element, not repeating them
    folded = positions.abs() % period
    return torch.where(folded >= size, period - folded, folded)


@op("Pad")
def _pad(ctx, node, inputs):
    """Pads [begin_1, ..., begin_n, end_1, ..., end_n] on `axes` (input 4, opset 18) or every axis; modes
    constant (input 3 or the `value` attribute), edge, reflect and wrap; negative pads crop."""
    x = inputs[0]
    if node.opset < 11:
        pads, value = list(node.attrs["pads"]), float(node.attrs.get("value", 0.0))
    else:
        pads = ints(inputs[1])
        value = float(inputs[2].reshape(-1)[0]) if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else 0.0
    axes_ = [a % x.dim() for a in ints(inputs[3])] if len(inputs) > 3 and inputs[3] is not None else list(range(x.dim()))
    mode = str(node.attrs.get("mode", "constant"))
    n = len(axes_)
    if mode == "constant":
        flat = [0] * (2 * x.dim())
        for i, axis in enumerate(axes_):
            flat[2 * (x.dim() - 1 - axis)], flat[2 * (x.dim() - 1 - axis) + 1] = pads[i], pads[i + n]
        return [torch.nn.functional.pad(x, flat, value=value)]
    if mode not in ("edge", "reflect", "wrap"):
        raise UnsupportedGraph(f"operator Pad with mode={mode} is not supported")
    for i, axis in enumerate(axes_):
        x = torch.index_select(x, axis, _pad_index(x.shape[axis], pads[i], pads[i + n], mode))
    return [x]


@op("Cast", weights=_carry_affine, stacked=follow_first)
def _cast(ctx, node, inputs):
    to = ONNX_DTYPES.get(int(node.attrs["to"]))
    if to is None:
        raise UnsupportedGraph(f"operator Cast to ONNX type {node.attrs['to']} is not supported")
    return [inputs[0].to(to)]


@op("CastLike", stacked=follow_first)
def _cast_like(ctx, node, inputs):
    return [inputs[0].to(inputs[1].dtype)]


@op("Constant")
def _constant(ctx, node, inputs):
    return [node.attrs["value"]]


@op("ConstantOfShape", gradient="none")
def _constant_of_shape(ctx, node, inputs):
    value = node.attrs.get("value")
    fill = value.reshape(-1)[0] if isinstance(value, torch.Tensor) else torch.tensor(0.0)
    return [torch.full(ints(inputs[0]), fill.item(), dtype=fill.dtype)]


@op("Range", gradient="none")
def _range(ctx, node, inputs):
    start, limit, delta = inputs
    return [torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)]


@op("OneHot", gradient="none")
def _one_hot(ctx, node, inputs):
    """values = [off, on] at `axis` (default −1, a new axis of size depth); negative indices count from the
    end, out-of-range ones give all `off`."""
    indices, depth, values = inputs
    depth = int(depth.reshape(-1)[0])
    index = indices.to(torch.int64)
    index = torch.where(index < 0, index + depth, index)
    valid = (index >= 0) & (index < depth)
    hot = torch.nn.functional.one_hot(torch.where(valid, index, 0), depth) * valid.unsqueeze(-1)
    axis = int(node.attrs.get("axis", -1)) % (indices.dim() + 1)
    hot = hot.movedim(-1, axis).to(values.dtype)
    return [values[0] + (values[1] - values[0]) * hot]


@op("Dropout", stacked=follow_first)
def _dropout(ctx, node, inputs):
    """Dropout is the identity at inference; exported eval-mode graphs drop it altogether."""
    outputs = [inputs[0]]
    if len(node.outputs) > 1 and node.outputs[1]:
        outputs.append(torch.ones_like(inputs[0], dtype=torch.bool))
    return outputs


def _cumsum_rule(ctx, node, inputs, flags, k):
    if not flags[0] or flags[1]:
        return None
    axis = int(inputs[1].reshape(-1)[0]) % logical_rank(inputs[0], True) + 1
    return _cumsum(ctx, node, [inputs[0], torch.tensor(axis)]), True


@op("CumSum", stacked=_cumsum_rule)
def _cumsum(ctx, node, inputs):
    x, axis = inputs[0], int(inputs[1].reshape(-1)[0]) % inputs[0].dim()
    if node.attrs.get("reverse", 0):
        x = x.flip(axis)
    out = torch.cumsum(x, dim=axis)
    if node.attrs.get("exclusive", 0):
        out = out - x
    return [out.flip(axis) if node.attrs.get("reverse", 0) else out]
