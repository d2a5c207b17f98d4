"""Convolution, pooling and normalisation (ONNX operator semantics, https://onnx.ai/onnx/operators/).

Weight rules: a Conv's kernel and bias are re-drawn like a new torch Conv (U(±1/√fan_in)); the scale and
shift of Batch/Layer/Instance/Group normalisation start at 1 and 0; BatchNorm running statistics at 0 / 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mia_audit.shadows.graph.attrs import pads_for, spatial_padding
from mia_audit.shadows.graph.nodes import GraphNode, ParamSpec, UnsupportedGraph, WeightContext, uniform_bound
from mia_audit.shadows.graph.registry import op

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _conv_weights(node: GraphNode, ctx: WeightContext) -> None:
    ins = node.inputs
    if not ctx.is_constant(ins[1]):
        return
    shape = ctx.shapes[ins[1]]
    fan_in = int(shape[1] * math.prod(shape[2:]))
    ctx.trainable(ins[1], ParamSpec(shape=shape, init="uniform", bound=uniform_bound(fan_in)))
    if len(ins) > 2 and ctx.is_constant(ins[2]):
        ctx.trainable(ins[2], ParamSpec(shape=ctx.shapes[ins[2]], init="uniform", bound=uniform_bound(fan_in)))
    ctx.fan_in[node.outputs[0]] = fan_in


def _padded(node: GraphNode, x: torch.Tensor, kernel: list[int], *, value: float = 0.0) -> tuple[torch.Tensor, list[int]]:
    """x padded explicitly when the node's pads are asymmetric; else the symmetric torch padding."""
    dims = len(kernel)
    padding, explicit = spatial_padding(pads_for(node, spatial=tuple(x.shape[2:]), kernel=kernel), dims)
    if explicit:
        return F.pad(x, explicit, value=value), [0] * dims
    return x, padding


