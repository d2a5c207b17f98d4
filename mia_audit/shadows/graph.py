"""A trainable, functional copy of a classifier graph: ONNX-style nodes interpreted with torch ops.

A `TrainableGraph` is the architecture of the audited model without its weights. `init_params` draws
fresh weights the way PyTorch initialises a new layer (Linear / Conv: U(−1/√fan_in, 1/√fan_in) for weights
and biases, BatchNorm / LayerNorm scale 1 and shift 0, running mean 0 and variance 1, PReLU slope 0.25),
and `run` evaluates the graph functionally — parameters are passed in, nothing is stored — so that
`torch.func.vmap` can evaluate K shadow models with stacked parameters in one call.

Every op is one function in a registry (`@op("Gemm")`); an op outside the registry makes the graph
untrainable and is named in the reason step 5 is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

Head = Literal["ce", "softmax", "log_softmax", "sigmoid", "binary_logit", "probabilities"]

__all__ = ["GraphNode", "ParamSpec", "TrainableGraph", "supported_ops", "UnsupportedGraph"]


class UnsupportedGraph(Exception):
    """The graph cannot be turned into a trainable torch model; the message says why (naming the op)."""


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

    def _nodes_for(self, outputs: tuple[str, ...]) -> list[GraphNode]:
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
        context = _RunContext(training=training, updates={})
        for node in self._nodes_for((target,)):
            handler = _OPS.get(node.op)
            if handler is None:  # pragma: no cover - rejected at conversion time
                raise UnsupportedGraph(f"operator {node.op} is not supported")
            inputs = [values[name] if name else None for name in node.inputs]
            results = handler(context, node, inputs)
            for name, value in zip(node.outputs, results):
                if name:
                    values[name] = value
        return values[target], context.updates


@dataclass
class _RunContext:
    training: bool
    updates: dict[str, torch.Tensor]


OpFn = Callable[[_RunContext, GraphNode, list], list]
_OPS: dict[str, OpFn] = {}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register an op implementation under one or more ONNX operator names."""

    def decorator(fn: OpFn) -> OpFn:
        for name in names:
            _OPS[name] = fn
        return fn

    return decorator


def supported_ops() -> frozenset[str]:
    return frozenset(_OPS)


# --- helpers ------------------------------------------------------------------------------------------

_ONNX_DTYPES = {
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


def _ints(value: torch.Tensor | None) -> list[int]:
    return [] if value is None else [int(v) for v in value.reshape(-1).tolist()]


def _axes(node: GraphNode, inputs: list, index: int) -> list[int] | None:
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    if len(inputs) > index and inputs[index] is not None:
        return _ints(inputs[index])
    return None


def _spatial_padding(pads: list[int], dims: int) -> tuple[list[int] | None, list[int]]:
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


def _check_auto_pad(node: GraphNode) -> None:
    mode = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("NOTSET", "VALID", ""):
        raise UnsupportedGraph(f"operator {node.op} with auto_pad={mode} is not supported")


# --- linear algebra and element-wise ------------------------------------------------------------------


@op("Gemm")
def _gemm(ctx, node, inputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    if node.attrs.get("transB", 0) and not node.attrs.get("transA", 0) and alpha == beta == 1.0 and (c is None or c.dim() == 1):
        return [F.linear(a, b, c)]  # the common case (a torch Linear): one fused kernel
    if node.attrs.get("transA", 0):
        a = a.transpose(-1, -2)
    if node.attrs.get("transB", 0):
        b = b.transpose(-1, -2)
    y = a @ b
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c if beta == 1.0 else beta * c)
    return [y]


@op("MatMul")
def _matmul(ctx, node, inputs):
    return [torch.matmul(inputs[0], inputs[1])]


def _binary(fn):
    def apply(ctx, node, inputs):
        return [fn(inputs[0], inputs[1])]

    return apply


def _div(a, b):
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


op("Add")(_binary(torch.add))
op("Sub")(_binary(torch.sub))
op("Mul")(_binary(torch.mul))
op("Div")(_binary(_div))
op("Pow")(_binary(torch.pow))
op("Max")(lambda ctx, node, inputs: [_reduce_pairwise(torch.maximum, inputs)])
op("Min")(lambda ctx, node, inputs: [_reduce_pairwise(torch.minimum, inputs)])


def _reduce_pairwise(fn, inputs):
    result = inputs[0]
    for other in inputs[1:]:
        result = fn(result, other)
    return result


def _unary(fn):
    def apply(ctx, node, inputs):
        return [fn(inputs[0])]

    return apply


op("Relu")(_unary(torch.relu))
op("Sigmoid")(_unary(torch.sigmoid))
op("Tanh")(_unary(torch.tanh))
op("Exp")(_unary(torch.exp))
op("Log")(_unary(torch.log))
op("Sqrt")(_unary(torch.sqrt))
op("Neg")(_unary(torch.neg))
op("Abs")(_unary(torch.abs))
op("Erf")(_unary(torch.erf))
op("Reciprocal")(_unary(torch.reciprocal))
op("Softsign")(_unary(F.softsign))
op("Identity")(_unary(lambda x: x))


@op("LeakyRelu")
def _leaky_relu(ctx, node, inputs):
    return [F.leaky_relu(inputs[0], float(node.attrs.get("alpha", 0.01)))]


@op("Elu")
def _elu(ctx, node, inputs):
    return [F.elu(inputs[0], float(node.attrs.get("alpha", 1.0)))]


@op("Selu")
def _selu(ctx, node, inputs):
    alpha = float(node.attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(node.attrs.get("gamma", 1.05070102214813232421875))
    x = inputs[0]
    return [gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))]


