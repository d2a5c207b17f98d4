"""The graph's vocabulary: nodes, trainable-tensor specs, the run context, and the two refusals."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Head = Literal["ce", "softmax", "log_softmax", "sigmoid", "binary_logit", "probabilities"]

__all__ = [
    "ML_DOMAIN",
    "GraphNode",
    "Head",
    "NotStackable",
    "ParamSpec",
    "RunContext",
    "UnsupportedGraph",
    "WeightContext",
    "op_key",
    "uniform_bound",
]

#: The domain of the ONNX-ML operators (scikit-learn converters: Scaler, LinearClassifier, ZipMap, ...).
ML_DOMAIN = "ai.onnx.ml"


def op_key(op: str, domain: str = "") -> str:
    """The op table's key: the bare name in the default domain, `domain:name` elsewhere."""
    return op if domain in ("", "ai.onnx") else f"{domain}:{op}"


class UnsupportedGraph(Exception):
    """The graph cannot be turned into a trainable torch model; the message says why (naming the op)."""


class NotStackable(Exception):
    """This graph (or one of its nodes) has no stacked implementation; use vmap."""


@dataclass(frozen=True)
class GraphNode:
    op: str
    inputs: tuple[str, ...]  # "" marks an omitted optional input
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    domain: str = ""

    @property
    def key(self) -> str:
        return op_key(self.op, self.domain)


@dataclass(frozen=True)
class ParamSpec:
    """How to draw a fresh value for one trainable tensor."""

    shape: tuple[int, ...]
    init: Literal["uniform", "ones", "zeros", "constant"]
    bound: float = 0.0  # uniform: U(-bound, bound)
    value: float = 0.0  # constant


def uniform_bound(fan_in: int) -> float:
    """PyTorch's default Linear/Conv initialisation bound: kaiming_uniform(a=√5) = 1/√fan_in."""
    return 1.0 / math.sqrt(max(1, fan_in))


@dataclass
class RunContext:
    """What an op sees besides its node and inputs: training or inference, and where BatchNorm puts its
    updated running statistics (nothing is modified in place, which keeps evaluation vmap-friendly)."""

    training: bool
    updates: dict[str, torch.Tensor]


@dataclass
class WeightContext:
    """What an op's weight rule sees and fills while a graph is imported (see `registry.WeightRule`).

    `shapes` holds the graph's floating-point constants; a rule marks some of them trainable (`params`,
    re-drawn for every shadow) or as BatchNorm running statistics (`running`), and records the fan-in of
    the layer it computes (`fan_in`, by output name) so a bias added by a later node is drawn like it.
    `affine` marks normalised values ("normalised", then "scaled" after a constant Mul): exporters write
    a GroupNorm's learned scale and shift as a Mul and an Add after the normalisation, which are re-drawn
    (1 and 0) like a native normalisation's.
    """

    shapes: dict[str, tuple[int, ...]]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    running: dict[str, Literal["mean", "var"]] = field(default_factory=dict)
    fan_in: dict[str, int] = field(default_factory=dict)
    affine: dict[str, str] = field(default_factory=dict)

    def trainable(self, name: str, spec: ParamSpec) -> None:
        """Mark constant `name` trainable (a no-op for inputs that are not floating-point constants)."""
        if name in self.shapes:
            self.params.setdefault(name, spec)

    def is_constant(self, name: str) -> bool:
        """Whether `name` is a floating-point constant (a candidate weight)."""
        return bool(name) and name in self.shapes

    def carry_affine(self, node: GraphNode) -> None:
        """Ops that only move values (reshapes, casts) keep their input's normalisation mark."""
        if node.inputs and node.inputs[0] in self.affine:
            self.affine[node.outputs[0]] = self.affine[node.inputs[0]]