@op("Conv", weights=_conv_weights)
def _conv(ctx, node, inputs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    dims = w.dim() - 2
    if dims not in _CONV:
        raise UnsupportedGraph(f"operator Conv with {dims} spatial dimensions is not supported")
    dilations = list(node.attrs.get("dilations", [1] * dims))
    x, padding = _padded(node, x, list(w.shape[2:]))  # auto_pad: `pads_for` reads strides and dilations
    return [
        _CONV[dims](
            x, w, b,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=dilations,
            groups=int(node.attrs.get("group", 1)),
        )
    ]


@op("MaxPool")
def _max_pool(ctx, node, inputs):
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedGraph("operator MaxPool with an indices output is not supported")
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    x, padding = _padded(node, inputs[0], kernel, value=float("-inf"))
    return [
        _MAX_POOL[dims](
            x, kernel,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=list(node.attrs.get("dilations", [1] * dims)),
            ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        )
    ]


@op("AveragePool")
def _avg_pool(ctx, node, inputs):
    """count_include_pad=0 with asymmetric pads: window sums over the zero-padded input divided by the
    number of real (unpadded) elements in each window."""
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    if any(d != 1 for d in node.attrs.get("dilations", [1] * dims)):
        raise UnsupportedGraph("operator AveragePool with dilations is not supported")
    x = inputs[0]
    include = bool(node.attrs.get("count_include_pad", 0))
    kwargs = dict(stride=list(node.attrs.get("strides", [1] * dims)), ceil_mode=bool(node.attrs.get("ceil_mode", 0)))
    padding, explicit = spatial_padding(pads_for(node, spatial=tuple(x.shape[2:]), kernel=kernel), dims)
    if not explicit:
        return [_AVG_POOL[dims](x, kernel, padding=padding, count_include_pad=include, **kwargs)]
    padded = F.pad(x, explicit)
    total = _AVG_POOL[dims](padded, kernel, padding=0, **kwargs)
    if include:
        return [total]
    real = _AVG_POOL[dims](F.pad(torch.ones_like(x[:1, :1]), explicit), kernel, padding=0, **kwargs)
    return [total / real]


@op("LpPool")
def _lp_pool(ctx, node, inputs):
    """(Σ |x|^p)^(1/p) over each window (zero padding adds nothing)."""
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    p = float(node.attrs.get("p", 2))
    x, padding = _padded(node, inputs[0].abs() ** p, kernel)
    kwargs = dict(stride=list(node.attrs.get("strides", [1] * dims)), ceil_mode=bool(node.attrs.get("ceil_mode", 0)))
    mean = _AVG_POOL[dims](x, kernel, padding=padding, count_include_pad=True, **kwargs)
    return [(mean * math.prod(kernel)) ** (1.0 / p)]


@op("GlobalAveragePool")
def _global_avg_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("GlobalMaxPool")
def _global_max_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("GlobalLpPool")
def _global_lp_pool(ctx, node, inputs):
    x, p = inputs[0], float(node.attrs.get("p", 2))
    return [(x.abs() ** p).sum(dim=tuple(range(2, x.dim())), keepdim=True) ** (1.0 / p)]


# --- normalisation ------------------------------------------------------------------------------------


def _scale_shift_weights(first: int):
    """Inputs `first` (scale, from 1) and `first + 1` (shift, from 0) are learned; the output is marked
    normalised (a constant Mul / Add after it is a learned scale / shift too, see `WeightContext`)."""

    def rule(node: GraphNode, ctx: WeightContext) -> None:
        ins = node.inputs
        ctx.affine[node.outputs[0]] = "normalised"
        if len(ins) > first and ctx.is_constant(ins[first]):
            ctx.trainable(ins[first], ParamSpec(shape=ctx.shapes[ins[first]], init="ones"))
        if len(ins) > first + 1 and ctx.is_constant(ins[first + 1]):
            ctx.trainable(ins[first + 1], ParamSpec(shape=ctx.shapes[ins[first + 1]], init="zeros"))

    return rule


def _batch_norm_weights(node: GraphNode, ctx: WeightContext) -> None:
    _scale_shift_weights(1)(node, ctx)
    for name, kind in ((node.inputs[3], "mean"), (node.inputs[4], "var")):
        if not ctx.is_constant(name):
            raise UnsupportedGraph("a BatchNormalization whose running statistics are not constants")
        ctx.running[name] = kind  # type: ignore[assignment]


@op("BatchNormalization", weights=_batch_norm_weights)
def _batch_norm(ctx, node, inputs):
    """Inference: running statistics. Training: batch statistics, and the running ones are updated
    as ONNX defines it: running = momentum · running + (1 − momentum) · batch (momentum 0.9)."""
    x, scale, bias, mean, var = inputs[:5]
    eps = float(node.attrs.get("epsilon", 1e-5))
    shape = [1, -1] + [1] * (x.dim() - 2)
    if ctx.training:
        axes = [0] + list(range(2, x.dim()))
        batch_mean = x.mean(dim=axes)
        batch_var = x.var(dim=axes, unbiased=False)
        n = x.numel() // x.shape[1]
        momentum = float(node.attrs.get("momentum", 0.9))
        ctx.updates[node.inputs[3]] = momentum * mean + (1 - momentum) * batch_mean.detach()
        unbiased = batch_var.detach() * (n / max(1, n - 1))
        ctx.updates[node.inputs[4]] = momentum * var + (1 - momentum) * unbiased
        use_mean, use_var = batch_mean, batch_var
    else:
        use_mean, use_var = mean, var
    y = (x - use_mean.reshape(shape)) / torch.sqrt(use_var.reshape(shape) + eps)
    return [y * scale.reshape(shape) + bias.reshape(shape)]


@op("LayerNormalization", weights=_scale_shift_weights(1))
def _layer_norm(ctx, node, inputs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(node.attrs.get("axis", -1)) % x.dim()
    eps = float(node.attrs.get("epsilon", 1e-5))
    return [F.layer_norm(x, list(x.shape[axis:]), scale, bias, eps)]


@op("InstanceNormalization", weights=_scale_shift_weights(1))
def _instance_norm(ctx, node, inputs):
    x, scale, bias = inputs
    return [F.instance_norm(x, weight=scale, bias=bias, eps=float(node.attrs.get("epsilon", 1e-5)))]


@op("GroupNormalization", weights=_scale_shift_weights(1))
def _group_norm(ctx, node, inputs):
    """Scale and bias per channel (opset 21) or per group (opset 18, repeated over the group's channels)."""
    x, scale, bias = inputs
    groups = int(node.attrs["num_groups"])
    channels = x.shape[1]
    if scale.numel() != channels:
        scale = scale.repeat_interleave(channels // groups)
        bias = bias.repeat_interleave(channels // groups)
    return [F.group_norm(x, groups, scale, bias, eps=float(node.attrs.get("epsilon", 1e-5)))]


@op("LpNormalization")
def _lp_norm(ctx, node, inputs):
    x = inputs[0]
    p = int(node.attrs.get("p", 2))
    return [x / torch.linalg.vector_norm(x, ord=p, dim=int(node.attrs.get("axis", -1)), keepdim=True)]


def _normalised(node: GraphNode, ctx: WeightContext) -> None:
    ctx.affine[node.outputs[0]] = "normalised"


@op("MeanVarianceNormalization", weights=_normalised)
def _mvn(ctx, node, inputs):
    """(x − E[x]) / (√(E[x²] − E[x]²) + 1e-9) over `axes` (default [0, 2, 3])."""
    x = inputs[0]
    dims = tuple(a % x.dim() for a in node.attrs.get("axes", [0, 2, 3]))
    mean = x.mean(dim=dims, keepdim=True)
    var = (x * x).mean(dim=dims, keepdim=True) - mean * mean
    return [(x - mean) / (torch.sqrt(var) + 1e-9)]


@op("LRN")
def _lrn(ctx, node, inputs):
    """x / (bias + α/size · Σ x²)^β, the sum over channels [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉]."""
    x = inputs[0]
    size = int(node.attrs["size"])
    alpha, beta, bias = (float(node.attrs.get(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    square = F.pad((x * x).movedim(1, -1), (before, after)).movedim(-1, 1)
    window = square.unfold(1, size, 1).sum(-1)
    return [x / (bias + alpha / size * window) ** beta]
