"""The dropout defense must reach a converted ONNX graph through the trainer (not only through `with_dropout`).

A GraphClassifier has no `nn.ReLU` modules, so module-based insertion finds nothing; the trainer has to ask
the graph to insert its own dropout nodes, or the "dropout" variant silently equals the undefended baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from mia_audit.defenses import parse_defenses
from mia_audit.defenses.graph_module import GraphClassifier
from mia_audit.defenses.trainer import TrainRecipe, make_training_data, train_with_plan
from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
from tests.conftest import SAMPLES, read_rows


def test_dropout_variant_of_the_sample_graph_has_dropout_after_each_hidden_relu():
    proto = load_onnx_proto(SAMPLES / "digits_mlp.onnx")
    graph, _, _ = graph_from_onnx(proto=proto, output_name=proto.graph.output[0].name, output_kind="logits",
                                  n_outputs=10)
    header, rows = read_rows(SAMPLES / "members.csv")
    label = header.index("label")
    x = np.array([[float(v) for j, v in enumerate(r) if j != label] for r in rows[:64]])
    y = np.array([int(r[label]) for r in rows[:64]])
    data = make_training_data(x=x, y=y, n_classes=10)
    plan = parse_defenses("dropout:0.5")[0].plan()
    module, report = train_with_plan(make_module=lambda: GraphClassifier(graph, seed=0), data=data, plan=plan,
                                     recipe=TrainRecipe(epochs=1), seed=0)
    # The sample is 64 → 256 → ReLU → 256 → ReLU → 10: two hidden activations, none after the output layer.
    assert len(report.dropout_sites) == 2 and all(site.startswith("after Relu") for site in report.dropout_sites)
    assert not report.notes
    batch = torch.as_tensor(x[:16], dtype=torch.float32)
    module.train()
    assert not torch.equal(module(batch), module(batch))  # stochastic while training
    module.eval()
    assert torch.equal(module(batch), module(batch))  # the identity at inference
