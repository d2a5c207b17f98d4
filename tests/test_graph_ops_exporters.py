"""Both torch ONNX exporters' forms of common layers convert (issue 11: converter coverage).

The same module gives different graphs by exporter (notes/prep-11.md): dynamo writes native Mish and
Celu, a Greater/Where threshold branch for Softplus and folds an eval-mode BatchNorm into the Gemm; the
legacy exporter (also what mia-audit uses for TorchScript models) decomposes Mish, writes Softshrink as
Greater/Less/Where and Hardtanh as Clip. One module with every torch activation side by side, and one
with 1-D and 2-D convolution, pooling and normalisation layers, are exported with each exporter; the
converted graph with the model's own weights must equal onnxruntime on the exported file, the
conversion must find the training head (the logits before the final LogSoftmax), and none of the
module's learned parameters may be kept as a constant (a GroupNorm's scale and shift are exported as a
Mul and an Add after an InstanceNormalization: they must be re-drawn too).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mia_audit.shadows.onnx_import import graph_from_onnx
from tests.model_factories import export_torch_onnx


class _Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = [
    nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(0.2), nn.PReLU(), nn.ELU(0.7), nn.SELU(), nn.CELU(1.5), nn.GELU(),
    nn.GELU(approximate="tanh"), nn.SiLU(), nn.Mish(), nn.Softplus(), nn.Softplus(beta=2.0), nn.Softsign(), nn.Tanh(),
    nn.Sigmoid(), nn.Hardtanh(-0.5, 0.8), nn.Hardsigmoid(), nn.Hardswish(), nn.LogSigmoid(), nn.Softshrink(0.3),
    nn.Hardshrink(0.4), nn.Tanhshrink(), _Sin(),
]


class Activations(nn.Module):
    """Linear → every activation on the same hidden vector → concatenated → LayerNorm → Linear → LogSoftmax."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(8, 6)
        self.acts = nn.ModuleList(ACTIVATIONS)
        self.norm = nn.LayerNorm(6 * len(ACTIVATIONS))
        self.last = nn.Linear(6 * len(ACTIVATIONS), 3)

    def forward(self, x):
        h = self.first(x)
        return torch.log_softmax(self.last(self.norm(torch.cat([act(h) for act in self.acts], dim=1))), dim=1)


class Convolutions(nn.Module):
    """64 columns → (1, 8, 8) image: Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d; → (4, 16) sequence: Conv1d,
    AvgPool1d, InstanceNorm1d, GroupNorm; Dropout; Linear → LogSoftmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv1d = nn.Conv1d(4, 6, 3, padding=1)
        self.instance = nn.InstanceNorm1d(6, affine=True)
        self.group = nn.GroupNorm(2, 6)
        self.drop = nn.Dropout(0.3)
        self.last = nn.Linear(6 * 4 + 4 * 2 * 2, 3)

    def forward(self, x):
        img = x.reshape(-1, 1, 8, 8)
        h = torch.relu(self.bn(self.conv2d(img)))
        pooled = nn.functional.avg_pool2d(nn.functional.max_pool2d(h, 2), 2)  # (B, 4, 2, 2)
        seq = h.mean(dim=2)  # (B, 4, 8)
        s = self.group(self.instance(torch.tanh(self.conv1d(seq))))
        s = nn.functional.avg_pool1d(s, 2)  # (B, 6, 4)
        flat = torch.cat([s.flatten(1), pooled.flatten(1)], dim=1)
        return torch.log_softmax(self.last(self.drop(flat)), dim=1)


@pytest.fixture(scope="module")
def exported() -> dict:
    generator = torch.Generator().manual_seed(11)
    modules = {}
    for name, factory, features in (("activations", Activations, 8), ("convolutions", Convolutions, 64)):
        module = factory()  # weights drawn below from the seeded generator
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 0.6 - 0.3)
            for b in module.buffers():
                if b.is_floating_point():
                    b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
        module.eval()
        x = (torch.rand((16, features), generator=generator) * 4 - 2).numpy()
        modules[name] = (module, x)
    return modules


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", ["activations", "convolutions"])
def test_exported_graph_converts_and_equals_onnxruntime(exported, tmp_path, name, exporter):
    module, x = exported[name]
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        used = export_torch_onnx(model=module, path=path, n_features=x.shape[1], exporter=exporter)
    assert used == exporter
    proto = onnx.load(str(path))
    output = proto.graph.output[0].name
    graph, original, running = graph_from_onnx(proto=proto, output_name=output, output_kind="logits", n_outputs=3)
    expected = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        [output], {proto.graph.input[0].name: x}
    )[0]
    with torch.no_grad():
        got, _ = graph.run(original, running, torch.from_numpy(x), training=False)
        reference = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.numpy(), reference, rtol=1e-4, atol=1e-4)
    assert graph.head == "log_softmax"
    kept = [value.double().numpy().ravel() for value in graph.constants.values() if value.is_floating_point()]
    for pname, parameter in module.named_parameters():  # no learned weight is kept from the model
        values = np.sort(parameter.detach().double().numpy().ravel())
        assert not any(c.size == values.size and np.allclose(np.sort(c), values, atol=1e-6) for c in kept), pname
