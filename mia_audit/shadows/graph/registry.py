"""The op table: one entry per ONNX operator, with everything the converter needs to know about it.

An entry carries
- `run(ctx, node, inputs) -> outputs`: the operator's semantics (https://onnx.ai/onnx/operators/, at the
  node's opset) on plain torch tensors;
- `stacked` (optional): evaluates K models at once on tensors with a leading model dimension (see
  `stacked.py`); an op without one is evaluated plainly when none of its inputs is stacked (shapes,
  constants), and otherwise makes the graph fall back to vmap;
- `weights` (optional): which of its constant inputs are layer weights, re-drawn for every shadow (Gemm,
  Conv, norm scales, ...); every other constant is kept as in the model (fixed preprocessing);
- `lower` (optional): rewrites the node into other table ops at import time (an ONNX-ML LinearClassifier
  keeps its weights in attributes; lowered to a Gemm they become trainable like any dense layer);
- `gradient`: what training sees — "exact" (the operator's derivative), "straight_through" (rounding ops:
  the identity's gradient, Bengio et al. 2013, "Estimating or propagating gradients through stochastic
  neurons", so layers before a quantisation still train) or "none" (comparisons, indices, masks, signs:
  zero or no gradient, the operator's derivative almost everywhere);
- `reference`: the operator's specification page.

Adding an op is one decorated function (or one row of a table) in the `ops_*` module of its family:
nothing else lists op names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mia_audit.shadows.graph.nodes import ML_DOMAIN, GraphNode, RunContext, WeightContext, op_key

__all__ = [
    "Gradient",
    "LowerContext",
    "LowerRule",
    "OpEntry",
    "OpFn",
    "StackRule",
    "WeightRule",
    "entries",
    "lookup",
    "lowered",
    "op",
    "supported_ops",
]

OpFn = Callable[[RunContext, GraphNode, list], list]
# (ctx, node, inputs, which inputs are stacked, K) -> (outputs, whether they are stacked), or None when this
# variant of the op has no stacked form (then it is evaluated plainly if no input is stacked).
StackRule = Callable[[RunContext, GraphNode, list, list[bool], int], "tuple[list, bool] | None"]
WeightRule = Callable[[GraphNode, WeightContext], None]
Gradient = Literal["exact", "straight_through", "none"]


class LowerContext:
    """What a lowering rule may use: the graph's constants (it may add its own) and fresh, unique names."""

    def __init__(self, *, constants: dict, taken: set[str]) -> None:
        self.constants = constants  # name -> numpy array; a lowering adds the constants its nodes read
        self._taken = taken

    def fresh(self, hint: str) -> str:
        name, n = hint, 0
        while name in self._taken or name in self.constants:
            n += 1
            name = f"{hint}_{n}"
        self._taken.add(name)
        return name


LowerRule = Callable[[GraphNode, LowerContext], list[GraphNode]]


@dataclass(frozen=True)
class OpEntry:
    name: str
    domain: str
    run: OpFn | None
    stacked: StackRule | None = None
    weights: WeightRule | None = None
    lower: LowerRule | None = None
    gradient: Gradient = "exact"
    module: str = ""

    @property
    def key(self) -> str:
        return op_key(self.name, self.domain)

    @property
    def reference(self) -> str:
        """The operator's page in the ONNX operator documentation."""
        prefix = "onnx_aionnxml_" if self.domain == ML_DOMAIN else "onnx__"
        return f"https://onnx.ai/onnx/operators/{prefix}{self.name}.html"


_TABLE: dict[str, OpEntry] = {}


def op(
    *names: str,
    domain: str = "",
    stacked: StackRule | None = None,
    weights: WeightRule | None = None,
    gradient: Gradient = "exact",
) -> Callable[[OpFn], OpFn]:
    """Register an op implementation under one or more ONNX operator names (with its stacked rule, weight
    rule and gradient kind). Ops rewritten at import time are registered with `lowered` instead."""

    def decorator(fn):
        for name in names:
            _TABLE[op_key(name, domain)] = OpEntry(
                name=name, domain=domain, run=fn, stacked=stacked, weights=weights,
                gradient=gradient, module=getattr(fn, "__module__", ""),
            )
        return fn

    return decorator


def lowered(name: str, *, domain: str = "") -> Callable[[LowerRule], LowerRule]:
    """Register an op that the importer rewrites into other table ops (it has no run of its own)."""

    def decorator(fn: LowerRule) -> LowerRule:
        _TABLE[op_key(name, domain)] = OpEntry(name=name, domain=domain, run=None, lower=fn, module=fn.__module__)
        return fn

    return decorator


def lookup(key: str) -> OpEntry | None:
    return _TABLE.get(key)


def entries() -> list[OpEntry]:
    """Every registered op, sorted by key."""
    return [_TABLE[key] for key in sorted(_TABLE)]


def supported_ops() -> frozenset[str]:
    return frozenset(_TABLE)
