"""Linear algebra, broadcasting arithmetic, comparisons and logic, Where and Clip (ONNX operator semantics,
https://onnx.ai/onnx/operators/). Element-wise ops are rows of the tables below; the rest are functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_audit.shadows.graph.nodes import GraphNode, NotStackable, ParamSpec, WeightContext, uniform_bound
from mia_audit.shadows.graph.registry import op
from mia_audit.shadows.graph.stacking import align, elementwise, follow_first

# --- linear algebra -----------------------------------------------------------------------------------


def _stacked_matmul(ctx, node, inputs, flags, k):
    """Gemm / MatMul on stacked operands: one baddbmm per dense layer when weights and bias are stacked."""
    is_gemm = node.op == "Gemm"
    a, b = inputs[0], inputs[1]
    if is_gemm:
        if node.attrs.get("transA", 0) or (flags[0] and a.dim() != 3) or (not flags[0] and a.dim() != 2):
            raise NotStackable("Gemm variant")
        if node.attrs.get("transB", 0):
            b = b.transpose(-1, -2)
    stacked = any(flags)
    c_in = inputs[2] if is_gemm and len(inputs) > 2 else None
    plain = not is_gemm or (float(node.attrs.get("alpha", 1.0)) == 1.0 and float(node.attrs.get("beta", 1.0)) == 1.0)
    if plain and flags[0] and flags[1] and a.dim() == 3 and b.dim() == 3:
        if c_in is not None and flags[2] and c_in.dim() == 2:
            return [torch.baddbmm(c_in.unsqueeze(1), a, b)], True  # one fused kernel per dense layer
        if c_in is None:
            return [torch.bmm(a, b)], True
    logical_a = a.dim() - 1 if flags[0] else a.dim()
    logical_b = b.dim() - 1 if flags[1] else b.dim()
    if logical_a < 2 or logical_b < 2:
        raise NotStackable("MatMul with a vector operand")
    a, b = align([a, b], [flags[0], flags[1]], k)
    if not flags[0] and logical_a > 2:
        a = a.unsqueeze(0)
    if not flags[1] and logical_b > 2:
        b = b.unsqueeze(0)
    y = torch.matmul(a, b)
    if is_gemm:
        alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
        if alpha != 1.0:
            y = y * alpha
        if len(inputs) > 2 and inputs[2] is not None:
            c = inputs[2] if beta == 1.0 else beta * inputs[2]
            y, c = align([y, c], [stacked, flags[2]], k)
            y = y + c
    return [y], stacked


def _gemm_weights(node: GraphNode, ctx: WeightContext) -> None:
    """A Gemm with constant B is a dense layer: B and C re-drawn like a new torch Linear."""
    ins = node.inputs
    if len(ins) < 2 or not ctx.is_constant(ins[1]):
        return
    shape = ctx.shapes[ins[1]]
    fan_in = shape[1] if node.attrs.get("transB", 0) else shape[0]
    ctx.trainable(ins[1], ParamSpec(shape=shape, init="uniform", bound=uniform_bound(fan_in)))
    if len(ins) > 2 and ins[2]:
        ctx.trainable(ins[2], ParamSpec(shape=ctx.shapes.get(ins[2], ()), init="uniform", bound=uniform_bound(fan_in)))
    ctx.fan_in[node.outputs[0]] = fan_in


def _matmul_weights(node: GraphNode, ctx: WeightContext) -> None:
    """A MatMul with a constant matrix operand is a dense layer (its bias, if any, is a following Add)."""
    a, b = node.inputs[0], node.inputs[1]
    if ctx.is_constant(b) and len(ctx.shapes[b]) >= 2:
        fan_in = ctx.shapes[b][-2]
        ctx.trainable(b, ParamSpec(shape=ctx.shapes[b], init="uniform", bound=uniform_bound(fan_in)))
        ctx.fan_in[node.outputs[0]] = fan_in
    elif ctx.is_constant(a) and len(ctx.shapes[a]) >= 2:
        fan_in = ctx.shapes[a][-1]
        ctx.trainable(a, ParamSpec(shape=ctx.shapes[a], init="uniform", bound=uniform_bound(fan_in)))
        ctx.fan_in[node.outputs[0]] = fan_in


@op("Gemm", stacked=_stacked_matmul, weights=_gemm_weights)
def _gemm(ctx, node, inputs):
    """Y = alpha · A' · B' + beta · C (A', B' optionally transposed)."""
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


@op("MatMul", stacked=_stacked_matmul, weights=_matmul_weights)
def _matmul(ctx, node, inputs):
    return [torch.matmul(inputs[0], inputs[1])]


@op("Einsum")
def _einsum(ctx, node, inputs):
    """ONNX's equation syntax (explicit `->` or implicit output, `...` broadcasting) is torch.einsum's."""
    return [torch.einsum(str(node.attrs["equation"]).replace(" ", ""), *inputs)]


# --- element-wise: one row per op ----------------------------------------------------------------------


def _div(a, b):
    """ONNX Div truncates on integer inputs."""
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _variadic(fn):
    """Variadic Max / Min / Sum: fold the inputs pairwise."""

    def reduce(*inputs):
        result = inputs[0]
        for other in inputs[1:]:
            result = fn(result, other)
        return result

    return reduce


def _mean(*inputs):
    return _variadic(torch.add)(*inputs) / len(inputs)


# name → torch function of the inputs (variadic ops receive them all)
BROADCASTING = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": _div,
    "Pow": torch.pow,
    "Max": _variadic(torch.maximum),
    "Min": _variadic(torch.minimum),
    "Sum": _variadic(torch.add),
    "Mean": _mean,
    "PRelu": lambda x, slope: torch.where(x >= 0, x, x * slope),
    "Where": torch.where,
}

# Comparisons and logic: boolean outputs, no gradient.
COMPARISONS = {
    "Equal": torch.eq,
    "Greater": torch.gt,
    "Less": torch.lt,
    "GreaterOrEqual": torch.ge,
    "LessOrEqual": torch.le,
    "And": torch.logical_and,
    "Or": torch.logical_or,
    "Xor": torch.logical_xor,
}


def _broadcasting(fn):
    def run(ctx, node, inputs):
        return [fn(*inputs)]

    return run


def _add_weights(node: GraphNode, ctx: WeightContext) -> None:
    """A constant added to a dense or convolution layer's output is its bias (drawn with that layer's fan-in);
    added to a normalised value, it is the normalisation's shift (starts at 0)."""
    ins = node.inputs
    for this, other in ((ins[0], ins[1]), (ins[1], ins[0])):
        if ctx.is_constant(this) and other in ctx.fan_in:
            ctx.trainable(this, ParamSpec(shape=ctx.shapes[this], init="uniform", bound=uniform_bound(ctx.fan_in[other])))
        elif ctx.is_constant(this) and other in ctx.affine:
            ctx.trainable(this, ParamSpec(shape=ctx.shapes[this], init="zeros"))


