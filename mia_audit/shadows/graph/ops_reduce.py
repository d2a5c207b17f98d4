"""Reductions and arg-reductions (ONNX operator semantics, https://onnx.ai/onnx/operators/): one row per op."""

from __future__ import annotations

import torch

from mia_audit.shadows.graph.attrs import axes
from mia_audit.shadows.graph.registry import op
from mia_audit.shadows.graph.stacking import along_axes, along_axis


def _prod(x, dim, keepdim):
    for axis in sorted(dim, reverse=True):
        x = torch.prod(x, dim=axis, keepdim=True)
    return x if keepdim else x.squeeze(dim)


# name → torch function (x, dim: tuple, keepdim: bool)
REDUCTIONS = {
    "ReduceMean": torch.mean,
    "ReduceSum": torch.sum,
    "ReduceMax": torch.amax,
    "ReduceMin": torch.amin,
    "ReduceProd": _prod,
    "ReduceL1": lambda x, dim, keepdim: torch.sum(torch.abs(x), dim=dim, keepdim=keepdim),
    "ReduceL2": lambda x, dim, keepdim: torch.sqrt(torch.sum(x * x, dim=dim, keepdim=keepdim)),
    "ReduceSumSquare": lambda x, dim, keepdim: torch.sum(x * x, dim=dim, keepdim=keepdim),
    "ReduceLogSum": lambda x, dim, keepdim: torch.log(torch.sum(x, dim=dim, keepdim=keepdim)),
    "ReduceLogSumExp": torch.logsumexp,
}


def _reduce(fn):
    """Over `axes` (attribute, or input 2 from opset 13/18; every axis when absent — or none when the input
    is empty and noop_with_empty_axes is set), keeping them unless keepdims=0."""

    def run(ctx, node, inputs):
        x = inputs[0]
        wanted = axes(node, inputs, 1)
        if not wanted:
            if wanted is not None and node.attrs.get("noop_with_empty_axes", 0):
                return [x]
            wanted = list(range(x.dim()))
        keep = bool(node.attrs.get("keepdims", 1))
        return [fn(x, dim=tuple(sorted({a % x.dim() for a in wanted})), keepdim=keep)]

    return run


for _name, _fn in REDUCTIONS.items():
    op(_name, stacked=along_axes)(_reduce(_fn))


def _arg(fn):
    """Index of the first extreme along `axis` (the last with select_last_index=1), int64."""

    def run(ctx, node, inputs):
        x = inputs[0]
        axis = int(node.attrs.get("axis", 0)) % x.dim()
        keep = bool(node.attrs.get("keepdims", 1))
        if node.attrs.get("select_last_index", 0):
            index = x.shape[axis] - 1 - fn(x.flip(axis), dim=axis, keepdim=keep)
        else:
            index = fn(x, dim=axis, keepdim=keep)
        return [index.to(torch.int64)]

    return run


op("ArgMax", stacked=along_axis(0), gradient="none")(_arg(torch.argmax))
op("ArgMin", stacked=along_axis(0), gradient="none")(_arg(torch.argmin))
