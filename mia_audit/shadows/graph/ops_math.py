"""Linear algebra, element-wise arithmetic, activations and softmax (ONNX operator semantics,
https://onnx.ai/onnx/operators/). Element-wise ops are rows of the tables below; the rest are functions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mia_audit.shadows.graph.attrs import text
from mia_audit.shadows.graph.nodes import NotStackable
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


@op("Gemm", stacked=_stacked_matmul)
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


@op("MatMul", stacked=_stacked_matmul)
def _matmul(ctx, node, inputs):
    return [torch.matmul(inputs[0], inputs[1])]


# --- element-wise: one row per op ----------------------------------------------------------------------


def _div(a, b):
    """ONNX Div truncates on integer inputs."""
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _pairwise(fn):
    """Variadic Max / Min: fold the inputs pairwise."""

    def reduce(*inputs):
        result = inputs[0]
        for other in inputs[1:]:
            result = fn(result, other)
        return result

    return reduce


def _selu(x, alpha, gamma):
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def _gelu(x, approximate):
    return F.gelu(x, approximate="tanh" if text(approximate) == "tanh" else "none")


# name → torch function of the inputs (variadic ops receive them all)
BROADCASTING = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": _div,
    "Pow": torch.pow,
    "Max": _pairwise(torch.maximum),
    "Min": _pairwise(torch.minimum),
    "PRelu": lambda x, slope: torch.where(x >= 0, x, x * slope),
}

# name → (torch function of the input and the attributes, {attribute: ONNX default})
ACTIVATIONS = {
    "Relu": (torch.relu, {}),
    "Sigmoid": (torch.sigmoid, {}),
    "Tanh": (torch.tanh, {}),
    "Exp": (torch.exp, {}),
    "Log": (torch.log, {}),
    "Sqrt": (torch.sqrt, {}),
    "Neg": (torch.neg, {}),
    "Abs": (torch.abs, {}),
    "Erf": (torch.erf, {}),
    "Reciprocal": (torch.reciprocal, {}),
    "Softsign": (F.softsign, {}),
    "Identity": (lambda x: x, {}),
    "Softplus": (F.softplus, {}),
    "HardSwish": (F.hardswish, {}),
    "LeakyRelu": (lambda x, alpha: F.leaky_relu(x, alpha), {"alpha": 0.01}),
    "Elu": (lambda x, alpha: F.elu(x, alpha), {"alpha": 1.0}),
    "Selu": (_selu, {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "HardSigmoid": (lambda x, alpha, beta: torch.clamp(alpha * x + beta, 0.0, 1.0), {"alpha": 0.2, "beta": 0.5}),
    "Gelu": (_gelu, {"approximate": "none"}),
}


def _broadcasting(fn):
    def run(ctx, node, inputs):
        return [fn(*inputs)]

    return run


def _activation(fn, defaults):
    def run(ctx, node, inputs):
        values = [
            node.attrs.get(name, default) if isinstance(default, str) else float(node.attrs.get(name, default))
            for name, default in defaults.items()
        ]
        return [fn(inputs[0], *values)]

    return run


for _name, _fn in BROADCASTING.items():
    op(_name, stacked=elementwise)(_broadcasting(_fn))
for _name, (_fn, _defaults) in ACTIVATIONS.items():
    op(_name, stacked=elementwise)(_activation(_fn, _defaults))


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


# --- softmax ------------------------------------------------------------------------------------------

_SOFTMAX = {"Softmax": torch.softmax, "LogSoftmax": torch.log_softmax}


def _softmax(ctx, node, inputs):
    """Opset < 13 coerces the input to 2-D at `axis` (default 1) and restores the shape; later opsets
    normalise along `axis` (default −1)."""
    fn, x = _SOFTMAX[node.op], inputs[0]
    if node.opset < 13:
        axis = int(node.attrs.get("axis", 1)) % x.dim()
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return [fn(flat, -1).reshape(x.shape)]
    return [fn(x, int(node.attrs.get("axis", -1)))]


def _stacked_softmax(ctx, node, inputs, flags, k):
    x = inputs[0]
    logical = x.dim() - 1 if flags[0] else x.dim()
    axis = int(node.attrs.get("axis", 1 if node.opset < 13 else -1))
    if axis % logical != logical - 1:
        raise NotStackable(f"{node.op} over a non-final axis")
    return [_SOFTMAX[node.op](x, -1)], flags[0]


op(*_SOFTMAX, stacked=_stacked_softmax)(_softmax)