def _mul_weights(node: GraphNode, ctx: WeightContext) -> None:
    """A constant multiplying a normalised value is the normalisation's scale (starts at 1)."""
    ins = node.inputs
    for this, other in ((ins[0], ins[1]), (ins[1], ins[0])):
        if ctx.is_constant(this) and ctx.affine.get(other) == "normalised":
            ctx.trainable(this, ParamSpec(shape=ctx.shapes[this], init="ones"))
            ctx.affine[node.outputs[0]] = "scaled"


def _prelu_weights(node: GraphNode, ctx: WeightContext) -> None:
    """PRelu's slope is learned (torch's nn.PReLU starts it at 0.25)."""
    if ctx.is_constant(node.inputs[1]):
        ctx.trainable(node.inputs[1], ParamSpec(shape=ctx.shapes[node.inputs[1]], init="constant", value=0.25))


_WEIGHTS = {"Add": _add_weights, "Mul": _mul_weights, "PRelu": _prelu_weights}

for _name, _fn in BROADCASTING.items():
    op(_name, stacked=elementwise, weights=_WEIGHTS.get(_name))(_broadcasting(_fn))
for _name, _fn in COMPARISONS.items():
    op(_name, stacked=elementwise, gradient="none")(_broadcasting(_fn))


@op("Not", stacked=elementwise, gradient="none")
def _not(ctx, node, inputs):
    return [torch.logical_not(inputs[0])]


@op("Mod", stacked=elementwise)
def _mod(ctx, node, inputs):
    """fmod=1: the sign of the dividend (C fmod); fmod=0 (integers only): the sign of the divisor."""
    a, b = inputs
    return [torch.fmod(a, b) if node.attrs.get("fmod", 0) else torch.remainder(a, b)]


@op("Clip", stacked=follow_first)
def _clip(ctx, node, inputs):
    """Bounds from inputs 2–3 (opset ≥ 11) or the min / max attributes; scalars, so only x is stacked."""
    x = inputs[0]
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else node.attrs.get("min")
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else node.attrs.get("max")
    if isinstance(low, torch.Tensor):
        low = float(low.reshape(-1)[0])
    if isinstance(high, torch.Tensor):
        high = float(high.reshape(-1)[0])
    return [torch.clamp(x, min=low, max=high)]
