"""Convolution, pooling, normalisation and dropout (ONNX operator semantics, https://onnx.ai/onnx/operators/)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_audit.shadows.graph.attrs import check_auto_pad, spatial_padding
from mia_audit.shadows.graph.nodes import UnsupportedGraph
from mia_audit.shadows.graph.registry import op
from mia_audit.shadows.graph.stacking import follow_first

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op("Conv")
def _conv(ctx, node, inputs):
    check_auto_pad(node)
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    dims = w.dim() - 2
    if dims not in _CONV:
        raise UnsupportedGraph(f"operator Conv with {dims} spatial dimensions is not supported")
    padding, explicit = spatial_padding(list(node.attrs.get("pads", [])), dims)
    if explicit:
        x = F.pad(x, explicit)
        padding = [0] * dims
    return [
        _CONV[dims](
            x,
            w,
            b,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=list(node.attrs.get("dilations", [1] * dims)),
            groups=int(node.attrs.get("group", 1)),
        )
    ]


@op("MaxPool")
def _max_pool(ctx, node, inputs):
    check_auto_pad(node)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedGraph("operator MaxPool with an indices output is not supported")
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    padding, explicit = spatial_padding(list(node.attrs.get("pads", [])), dims)
    x = inputs[0]
    if explicit:
        x = F.pad(x, explicit, value=float("-inf"))
        padding = [0] * dims
    return [
        _MAX_POOL[dims](
            x,
            kernel,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=list(node.attrs.get("dilations", [1] * dims)),
            ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        )
    ]


@op("AveragePool")
def _avg_pool(ctx, node, inputs):
    check_auto_pad(node)
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    padding, explicit = spatial_padding(list(node.attrs.get("pads", [])), dims)
    if explicit:
        raise UnsupportedGraph("operator AveragePool with asymmetric padding is not supported")
    kwargs = dict(
        stride=list(node.attrs.get("strides", [1] * dims)),
        padding=padding,
        ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        count_include_pad=bool(node.attrs.get("count_include_pad", 0)),
    )
    return [_AVG_POOL[dims](inputs[0], kernel, **kwargs)]


@op("GlobalAveragePool")
def _global_avg_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("GlobalMaxPool")
def _global_max_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("BatchNormalization")
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


@op("LayerNormalization")
def _layer_norm(ctx, node, inputs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(node.attrs.get("axis", -1)) % x.dim()
    eps = float(node.attrs.get("epsilon", 1e-5))
    return [F.layer_norm(x, list(x.shape[axis:]), scale, bias, eps)]


@op("Dropout", stacked=follow_first)
def _dropout(ctx, node, inputs):
    """Dropout is the identity at inference; exported eval-mode graphs drop it altogether."""
    outputs = [inputs[0]]
    if len(node.outputs) > 1 and node.outputs[1]:
        outputs.append(torch.ones_like(inputs[0], dtype=torch.bool))
    return outputs
