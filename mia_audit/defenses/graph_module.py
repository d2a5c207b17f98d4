"""The target's own architecture as a trainable `nn.Module` (from the step-5 `TrainableGraph`), and the
deployable form of a defended variant (retrained weights + output defenses) for ONNX export.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mia_audit.shadows.graph import GraphNode, TrainableGraph, op

#: Activations after which dropout is inserted in a converted graph (hidden layers only).
HIDDEN_ACTIVATIONS = ("Relu", "LeakyRelu", "Elu", "Selu", "Gelu", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus")


@op("MiaTrainDropout")
def _train_dropout(ctx, node, inputs):
    """Dropout inserted by the dropout defense (Srivastava et al. 2014): inverted dropout in training with masks
    from the node's own generator, the identity at inference and export."""
    x, p = inputs[0], float(node.attrs["ratio"])
    if not ctx.training or p == 0.0:
        return [x]
    keep = torch.rand(x.shape, generator=node.attrs["generator"], dtype=x.dtype) >= p
    return [x * keep / (1.0 - p)]


def with_dropout(graph: TrainableGraph, *, p: float, generator: torch.Generator) -> tuple[TrainableGraph, list[str]]:
    """A copy of `graph` with dropout after every hidden activation node; returns the sites (node outputs)."""
    nodes: list[GraphNode] = []
    sites: list[str] = []
    for node in graph.nodes:
        if node.op in HIDDEN_ACTIVATIONS and node.outputs[0] not in (graph.head_input, graph.output_name):
            hidden = node.outputs[0]
            renamed = f"{hidden}__pre_dropout"
            nodes.append(dataclasses.replace(node, outputs=(renamed, *node.outputs[1:])))
            nodes.append(
                GraphNode(
                    op="MiaTrainDropout", inputs=(renamed,), outputs=(hidden,), attrs={"ratio": p, "generator": generator}
                )
            )
            sites.append(f"after {node.op} → {hidden}")
        else:
            nodes.append(node)
    return dataclasses.replace(graph, nodes=nodes, _needed={}), sites


class GraphClassifier(nn.Module):
    """Freshly initialised weights of the target's architecture; `forward` returns training logits.

    Binary models with one sigmoid/logit output give two-column logits [0, z]; models that end in
    probabilities without a recoverable logit give log-probabilities (cross-entropy on them is the NLL).
    """

    def __init__(self, graph: TrainableGraph, *, seed: int = 0) -> None:
        super().__init__()
        self.graph = graph
        initial = graph.init_params(generator=torch.Generator().manual_seed(seed))
        self._names = sorted(initial)
        self.weights = nn.ParameterList([nn.Parameter(initial[name]) for name in self._names])
        running = graph.init_running()
        self._running_names = sorted(running)
        for index, name in enumerate(self._running_names):
            self.register_buffer(f"running_{index}", running[name])
        self.mixes_batch = bool(graph.running)  # BatchNorm: records of a batch are not independent

    def reset_parameters_from(self, generator: torch.Generator) -> None:
        """Fresh weights from `generator`, drawn the way the converted graph initialises them."""
        initial = self.graph.init_params(generator=generator)
        with torch.no_grad():
            for parameter, name in zip(self.weights, self._names):
                parameter.copy_(initial[name])

    def insert_dropout(self, p: float, *, generator: torch.Generator) -> list[str]:
        self.graph, sites = with_dropout(self.graph, p=p, generator=generator)
        return sites

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(zip(self._names, self.weights))
        running = {name: getattr(self, f"running_{i}") for i, name in enumerate(self._running_names)}
        return params, running

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params, running = self._state()
        out, updates = self.graph.run(params, running, x.to(self.graph.input_dtype), training=self.training,
                                      output=self.graph.head_input)
        if self.training:
            for index, name in enumerate(self._running_names):
                if name in updates:
                    getattr(self, f"running_{index}").copy_(updates[name].detach())
        out = out.reshape(out.shape[0], -1)
        head = self.graph.head
        if head in ("sigmoid", "binary_logit"):
            return torch.cat([torch.zeros_like(out[:, :1]), out[:, :1]], dim=1)
        if head == "probabilities":
            return torch.log(torch.clamp(out / out.sum(1, keepdim=True), min=1e-12))
        return out


class DeployedVariant(nn.Module):
    """What a defended variant serves: softmax of the retrained logits, then each output defense in torch."""

    def __init__(self, classifier: nn.Module, *, output_steps: list[tuple[str, float]]) -> None:
        super().__init__()
        self.classifier = classifier
        self.output_steps = output_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.classifier(x), dim=1)
        p = logp.exp()
        for name, value in self.output_steps:
            if name == "top_k":
                k = min(int(value), p.shape[1])
                top = torch.topk(p, k, dim=1)
                p = torch.zeros_like(p).scatter(1, top.indices, top.values)
                p = p / p.sum(1, keepdim=True)
            elif name == "label_only":
                p = F.one_hot(p.argmax(1), p.shape[1]).to(p.dtype)
            elif name == "rounding":
                scale = 10.0 ** int(value)
                p = torch.round(p * scale) / scale
            elif name == "temperature":
                p = F.softmax(torch.log(torch.clamp(p, min=1e-300)) / float(value), dim=1)
        return p


def predict_logits(module: nn.Module, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Eval-mode logits of `module` on `x` as float64 (no gradients)."""
    module.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.as_tensor(np.asarray(x[start:start + batch_size], dtype=np.float32))
            outputs.append(module(batch).to(torch.float64).numpy())
    return np.concatenate(outputs) if outputs else np.empty((0, 0))


def export_onnx(module: nn.Module, *, example: np.ndarray, path) -> None:
    """Write `module` (eval mode) as ONNX with a dynamic batch axis (legacy exporter: no onnxscript needed)."""
    import contextlib
    import io
    import warnings

    module.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.as_tensor(np.asarray(example[:2], dtype=np.float32)),),
            str(path),
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            dynamo=False,
        )