@op("Softplus")
def _softplus(ctx, node, inputs):
    return [F.softplus(inputs[0])]


@op("Gelu")
def _gelu(ctx, node, inputs):
    approximate = node.attrs.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return [F.gelu(inputs[0], approximate="tanh" if approximate == "tanh" else "none")]


@op("HardSigmoid")
def _hard_sigmoid(ctx, node, inputs):
    alpha = float(node.attrs.get("alpha", 0.2))
    beta = float(node.attrs.get("beta", 0.5))
    return [torch.clamp(alpha * inputs[0] + beta, 0.0, 1.0)]


@op("HardSwish")
def _hard_swish(ctx, node, inputs):
    return [F.hardswish(inputs[0])]


@op("Clip")
def _clip(ctx, node, inputs):
    x = inputs[0]
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else node.attrs.get("min")
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else node.attrs.get("max")
    if isinstance(low, torch.Tensor):
        low = float(low.reshape(-1)[0])
    if isinstance(high, torch.Tensor):
        high = float(high.reshape(-1)[0])
    return [torch.clamp(x, min=low, max=high)]


@op("PRelu")
def _prelu(ctx, node, inputs):
    x, slope = inputs
    return [torch.where(x >= 0, x, x * slope)]


def _softmax_like(fn):
    def apply(ctx, node, inputs):
        x = inputs[0]
        if node.opset < 13:  # coerce to 2-D at `axis` (default 1), then restore the shape
            axis = int(node.attrs.get("axis", 1)) % x.dim()
            flat = x.reshape(math.prod(x.shape[:axis]), -1)
            return [fn(flat, -1).reshape(x.shape)]
        return [fn(x, int(node.attrs.get("axis", -1)))]

    return apply


op("Softmax")(_softmax_like(torch.softmax))
op("LogSoftmax")(_softmax_like(torch.log_softmax))


# --- convolution, pooling, normalisation --------------------------------------------------------------

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op("Conv")
def _conv(ctx, node, inputs):
    _check_auto_pad(node)
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    dims = w.dim() - 2
    if dims not in _CONV:
        raise UnsupportedGraph(f"operator Conv with {dims} spatial dimensions is not supported")
    padding, explicit = _spatial_padding(list(node.attrs.get("pads", [])), dims)
    if explicit:
        x = F.pad(x, explicit)
        padding = [0] * dims
    return [
        _CONV[dims](
            x,
            w,
            b,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=list(node.attrs.get("dilations", [1] * dims)),
            groups=int(node.attrs.get("group", 1)),
        )
    ]


