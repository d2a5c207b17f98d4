"""The IR of a trainable classifier: nodes, trainable-tensor specs, kept constants, the training head.

`init_params` draws fresh weights the way PyTorch initialises a new layer (Linear / Conv:
U(−1/√fan_in, 1/√fan_in) for weights and biases, BatchNorm / LayerNorm scale 1 and shift 0, running mean 0
and variance 1, PReLU slope 0.25), and `run` evaluates the graph functionally — parameters are passed in,
nothing is stored — so that `torch.func.vmap` can evaluate K shadow models with stacked parameters in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from mia_audit.shadows.graph.nodes import GraphNode, Head, ParamSpec, RunContext, UnsupportedGraph
from mia_audit.shadows.graph.registry import lookup

__all__ = ["TrainableGraph"]


@dataclass
class TrainableGraph:
    """Architecture of a classifier: nodes, trainable-tensor specs, kept constants and the training head.

    - `params`: tensors re-drawn for every shadow model (layer weights and biases, norm scales).
    - `running`: BatchNormalization running statistics ("mean" / "var"), reset and updated in training.
    - `constants`: everything else (input scaling, reshape targets), kept exactly as in the model.
    - `head` / `head_input`: what the training loss reads — e.g. a final Softmax is skipped and
      cross-entropy is taken on its input (the logits), which is how such a model is trained.
    """

    input_name: str
    output_name: str
    input_dtype: torch.dtype
    nodes: list[GraphNode]
    params: dict[str, ParamSpec]
    running: dict[str, Literal["mean", "var"]]
    constants: dict[str, torch.Tensor]
    head: Head
    head_input: str
    description: str = ""
    running_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _needed: dict[tuple[str, ...], list[GraphNode]] = field(default_factory=dict, repr=False)

    @property
    def n_parameters(self) -> int:
        return sum(math.prod(spec.shape) for spec in self.params.values())

    def init_params(self, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One fresh draw of every trainable tensor (sorted by name so draws are reproducible)."""
        dtype = self.input_dtype if self.input_dtype.is_floating_point else torch.float32
        out: dict[str, torch.Tensor] = {}
        for name in sorted(self.params):
            spec = self.params[name]
            if spec.init == "uniform":
                value = (torch.rand(spec.shape, generator=generator, dtype=dtype) * 2 - 1) * spec.bound
            elif spec.init == "ones":
                value = torch.ones(spec.shape, dtype=dtype)
            elif spec.init == "zeros":
                value = torch.zeros(spec.shape, dtype=dtype)
            else:
                value = torch.full(spec.shape, spec.value, dtype=dtype)
            out[name] = value
        return out

    def init_running(self) -> dict[str, torch.Tensor]:
        """Running statistics at their initial values (mean 0, variance 1)."""
        dtype = self.input_dtype if self.input_dtype.is_floating_point else torch.float32
        result = {}
        for name, kind in sorted(self.running.items()):
            shape = self.running_shapes[name]
            result[name] = torch.zeros(shape, dtype=dtype) if kind == "mean" else torch.ones(shape, dtype=dtype)
        return result

    def nodes_for(self, outputs: tuple[str, ...]) -> list[GraphNode]:
        """The nodes needed to compute `outputs`, in graph order (cached per output tuple)."""
        cached = self._needed.get(outputs)
        if cached is not None:
            return cached
        wanted = set(outputs)
        chosen: list[GraphNode] = []
        for node in reversed(self.nodes):
            if wanted.intersection(node.outputs):
                chosen.append(node)
                wanted.update(name for name in node.inputs if name)
        chosen.reverse()
        self._needed[outputs] = chosen
        return chosen

    def run(
        self,
        params: dict[str, torch.Tensor],
        running: dict[str, torch.Tensor],
        x: torch.Tensor,
        *,
        training: bool,
        output: str | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Evaluate the graph up to `output` (default: the model output).

        Returns the output and, when training, the updated BatchNorm running statistics (the caller
        stores them: nothing is modified in place, which keeps the function vmap-friendly).
        """
        target = output or self.output_name
        values: dict[str, torch.Tensor] = {self.input_name: x}
        values.update(self.constants)
        values.update(params)
        values.update(running)
        context = RunContext(training=training, updates={})
        for node in self.nodes_for((target,)):
            entry = lookup(node.key)
            if entry is None or entry.run is None:  # pragma: no cover - rejected or lowered at conversion time
                raise UnsupportedGraph(f"operator {node.op} is not supported")
            inputs = [values[name] if name else None for name in node.inputs]
            results = entry.run(context, node, inputs)
            for name, value in zip(node.outputs, results):
                if name:
                    values[name] = value
        return values[target], context.updates
