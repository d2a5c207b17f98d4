"""MLP and CNN architectures from a recipe's `architecture:` block, as `TrainableGraph`s.

For a model whose own graph cannot be retrained, a recipe may name a fresh architecture instead. The
graph takes the audit records as they are in the manifests (optionally standardised with the pool's
per-feature mean and standard deviation — feature statistics only, no labels or membership) and ends in
logits, trained with cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mia_audit.shadows.graph import GraphNode, ParamSpec, TrainableGraph, uniform_bound
from mia_audit.shadows.recipe import ArchitectureRecipe

__all__ = ["graph_from_architecture"]

_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def graph_from_architecture(*, spec: ArchitectureRecipe, x: np.ndarray, n_classes: int) -> TrainableGraph:
    """Build the recipe's MLP (any record shape, flattened) or CNN (records of shape (C, H, W))."""
    record_shape = tuple(int(d) for d in x.shape[1:])
    nodes: list[GraphNode] = []
    params: dict[str, ParamSpec] = {}
    constants: dict[str, torch.Tensor] = {}
    current = "input"
    if spec.standardize:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        constants["mean"] = torch.from_numpy(mean.astype(np.float32))
        constants["std"] = torch.from_numpy(std.astype(np.float32))
        nodes += [GraphNode("Sub", (current, "mean"), ("centred",)), GraphNode("Div", ("centred", "std"), ("scaled",))]
        current = "scaled"
    activation = _ACTIVATIONS[spec.activation]
    if spec.type == "cnn":
        if len(record_shape) != 3:
            raise ValueError(f"a cnn architecture needs records of shape (channels, height, width), not {record_shape}")
        channels, height, width = record_shape
        k = spec.kernel_size
        for i, out_channels in enumerate(spec.channels):
            fan_in = channels * k * k
            params[f"conv{i}.w"] = ParamSpec((out_channels, channels, k, k), "uniform", uniform_bound(fan_in))
            params[f"conv{i}.b"] = ParamSpec((out_channels,), "uniform", uniform_bound(fan_in))
            pad = k // 2
            nodes += [
                GraphNode("Conv", (current, f"conv{i}.w", f"conv{i}.b"), (f"c{i}",), {"pads": [pad, pad, pad, pad]}),
                GraphNode(activation, (f"c{i}",), (f"a{i}",)),
            ]
            current = f"a{i}"
            if height >= 2 and width >= 2:
                nodes.append(GraphNode("MaxPool", (current, ), (f"p{i}",), {"kernel_shape": [2, 2], "strides": [2, 2]}))
                current = f"p{i}"
                height, width = height // 2, width // 2
            channels = out_channels
        nodes.append(GraphNode("Flatten", (current,), ("flat",), {"axis": 1}))
        current = "flat"
        width_in = channels * height * width
    else:
        nodes.append(GraphNode("Flatten", (current,), ("flat",), {"axis": 1}))
        current = "flat"
        width_in = int(math.prod(record_shape))
    for i, width_out in enumerate([*spec.hidden, n_classes]):
        params[f"fc{i}.w"] = ParamSpec((width_out, width_in), "uniform", uniform_bound(width_in))
        params[f"fc{i}.b"] = ParamSpec((width_out,), "uniform", uniform_bound(width_in))
        nodes.append(GraphNode("Gemm", (current, f"fc{i}.w", f"fc{i}.b"), (f"h{i}",), {"transB": 1}))
        current = f"h{i}"
        if i < len(spec.hidden):
            nodes.append(GraphNode(activation, (current,), (f"h{i}a",)))
            current = f"h{i}a"
        width_in = width_out
    return TrainableGraph(
        input_name="input",
        output_name=current,
        input_dtype=torch.float32,
        nodes=nodes,
        params=params,
        running={},
        constants=constants,
        head="ce",
        head_input=current,
        description=f"recipe {spec.type}: hidden {spec.hidden}" + (f", channels {spec.channels}" if spec.type == "cnn" else ""),
    )