@op("MaxPool")
def _max_pool(ctx, node, inputs):
    _check_auto_pad(node)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedGraph("operator MaxPool with an indices output is not supported")
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    padding, explicit = _spatial_padding(list(node.attrs.get("pads", [])), dims)
    x = inputs[0]
    if explicit:
        x = F.pad(x, explicit, value=float("-inf"))
        padding = [0] * dims
    return [
        _MAX_POOL[dims](
            x,
            kernel,
            stride=list(node.attrs.get("strides", [1] * dims)),
            padding=padding,
            dilation=list(node.attrs.get("dilations", [1] * dims)),
            ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        )
    ]


@op("AveragePool")
def _avg_pool(ctx, node, inputs):
    _check_auto_pad(node)
    kernel = list(node.attrs["kernel_shape"])
    dims = len(kernel)
    padding, explicit = _spatial_padding(list(node.attrs.get("pads", [])), dims)
    if explicit:
        raise UnsupportedGraph("operator AveragePool with asymmetric padding is not supported")
    kwargs = dict(
        stride=list(node.attrs.get("strides", [1] * dims)),
        padding=padding,
        ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        count_include_pad=bool(node.attrs.get("count_include_pad", 0)),
    )
    return [_AVG_POOL[dims](inputs[0], kernel, **kwargs)]


@op("GlobalAveragePool")
def _global_avg_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("GlobalMaxPool")
def _global_max_pool(ctx, node, inputs):
    x = inputs[0]
    return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]


@op("BatchNormalization")
def _batch_norm(ctx, node, inputs):
    """Inference: running statistics. Training: batch statistics, and the running ones are updated
    as ONNX defines it: running = momentum · running + (1 − momentum) · batch (momentum 0.9)."""
    x, scale, bias, mean, var = inputs[:5]
    eps = float(node.attrs.get("epsilon", 1e-5))
    shape = [1, -1] + [1] * (x.dim() - 2)
    if ctx.training:
        axes = [0] + list(range(2, x.dim()))
        batch_mean = x.mean(dim=axes)
        batch_var = x.var(dim=axes, unbiased=False)
        n = x.numel() // x.shape[1]
        momentum = float(node.attrs.get("momentum", 0.9))
        ctx.updates[node.inputs[3]] = momentum * mean + (1 - momentum) * batch_mean.detach()
        unbiased = batch_var.detach() * (n / max(1, n - 1))
        ctx.updates[node.inputs[4]] = momentum * var + (1 - momentum) * unbiased
        use_mean, use_var = batch_mean, batch_var
    else:
        use_mean, use_var = mean, var
    y = (x - use_mean.reshape(shape)) / torch.sqrt(use_var.reshape(shape) + eps)
    return [y * scale.reshape(shape) + bias.reshape(shape)]


@op("LayerNormalization")
def _layer_norm(ctx, node, inputs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(node.attrs.get("axis", -1)) % x.dim()
    eps = float(node.attrs.get("epsilon", 1e-5))
    return [F.layer_norm(x, list(x.shape[axis:]), scale, bias, eps)]


@op("Dropout")
def _dropout(ctx, node, inputs):
    """Dropout is the identity at inference; exported eval-mode graphs drop it altogether."""
    outputs = [inputs[0]]
    if len(node.outputs) > 1 and node.outputs[1]:
        outputs.append(torch.ones_like(inputs[0], dtype=torch.bool))
    return outputs


# --- shapes -------------------------------------------------------------------------------------------


@op("Flatten")
def _flatten(ctx, node, inputs):
    x = inputs[0]
    axis = int(node.attrs.get("axis", 1)) % max(1, x.dim()) if x.dim() else 0
    return [x.reshape(math.prod(x.shape[:axis]), -1)]


@op("Reshape")
def _reshape(ctx, node, inputs):
    x, shape = inputs[0], _ints(inputs[1])
    allow_zero = bool(node.attrs.get("allowzero", 0))
    target = [x.shape[i] if (d == 0 and not allow_zero) else d for i, d in enumerate(shape)]
    return [x.reshape(target)]


@op("Shape")
def _shape(ctx, node, inputs):
    dims = list(inputs[0].shape)
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return [torch.tensor(dims[start:end] if end is not None else dims[start:], dtype=torch.int64)]


@op("Gather")
def _gather(ctx, node, inputs):
    data, indices = inputs
    axis = int(node.attrs.get("axis", 0)) % data.dim()
    flat = indices.reshape(-1).to(torch.int64) % data.shape[axis]
    picked = torch.index_select(data, axis, flat)
    return [picked.reshape(*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :])]


