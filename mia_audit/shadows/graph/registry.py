"""The op table: one entry per ONNX operator name, with how to evaluate it and how to stack it.

An entry's `run(ctx, node, inputs) -> outputs` follows the operator's ONNX semantics
(https://onnx.ai/onnx/operators/, at the node's opset) on plain torch tensors. Its optional `stacked` rule
evaluates K models at once on tensors with a leading model dimension (see `stacked.py`); an op without one is
evaluated plainly when none of its inputs is stacked (shapes, constants), and otherwise makes the graph fall
back to vmap. Adding an op is one decorated function (or one row of a table) in the `ops_*` module of its
family: nothing else lists op names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mia_audit.shadows.graph.nodes import GraphNode, RunContext

__all__ = ["OpEntry", "OpFn", "StackRule", "lookup", "op", "supported_ops"]

OpFn = Callable[[RunContext, GraphNode, list], list]
# (ctx, node, inputs, which inputs are stacked, K) -> (outputs, whether they are stacked), or None when this
# variant of the op has no stacked form (then it is evaluated plainly if no input is stacked).
StackRule = Callable[[RunContext, GraphNode, list, list[bool], int], "tuple[list, bool] | None"]


@dataclass(frozen=True)
class OpEntry:
    name: str
    run: OpFn
    stacked: StackRule | None = None


_TABLE: dict[str, OpEntry] = {}


def op(*names: str, stacked: StackRule | None = None) -> Callable[[OpFn], OpFn]:
    """Register an op implementation under one or more ONNX operator names (and its stacked rule, if any)."""

    def decorator(fn: OpFn) -> OpFn:
        for name in names:
            _TABLE[name] = OpEntry(name=name, run=fn, stacked=stacked)
        return fn

    return decorator


def lookup(name: str) -> OpEntry | None:
    return _TABLE.get(name)


def supported_ops() -> frozenset[str]:
    return frozenset(_TABLE)
