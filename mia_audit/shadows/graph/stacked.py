"""The stacked runner: K models with stacked parameters evaluated in one pass, without vmap.

Each node is evaluated by its op's stacked rule (see `registry.py`); a node whose inputs are all unstacked
(shapes, constants) is evaluated plainly; any other node raises `NotStackable` and the trainer uses vmap
instead (it also checks both paths agree before relying on this one).
"""

from __future__ import annotations

import torch

from mia_audit.shadows.graph.nodes import GraphNode, NotStackable, RunContext
from mia_audit.shadows.graph.registry import lookup
from mia_audit.shadows.graph.trainable import TrainableGraph

__all__ = ["NotStackable", "run_stacked"]


def _run_node(ctx: RunContext, node: GraphNode, inputs: list, flags: list[bool], k: int) -> tuple[list, bool]:
    entry = lookup(node.key)
    if entry is None or entry.run is None:
        raise NotStackable(f"operator {node.op}")
    if entry.stacked is not None:
        outcome = entry.stacked(ctx, node, inputs, flags, k)
        if outcome is not None:
            return outcome
    if not any(flags):  # constant folding of unstacked values (shapes, constants)
        return entry.run(ctx, node, inputs), False
    raise NotStackable(f"operator {node.op}")


def run_stacked(
    graph: TrainableGraph,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    *,
    x_stacked: bool,
    output: str | None = None,
) -> torch.Tensor:
    """Evaluate K models with stacked `params` (leading dim K) on stacked (K, B, ...) or shared (B, ...) x.

    Only for graphs without BatchNormalization running statistics (those train through vmap).
    """
    if graph.running:
        raise NotStackable("BatchNormalization")
    k = next(iter(params.values())).shape[0]
    target = output or graph.output_name
    values: dict[str, torch.Tensor] = {graph.input_name: x}
    flags: dict[str, bool] = {graph.input_name: x_stacked}
    for name, value in graph.constants.items():
        values[name], flags[name] = value, False
    for name, value in params.items():
        values[name], flags[name] = value, True
    context = RunContext(training=True, updates={})
    for node in graph.nodes_for((target,)):
        inputs = [values[name] if name else None for name in node.inputs]
        in_flags = [flags.get(name, False) if name else False for name in node.inputs]
        results, stacked = _run_node(context, node, inputs, in_flags, k)
        for name, value in zip(node.outputs, results):
            if name:
                values[name], flags[name] = value, stacked
    result = values[target]
    if not flags[target]:
        result = result.unsqueeze(0).expand(k, *result.shape)
    return result