@op("Unsqueeze")
def _unsqueeze(ctx, node, inputs):
    x = inputs[0]
    axes = sorted(a % (x.dim() + len(_axes(node, inputs, 1) or [])) for a in (_axes(node, inputs, 1) or []))
    for axis in axes:
        x = x.unsqueeze(axis)
    return [x]


@op("Squeeze")
def _squeeze(ctx, node, inputs):
    x = inputs[0]
    axes = _axes(node, inputs, 1)
    if axes is None:
        return [x.squeeze()]
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return [x]


@op("Concat")
def _concat(ctx, node, inputs):
    return [torch.cat([t for t in inputs if t is not None], dim=int(node.attrs.get("axis", 0)))]


@op("Transpose")
def _transpose(ctx, node, inputs):
    x = inputs[0]
    perm = node.attrs.get("perm") or list(reversed(range(x.dim())))
    return [x.permute(*perm)]


@op("Cast")
def _cast(ctx, node, inputs):
    to = _ONNX_DTYPES.get(int(node.attrs["to"]))
    if to is None:
        raise UnsupportedGraph(f"operator Cast to ONNX type {node.attrs['to']} is not supported")
    return [inputs[0].to(to)]


@op("Constant")
def _constant(ctx, node, inputs):
    return [node.attrs["value"]]


@op("ConstantOfShape")
def _constant_of_shape(ctx, node, inputs):
    value = node.attrs.get("value")
    fill = value.reshape(-1)[0] if isinstance(value, torch.Tensor) else torch.tensor(0.0)
    return [torch.full(_ints(inputs[0]), fill.item(), dtype=fill.dtype)]


@op("Slice")
def _slice(ctx, node, inputs):
    x = inputs[0]
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index: list[Any] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step <= 0:
            raise UnsupportedGraph("operator Slice with a negative step is not supported")
        size = x.shape[axis]
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        index[axis % x.dim()] = slice(start, end, step)
    return [x[tuple(index)]]


def _reduce(fn):
    def apply(ctx, node, inputs):
        x = inputs[0]
        axes = _axes(node, inputs, 1)
        keep = bool(node.attrs.get("keepdims", 1))
        if axes is None:
            axes = list(range(x.dim()))
        return [fn(x, dim=tuple(a % x.dim() for a in axes), keepdim=keep)]

    return apply


op("ReduceMean")(_reduce(torch.mean))
op("ReduceSum")(_reduce(torch.sum))
op("ReduceMax")(_reduce(torch.amax))


# --- stacked evaluation: K models in one call without vmap ---------------------------------------------
#
# For graphs made of dense layers and element-wise ops, K models are evaluated directly on tensors with a
# leading model dimension (stacked weights (K, out, in), activations (K, B, ...)): batched matrix
# products and broadcasting, no functorch dispatch layer — about 25% less per-step overhead than vmap on
# small MLPs. Any op (or op variant) without a stacked rule raises `NotStackable` and the trainer uses
# vmap instead; the trainer also checks both paths agree before relying on this one.


class NotStackable(Exception):
    """This graph (or one of its nodes) has no stacked implementation; use vmap."""


_ELEMENTWISE = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Exp", "Log",
        "Sqrt", "Neg", "Abs", "Erf", "Reciprocal", "Softsign", "Identity", "Elu", "Selu", "Softplus", "Gelu",
        "HardSigmoid", "HardSwish", "Clip", "PRelu",
    }
)


def _align(values: list, flags: list[bool], k: int) -> list:
    """Reshape stacked tensors to (K, 1, ..., *logical) so they broadcast against each other by logical shape."""
    logical = max((v.dim() - 1 if f else v.dim()) for v, f in zip(values, flags) if v is not None)
    out = []
    for v, f in zip(values, flags):
        if v is not None and f and v.dim() - 1 < logical:
            v = v.reshape(k, *([1] * (logical - (v.dim() - 1))), *v.shape[1:])
        out.append(v)
    return out


