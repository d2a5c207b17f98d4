"""One-node ONNX models, one or more per operator of the converter's op table, for tests/test_graph_ops.py.

Every case is X → MatMul(X, I) → [helper nodes] → the op under test → Y. The identity MatMul is a dense
layer the converter re-draws (so every case converts) and passes X through exactly (so integer-valued or
domain-limited inputs reach the op unchanged); the gradient test reads the gradient on it. Attributes,
constants and inputs follow the ONNX operator documentation (https://onnx.ai/onnx/operators/); the
expected outputs are onnxruntime's, computed by the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper

ML = "ai.onnx.ml"
OPSET, ML_OPSET = 21, 3
_rng = np.random.default_rng(20261202)


def uniform(*shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return _rng.uniform(low, high, size=shape).astype(np.float32)


def integers(*shape: int, low: int = -2, high: int = 3) -> np.ndarray:
    return _rng.integers(low, high, size=shape).astype(np.float32)


@dataclass
class Case:
    key: str  # the op-table key of the operator under test ("Gemm", "ai.onnx.ml:Scaler")
    id: str
    x: np.ndarray
    nodes: list  # onnx NodeProto, the last one producing "Y" (or `output`)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    out_type: int | str = TensorProto.FLOAT  # or "zipmap": seq(map(int64, float))
    opset: int = OPSET
    output: str = "Y"
    stackable: bool = True  # whether the stacked runner is expected to take this variant


CASES: list[Case] = []


def add(op: str, *, x: np.ndarray, inputs=("h",), consts=None, domain: str = "", out=TensorProto.FLOAT,
        opset: int = OPSET, pre=(), tag: str = "", outputs=("Y",), output: str = "Y", stackable: bool = True, **attrs) -> None:
    key = op if not domain else f"{domain}:{op}"
    node = helper.make_node(op, list(inputs), list(outputs), domain=domain or None, **attrs)
    ident = f"{key}-{tag}" if tag else key
    n = sum(c.id.split("#")[0] == ident for c in CASES)
    CASES.append(Case(key=key, id=ident if n == 0 else f"{ident}#{n}", x=x, nodes=[*pre, node], constants=dict(consts or {}),
                      out_type=out, opset=opset, output=output, stackable=stackable))


def pre(op: str, inputs, output: str, **attrs):
    return helper.make_node(op, list(inputs), [output], **attrs)


def i64(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def f32(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# --- element-wise unary math and activations -------------------------------------------------------------
X = uniform(4, 6)
for name in ["Sin", "Cos", "Atan", "Sinh", "Cosh", "Asinh", "Exp", "Neg", "Abs", "Erf", "Identity", "Relu", "Sigmoid",
             "Tanh", "Softsign", "Softplus", "Mish", "HardSwish", "Selu", "Floor", "Ceil", "Round", "Sign"]:
    add(name, x=X)
add("Tan", x=uniform(4, 6, low=-1.2, high=1.2))
for name in ["Asin", "Acos", "Atanh"]:
    add(name, x=uniform(4, 6, low=-0.9, high=0.9))
add("Acosh", x=uniform(4, 6, low=1.1, high=3.0))
for name in ["Log", "Sqrt", "Reciprocal"]:
    add(name, x=uniform(4, 6, low=0.2, high=3.0))
add("LeakyRelu", x=X, alpha=0.1)
add("Elu", x=X, alpha=0.5)
add("Celu", x=X, alpha=2.0)
add("Selu", x=X, alpha=1.5, gamma=1.1, tag="attrs")
add("ThresholdedRelu", x=X, alpha=0.5)
add("HardSigmoid", x=X, alpha=0.3, beta=0.4)
add("Shrink", x=X, bias=0.2, lambd=0.6)
add("Gelu", x=X)
add("Gelu", x=X, approximate="tanh", tag="tanh")
add("IsNaN", x=X, inputs=["logged"], pre=[pre("Log", ["h"], "logged")], out=TensorProto.BOOL)
add("IsInf", x=integers(4, 6), inputs=["ratio"], consts={"zero": f32(0.0)}, pre=[pre("Div", ["h", "zero"], "ratio")],
    out=TensorProto.BOOL)
add("IsInf", x=integers(4, 6), inputs=["ratio"], consts={"zero": f32(0.0)}, pre=[pre("Div", ["h", "zero"], "ratio")],
    out=TensorProto.BOOL, detect_negative=0, tag="positive")
for name in ["Softmax", "LogSoftmax", "Hardmax"]:
    add(name, x=X)
    add(name, x=uniform(3, 4, 5), axis=1, tag="axis1", stackable=False)
    add(name, x=uniform(3, 4, 5), axis=1, opset=11, tag="opset11-coerced", stackable=False)

# --- broadcasting arithmetic, comparisons, logic, Where, Clip -------------------------------------------
C6 = uniform(6, low=0.5, high=2.0)
for name in ["Add", "Sub", "Mul", "Div"]:
    add(name, x=X, inputs=["h", "c"], consts={"c": C6})
add("Pow", x=uniform(4, 6, low=0.3, high=2.0), inputs=["h", "c"], consts={"c": C6})
add("Pow", x=X, inputs=["h", "c"], consts={"c": f32(2.0)}, tag="square")
for name in ["Max", "Min", "Sum", "Mean"]:
    add(name, x=X, inputs=["h", "c", "d"], consts={"c": uniform(6), "d": uniform(4, 1)})
add("PRelu", x=X, inputs=["h", "slope"], consts={"slope": uniform(6, low=0.05, high=0.5)})
add("Mod", x=X, inputs=["h", "c"], consts={"c": C6}, fmod=1)
add("Where", x=X, inputs=["positive", "h", "c"], consts={"zero": f32(0.0), "c": uniform(6)},
    pre=[pre("Greater", ["h", "zero"], "positive")])
INTS = integers(4, 6)
for name in ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]:
    add(name, x=INTS, inputs=["h", "c"], consts={"c": integers(6)}, out=TensorProto.BOOL)
_BOOLS = [pre("Greater", ["h", "zero"], "a"), pre("Less", ["h", "one"], "b")]
for name in ["And", "Or", "Xor"]:
    add(name, x=INTS, inputs=["a", "b"], consts={"zero": f32(0.0), "one": f32(1.0)}, pre=_BOOLS, out=TensorProto.BOOL)
add("Not", x=INTS, inputs=["a"], consts={"zero": f32(0.0)}, pre=_BOOLS[:1], out=TensorProto.BOOL)
add("Clip", x=X, inputs=["h", "low", "high"], consts={"low": f32(-0.5), "high": f32(1.0)})
add("Clip", x=X, inputs=["h", "", "high"], consts={"high": f32(0.3)}, tag="max-only")

# --- linear algebra ------------------------------------------------------------------------------------
add("Gemm", x=X, inputs=["h", "b", "c"], consts={"b": uniform(5, 6), "c": uniform(5)}, transB=1)
add("Gemm", x=X, inputs=["h", "b", "c"], consts={"b": uniform(6, 5), "c": uniform(1, 5)}, alpha=0.5, beta=2.0, tag="scaled")
add("Gemm", x=uniform(6, 4), inputs=["h", "b"], consts={"b": uniform(6, 3)}, transA=1, tag="transA", stackable=False)
add("MatMul", x=X, inputs=["h", "w"], consts={"w": uniform(6, 3)})
add("MatMul", x=uniform(2, 4, 6), inputs=["h", "w"], consts={"w": uniform(6, 3)}, tag="batched")
add("Einsum", x=X, inputs=["h", "w"], consts={"w": uniform(6, 3)}, equation="ij,jk->ik", stackable=False)
add("Einsum", x=X, inputs=["h", "w"], consts={"w": uniform(4, 6)}, equation="bi,bi->b", tag="rowdot", stackable=False)

# --- reductions ------------------------------------------------------------------------------------------
X3 = uniform(3, 4, 5)
POS3 = uniform(3, 4, 5, low=0.5, high=1.5)
for name in ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare",
             "ReduceLogSumExp", "ReduceProd", "ReduceLogSum"]:
    x = POS3 if name in ("ReduceProd", "ReduceLogSum") else X3
    add(name, x=x, inputs=["h", "axes"], consts={"axes": i64(1)})
    add(name, x=x, inputs=["h", "axes"], consts={"axes": i64(0, -1)}, keepdims=0, tag="two-axes")
add("ReduceSum", x=X3, keepdims=0, tag="all")
add("ReduceSum", x=X3, inputs=["h", "axes"], consts={"axes": np.zeros(0, np.int64)}, noop_with_empty_axes=1, tag="noop")
add("ReduceMean", x=X3, axes=[2], opset=13, tag="opset13-attribute")
add("ArgMax", x=X3, axis=1, keepdims=0, out=TensorProto.INT64)
add("ArgMin", x=X3, axis=-1, out=TensorProto.INT64)
add("ArgMax", x=integers(3, 4, 5), axis=2, select_last_index=1, out=TensorProto.INT64, tag="last")

# --- shapes and indexing -----------------------------------------------------------------------------------
add("Reshape", x=X3, inputs=["h", "s"], consts={"s": i64(3, 20)})
add("Reshape", x=X3, inputs=["h", "s"], consts={"s": i64(0, -1)}, tag="zero-minus-one")
add("Flatten", x=X3, axis=2)
add("Transpose", x=X3, perm=[2, 0, 1])
add("Squeeze", x=uniform(3, 1, 5), inputs=["h", "a"], consts={"a": i64(1)})
add("Squeeze", x=uniform(3, 1, 5), tag="all-ones")
add("Unsqueeze", x=X, inputs=["h", "a"], consts={"a": i64(0, -1)})
add("Concat", x=X3, inputs=["h", "c"], consts={"c": uniform(3, 2, 5)}, axis=1)
add("Concat", x=X3, inputs=["h", "h"], axis=-1, tag="self")
add("Split", x=X3, inputs=["h", "s"], consts={"s": i64(2, 3)}, axis=-1, outputs=["Y0", "Y"])
add("Split", x=X3, axis=2, num_outputs=2, outputs=["Y0", "Y"], tag="num-outputs")  # 5 → 3 + 2
add("Expand", x=uniform(3, 1, 5), inputs=["h", "s"], consts={"s": i64(2, 3, 4, 5)})
add("Tile", x=X3, inputs=["h", "r"], consts={"r": i64(2, 1, 3)})
add("Pad", x=X3, inputs=["h", "p", "v"], consts={"p": i64(0, 1, 2, 1, -1, 0), "v": f32(0.5)})
for mode in ["edge", "reflect", "wrap"]:
    add("Pad", x=X3, inputs=["h", "p"], consts={"p": i64(0, 2, 1, 0, 1, 3)}, mode=mode, tag=mode)
add("Pad", x=X3, inputs=["h", "p", "", "a"], consts={"p": i64(1, 2), "a": i64(-1)}, tag="axes")
add("Shape", x=X3, start=1, out=TensorProto.INT64)
add("Size", x=X3, out=TensorProto.INT64)
add("Gather", x=X3, inputs=["h", "i"], consts={"i": i64(0, 2, 1, -1).reshape(2, 2)}, axis=1)
add("Gather", x=X3, inputs=["h", "i"], consts={"i": i64(2).reshape(())}, axis=0, tag="scalar-index")
add("GatherElements", x=X3, inputs=["h", "i"], consts={"i": _rng.integers(-4, 4, size=(3, 2, 5))}, axis=1)
add("Slice", x=X3, inputs=["h", "s", "e", "a", "t"], consts={"s": i64(1, 0), "e": i64(3, 9), "a": i64(1, 2), "t": i64(1, 2)})
add("Slice", x=X3, inputs=["h", "s", "e", "a", "t"], consts={"s": i64(-1), "e": i64(-(2**63)), "a": i64(2), "t": i64(-2)},
    tag="negative-step")
add("Cast", x=X, to=TensorProto.INT64, out=TensorProto.INT64)
add("Cast", x=X, to=TensorProto.DOUBLE, out=TensorProto.DOUBLE, tag="double")
add("CastLike", x=X, inputs=["h", "like"], consts={"like": np.zeros(1, np.float64)}, out=TensorProto.DOUBLE)
add("Constant", x=X, inputs=[], outputs=["k"], value=helper.make_tensor("k", TensorProto.FLOAT, [6], uniform(6).tolist()))
CASES[-1].nodes.append(pre("Add", ["h", "k"], "Y"))
add("ConstantOfShape", x=X, inputs=["shape"], pre=[pre("Shape", ["h"], "shape")],
    value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.5]))
add("Range", x=X, inputs=["zero", "size", "two"], consts={"zero": i64(0).reshape(()), "two": i64(2).reshape(())},
    pre=[pre("Size", ["h"], "size")], out=TensorProto.INT64)
add("OneHot", x=integers(4, 3, low=-1, high=6), inputs=["index", "depth", "values"],
    consts={"depth": i64(5), "values": f32(-1.0, 2.0)}, pre=[pre("Cast", ["h"], "index", to=TensorProto.INT64)])
add("OneHot", x=integers(4, 3, low=0, high=5), inputs=["index", "depth", "values"],
    consts={"depth": i64(5), "values": f32(0.0, 1.0)}, pre=[pre("Cast", ["h"], "index", to=TensorProto.INT64)], axis=1,
    tag="axis1")
add("Dropout", x=X, inputs=["h", "ratio"], consts={"ratio": f32(0.5).reshape(())})
add("CumSum", x=X3, inputs=["h", "a"], consts={"a": i64(1)})
add("CumSum", x=X3, inputs=["h", "a"], consts={"a": i64(-1)}, exclusive=1, reverse=1, tag="exclusive-reverse")

# --- convolution, pooling, normalisation ----------------------------------------------------------------
IMG = uniform(2, 3, 8, 8)
SEQ = uniform(2, 3, 10)
add("Conv", x=IMG, inputs=["h", "w", "b"], consts={"w": uniform(4, 3, 3, 3), "b": uniform(4)}, pads=[1, 1, 1, 1], strides=[2, 2])
add("Conv", x=IMG, inputs=["h", "w"], consts={"w": uniform(6, 1, 3, 3)}, group=3, dilations=[2, 2], tag="grouped-dilated")
add("Conv", x=IMG, inputs=["h", "w"], consts={"w": uniform(4, 3, 3, 3)}, auto_pad="SAME_UPPER", strides=[2, 2], tag="same-upper")
add("Conv", x=IMG, inputs=["h", "w"], consts={"w": uniform(4, 3, 2, 2)}, pads=[0, 1, 1, 0], tag="asymmetric")
add("Conv", x=SEQ, inputs=["h", "w", "b"], consts={"w": uniform(4, 3, 3), "b": uniform(4)}, pads=[1, 1], tag="1d")
add("Conv", x=uniform(1, 2, 4, 4, 4), inputs=["h", "w"], consts={"w": uniform(3, 2, 2, 2, 2)}, tag="3d")
add("MaxPool", x=IMG, kernel_shape=[2, 2], strides=[2, 2])
add("MaxPool", x=IMG, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, tag="ceil-padded")
add("MaxPool", x=IMG, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER", tag="same-lower")
add("MaxPool", x=SEQ, kernel_shape=[3], strides=[2], tag="1d")
add("AveragePool", x=IMG, kernel_shape=[2, 2], strides=[2, 2])
add("AveragePool", x=IMG, kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1, tag="include-pad")
add("AveragePool", x=IMG, kernel_shape=[3, 3], pads=[1, 1, 1, 1], tag="exclude-pad")
add("AveragePool", x=IMG, kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER", tag="same-upper")
add("AveragePool", x=IMG, kernel_shape=[2, 2], pads=[0, 0, 1, 1], tag="asymmetric")
add("AveragePool", x=SEQ, kernel_shape=[3], strides=[1], tag="1d")
add("LpPool", x=IMG, kernel_shape=[2, 2], strides=[2, 2], p=2)
add("GlobalAveragePool", x=IMG)
add("GlobalMaxPool", x=IMG)
add("GlobalLpPool", x=IMG, p=3)
add("BatchNormalization", x=uniform(4, 3, 5), inputs=["h", "s", "b", "m", "v"],
    consts={"s": uniform(3), "b": uniform(3), "m": uniform(3), "v": uniform(3, low=0.5, high=2.0)}, epsilon=1e-3)
add("LayerNormalization", x=X3, inputs=["h", "s", "b"], consts={"s": uniform(5), "b": uniform(5)})
add("LayerNormalization", x=X3, inputs=["h", "s"], consts={"s": uniform(4, 5)}, axis=1, tag="axis1")
add("InstanceNormalization", x=IMG, inputs=["h", "s", "b"], consts={"s": uniform(3), "b": uniform(3)})
add("GroupNormalization", x=uniform(2, 4, 3, 3), inputs=["h", "s", "b"], consts={"s": uniform(4), "b": uniform(4)},
    num_groups=2)
add("LpNormalization", x=X, axis=1, p=1)
add("LpNormalization", x=X3, axis=-1, p=2, tag="l2")
add("MeanVarianceNormalization", x=IMG)
add("MeanVarianceNormalization", x=IMG, axes=[2, 3], tag="spatial")
add("LRN", x=uniform(2, 5, 3, 3), size=3, alpha=0.01, beta=0.75, bias=1.5)

# --- ai.onnx.ml: preprocessing and linear models -------------------------------------------------------------
POS = uniform(4, 6, low=0.1, high=2.0)
add("Scaler", domain=ML, x=X, offset=uniform(6).tolist(), scale=uniform(6).tolist())
add("Scaler", domain=ML, x=X, offset=[0.5], scale=[2.0], tag="scalar")
for norm in ["L1", "L2", "MAX"]:
    add("Normalizer", domain=ML, x=POS if norm == "MAX" else X, norm=norm, tag=norm)
add("Imputer", domain=ML, x=integers(4, 6), imputed_value_floats=uniform(6).tolist(), replaced_value_float=0.0)
add("Imputer", domain=ML, x=X, inputs=["logged"], pre=[pre("Log", ["h"], "logged")], imputed_value_floats=[7.0],
    replaced_value_float=float("nan"), tag="nan")
add("Binarizer", domain=ML, x=X, threshold=0.5)
add("OneHotEncoder", domain=ML, x=integers(4, 2, low=0, high=5), cats_int64s=[0, 1, 3], zeros=1)
add("ArrayFeatureExtractor", domain=ML, x=X, inputs=["h", "i"], consts={"i": i64(0, 3, 5)})
add("FeatureVectorizer", domain=ML, x=X, inputs=["h", "n"], pre=[pre("Neg", ["h"], "n")], inputdimensions=[6, 6])
add("ZipMap", domain=ML, x=X, inputs=["p"], pre=[pre("Softmax", ["h"], "p")], classlabels_int64s=[5, 3, 7, 0, 2, 1],
    out="zipmap")
W3, B3 = uniform(3, 6), uniform(3)
for post in ["SOFTMAX", "LOGISTIC", "NONE"]:
    add("LinearClassifier", domain=ML, x=X, outputs=["label", "Y"], coefficients=W3.ravel().tolist(), intercepts=B3.tolist(),
        classlabels_ints=[0, 1, 2], post_transform=post, multi_class=1, tag=post.lower())
W1, B1 = uniform(1, 6), uniform(1)
for post in ["LOGISTIC", "NONE", "SOFTMAX"]:
    add("LinearClassifier", domain=ML, x=X, outputs=["label", "Y"], coefficients=W1.ravel().tolist(), intercepts=B1.tolist(),
        classlabels_ints=[0, 1], post_transform=post, tag=f"one-row-{post.lower()}")
    add("LinearClassifier", domain=ML, x=X, outputs=["label", "Y"], coefficients=np.r_[-W1, W1].ravel().tolist(),
        intercepts=[-float(B1[0]), float(B1[0])], classlabels_ints=[0, 1], post_transform=post, tag=f"tied-{post.lower()}")
add("LinearClassifier", domain=ML, x=X, outputs=["Y", "scores"], coefficients=W3.ravel().tolist(), intercepts=B3.tolist(),
    classlabels_ints=[4, 8, 9], post_transform="SOFTMAX", out=TensorProto.INT64, tag="label")
add("LinearClassifier", domain=ML, x=X, outputs=["Y", "scores"], coefficients=W1.ravel().tolist(), intercepts=B1.tolist(),
    classlabels_ints=[3, 5], post_transform="LOGISTIC", out=TensorProto.INT64, tag="one-row-label")
add("LinearRegressor", domain=ML, x=X, coefficients=uniform(2, 6).ravel().tolist(), intercepts=uniform(2).tolist(), targets=2)


def build(case: Case):
    """The ONNX ModelProto of a case: X → MatMul(X, I) → case nodes → output."""
    d = case.x.shape[-1]
    constants = {"eye": np.eye(d, dtype=np.float32), **case.constants}
    initializers = [helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape, v.ravel().tolist())
                    for name, v in constants.items()]
    nodes = [helper.make_node("MatMul", ["X", "eye"], ["h"]), *case.nodes]
    if case.out_type == "zipmap":
        value_type = helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
        output = helper.make_value_info(case.output, value_type)
    else:
        output = helper.make_tensor_value_info(case.output, case.out_type, None)
    graph = helper.make_graph(nodes, case.id, [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(case.x.shape))],
                              [output], initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset), helper.make_opsetid(ML, ML_OPSET)])
