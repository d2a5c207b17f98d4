"""Element-wise unary math, activations and the softmax family (ONNX operator semantics,
https://onnx.ai/onnx/operators/). Every element-wise op is one row of a table below."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mia_audit.shadows.graph.attrs import text
from mia_audit.shadows.graph.nodes import NotStackable
from mia_audit.shadows.graph.registry import op
from mia_audit.shadows.graph.stacking import elementwise


def _selu(x, alpha, gamma):
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def _celu(x, alpha):
    """max(0, x) + min(0, α·(exp(x/α) − 1))."""
    return torch.clamp(x, min=0) + torch.clamp(alpha * torch.expm1(x / alpha), max=0)


def _gelu(x, approximate):
    return F.gelu(x, approximate="tanh" if text(approximate) == "tanh" else "none")


def _shrink(x, bias, lambd):
    """x + bias below −λ, x − bias above λ, 0 in between."""
    return torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, torch.zeros_like(x)))


def _straight_through(fn):
    """Rounding with the identity's gradient (Bengio et al. 2013): forward fn(x), backward 1."""

    def run(x):
        return x + (fn(x) - x).detach()

    return run


# name → (torch function of the input and the attributes, {attribute: ONNX default})
UNARY = {
    "Sin": (torch.sin, {}),
    "Cos": (torch.cos, {}),
    "Tan": (torch.tan, {}),
    "Asin": (torch.asin, {}),
    "Acos": (torch.acos, {}),
    "Atan": (torch.atan, {}),
    "Sinh": (torch.sinh, {}),
    "Cosh": (torch.cosh, {}),
    "Asinh": (torch.asinh, {}),
    "Acosh": (torch.acosh, {}),
    "Atanh": (torch.atanh, {}),
    "Exp": (torch.exp, {}),
    "Log": (torch.log, {}),
    "Sqrt": (torch.sqrt, {}),
    "Neg": (torch.neg, {}),
    "Abs": (torch.abs, {}),
    "Erf": (torch.erf, {}),
    "Reciprocal": (torch.reciprocal, {}),
    "Identity": (lambda x: x, {}),
    "Relu": (torch.relu, {}),
    "Sigmoid": (torch.sigmoid, {}),
    "Tanh": (torch.tanh, {}),
    "Softsign": (F.softsign, {}),
    "Softplus": (F.softplus, {}),
    "Mish": (F.mish, {}),
    "HardSwish": (F.hardswish, {}),
    "LeakyRelu": (lambda x, alpha: F.leaky_relu(x, alpha), {"alpha": 0.01}),
    "Elu": (lambda x, alpha: F.elu(x, alpha), {"alpha": 1.0}),
    "Celu": (_celu, {"alpha": 1.0}),
    "Selu": (_selu, {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "ThresholdedRelu": (lambda x, alpha: torch.where(x > alpha, x, torch.zeros_like(x)), {"alpha": 1.0}),
    "HardSigmoid": (lambda x, alpha, beta: torch.clamp(alpha * x + beta, 0.0, 1.0), {"alpha": 0.2, "beta": 0.5}),
    "Shrink": (_shrink, {"bias": 0.0, "lambd": 0.5}),
    "Gelu": (_gelu, {"approximate": "none"}),
}
#: Rounding: the forward value of the operator, the identity's gradient.
STRAIGHT_THROUGH = {"Floor": torch.floor, "Ceil": torch.ceil, "Round": torch.round}  # Round: half to even, as ONNX
#: Piecewise-constant or boolean-valued: no gradient.
NO_GRADIENT = {"Sign": torch.sign, "IsNaN": torch.isnan}


def _unary(fn, defaults):
    def run(ctx, node, inputs):
        values = [
            node.attrs.get(name, default) if isinstance(default, str) else float(node.attrs.get(name, default))
            for name, default in defaults.items()
        ]
        return [fn(inputs[0], *values)]

    return run


for _name, (_fn, _defaults) in UNARY.items():
    op(_name, stacked=elementwise)(_unary(_fn, _defaults))
for _name, _fn in STRAIGHT_THROUGH.items():
    op(_name, stacked=elementwise, gradient="straight_through")(_unary(_straight_through(_fn), {}))
for _name, _fn in NO_GRADIENT.items():
    op(_name, stacked=elementwise, gradient="none")(_unary(_fn, {}))


@op("IsInf", stacked=elementwise, gradient="none")
def _is_inf(ctx, node, inputs):
    x = inputs[0]
    positive, negative = bool(node.attrs.get("detect_positive", 1)), bool(node.attrs.get("detect_negative", 1))
    return [(torch.isposinf(x) & positive) | (torch.isneginf(x) & negative)]


# --- softmax family -----------------------------------------------------------------------------------


def _hardmax(x, axis):
    """1 at the first maximum along `axis`, 0 elsewhere."""
    index = x.argmax(dim=axis, keepdim=True)
    return torch.zeros_like(x).scatter(axis, index, 1.0)


_SOFTMAX = {"Softmax": torch.softmax, "LogSoftmax": torch.log_softmax, "Hardmax": _hardmax}


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


op("Softmax", "LogSoftmax", stacked=_stacked_softmax)(_softmax)
op("Hardmax", stacked=_stacked_softmax, gradient="none")(_softmax)