def _run_stacked_node(ctx: _RunContext, node: GraphNode, inputs: list, flags: list[bool], k: int) -> tuple[list, bool]:
    op = node.op
    stacked = any(flags)
    if op == "Constant":
        return [node.attrs["value"]], False
    if op in _ELEMENTWISE:
        if op == "Clip":  # bounds are scalars
            return _OPS[op](ctx, node, [inputs[0]] + inputs[1:]), flags[0]
        return _OPS[op](ctx, node, _align(inputs, flags, k)), stacked
    if op == "Dropout":
        return [inputs[0]] + ([torch.ones_like(inputs[0], dtype=torch.bool)] if len(node.outputs) > 1 and node.outputs[1] else []), flags[0]
    if op in ("Gemm", "MatMul"):
        a, b = inputs[0], inputs[1]
        if op == "Gemm":
            if node.attrs.get("transA", 0) or (flags[0] and a.dim() != 3) or (not flags[0] and a.dim() != 2):
                raise NotStackable("Gemm variant")
            if node.attrs.get("transB", 0):
                b = b.transpose(-1, -2)
        c_in = inputs[2] if op == "Gemm" and len(inputs) > 2 else None
        plain = op != "Gemm" or (float(node.attrs.get("alpha", 1.0)) == 1.0 and float(node.attrs.get("beta", 1.0)) == 1.0)
        if plain and flags[0] and flags[1] and a.dim() == 3 and b.dim() == 3:
            if c_in is not None and flags[2] and c_in.dim() == 2:
                return [torch.baddbmm(c_in.unsqueeze(1), a, b)], True  # one fused kernel per dense layer
            if c_in is None:
                return [torch.bmm(a, b)], True
        logical_a = a.dim() - 1 if flags[0] else a.dim()
        logical_b = b.dim() - 1 if flags[1] else b.dim()
        if logical_a < 2 or logical_b < 2:
            raise NotStackable("MatMul with a vector operand")
        a, b = _align([a, b], [flags[0], flags[1]], k)
        if not flags[0] and logical_a > 2:
            a = a.unsqueeze(0)
        if not flags[1] and logical_b > 2:
            b = b.unsqueeze(0)
        y = torch.matmul(a, b)
        if op == "Gemm":
            alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
            if alpha != 1.0:
                y = y * alpha
            if len(inputs) > 2 and inputs[2] is not None:
                c = inputs[2] if beta == 1.0 else beta * inputs[2]
                y, c = _align([y, c], [stacked, flags[2]], k)
                y = y + c
        return [y], stacked
    if op in ("Softmax", "LogSoftmax"):
        x = inputs[0]
        logical = x.dim() - 1 if flags[0] else x.dim()
        axis = int(node.attrs.get("axis", 1 if node.opset < 13 else -1))
        if axis % logical != logical - 1:
            raise NotStackable(f"{op} over a non-final axis")
        return [(torch.softmax if op == "Softmax" else torch.log_softmax)(x, -1)], flags[0]
    if op == "Flatten" and flags[0]:
        x = inputs[0]
        axis = int(node.attrs.get("axis", 1)) % max(1, x.dim() - 1)
        return [x.reshape(k, math.prod(x.shape[1 : 1 + axis]), -1)], True
    if op == "Reshape" and flags[0] and not flags[1]:
        x, shape = inputs[0], _ints(inputs[1])
        allow_zero = bool(node.attrs.get("allowzero", 0))
        target = [x.shape[1 + i] if (d == 0 and not allow_zero) else d for i, d in enumerate(shape)]
        return [x.reshape(k, *target)], True
    if op == "Transpose" and flags[0]:
        perm = node.attrs.get("perm") or list(reversed(range(inputs[0].dim() - 1)))
        return [inputs[0].permute(0, *[p + 1 for p in perm])], True
    if not stacked and op in _OPS:  # constant folding of unstacked values (shapes, constants)
        return _OPS[op](ctx, node, inputs), False
    raise NotStackable(f"operator {op}")


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
    context = _RunContext(training=True, updates={})
    for node in graph._nodes_for((target,)):
        inputs = [values[name] if name else None for name in node.inputs]
        in_flags = [flags.get(name, False) if name else False for name in node.inputs]
        results, stacked = _run_stacked_node(context, node, inputs, in_flags, k)
        for name, value in zip(node.outputs, results):
            if name:
                values[name], flags[name] = value, stacked
    result = values[target]
    if not flags[target]:
        result = result.unsqueeze(0).expand(k, *result.shape)
    return result
