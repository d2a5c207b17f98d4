"""A trainable, functional copy of a classifier graph: ONNX-style nodes interpreted with torch ops.

A `TrainableGraph` is the architecture of the audited model without its weights. The package is split by job:

- `nodes`: the vocabulary (GraphNode, ParamSpec, RunContext, UnsupportedGraph, NotStackable);
- `trainable`: the IR — `TrainableGraph` with its parameter initialisation and functional `run`;
- `registry`: the op table, one entry per ONNX operator (`@op("Gemm", stacked=..., weights=...)`) with its
  stacked rule, weight rule, gradient kind and specification page; an op outside the table makes the graph
  untrainable and is named in the reason step 5 is skipped;
- `ops_math`, `ops_unary`, `ops_reduce`, `ops_nn`, `ops_shape`, `ops_ml`: the op implementations by family
  (importing them fills the table); `ops_ml` holds the ai.onnx.ml operators scikit-learn converters emit;
- `stacking`, `stacked`: evaluating K models at once with stacked parameters (`run_stacked`).
"""

from mia_audit.shadows.graph import ops_math, ops_ml, ops_nn, ops_reduce, ops_shape, ops_unary  # noqa: F401 — fill the op table
from mia_audit.shadows.graph.nodes import GraphNode, Head, NotStackable, ParamSpec, UnsupportedGraph, uniform_bound
from mia_audit.shadows.graph.registry import entries, op, supported_ops
from mia_audit.shadows.graph.stacked import run_stacked
from mia_audit.shadows.graph.trainable import TrainableGraph

__all__ = [
    "GraphNode",
    "Head",
    "NotStackable",
    "ParamSpec",
    "TrainableGraph",
    "UnsupportedGraph",
    "entries",
    "op",
    "run_stacked",
    "supported_ops",
    "uniform_bound",
]
