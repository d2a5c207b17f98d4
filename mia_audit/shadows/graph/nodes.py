"""The graph's vocabulary: nodes, trainable-tensor specs, the run context, and the two refusals."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Head = Literal["ce", "softmax", "log_softmax", "sigmoid", "binary_logit", "probabilities"]

__all__ = ["GraphNode", "Head", "NotStackable", "ParamSpec", "RunContext", "UnsupportedGraph", "uniform_bound"]


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
