"""Reading ONNX attributes and constant inputs (axes, pads, element types) the way the operators define them."""

from __future__ import annotations

import torch

from mia_audit.shadows.graph.nodes import GraphNode, UnsupportedGraph

__all__ = ["ONNX_DTYPES", "axes", "check_auto_pad", "ints", "spatial_padding", "text"]

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


def check_auto_pad(node: GraphNode) -> None:
    mode = text(node.attrs.get("auto_pad", "NOTSET"))
    if mode not in ("NOTSET", "VALID", ""):
        raise UnsupportedGraph(f"operator {node.op} with auto_pad={mode} is not supported")
