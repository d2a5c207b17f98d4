"""Reading ONNX attributes and constant inputs (axes, pads, element types) the way the operators define them."""

from __future__ import annotations

import torch

from mia_audit.shadows.graph.nodes import GraphNode, UnsupportedGraph

__all__ = ["ONNX_DTYPES", "axes", "ints", "pads_for", "spatial_padding", "text"]

# TensorProto.DataType → torch dtype (https://onnx.ai/onnx/api/mapping.html)
ONNX_DTYPES = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
}


def ints(value: torch.Tensor | None) -> list[int]:
    return [] if value is None else [int(v) for v in value.reshape(-1).tolist()]


def text(value) -> str:
    """A string attribute (onnx gives bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def axes(node: GraphNode, inputs: list, index: int) -> list[int] | None:
    """Axes from the `axes` attribute (older opsets) or from input `index` (newer ones); None when absent."""
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    if len(inputs) > index and inputs[index] is not None:
        return ints(inputs[index])
    return None


def spatial_padding(pads: list[int], dims: int) -> tuple[list[int] | None, list[int]]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] → symmetric torch padding, or an explicit F.pad list."""
    if not pads:
        return [0] * dims, []
    begin, end = pads[:dims], pads[dims:]
    if begin == end:
        return begin, []
    explicit: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        explicit += [b, e]
    return None, explicit


def pads_for(node: GraphNode, *, spatial: tuple[int, ...], kernel: list[int]) -> list[int]:
    """The node's pads [b1, ..., bn, e1, ..., en], resolved from `auto_pad` when it is set: VALID pads
    nothing; SAME_UPPER / SAME_LOWER pad so that output = ceil(input / stride), the odd one at the end /
    the beginning (https://onnx.ai/onnx/operators/onnx__Conv.html)."""
    dims = len(kernel)
    mode = text(node.attrs.get("auto_pad", "NOTSET"))
    if mode in ("NOTSET", ""):
        return list(node.attrs.get("pads", [])) or [0] * (2 * dims)
    if mode == "VALID":
        return [0] * (2 * dims)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedGraph(f"operator {node.op} with auto_pad={mode} is not supported")
    strides = list(node.attrs.get("strides", [1] * dims))
    dilations = list(node.attrs.get("dilations", [1] * dims))
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin + end
