"""Graph conversion on the issue-11 model zoo: which models get shadows of their own architecture, and how
closely the converted graph (with the model's own weights) reproduces the model file.

For every zoo model (tests/zoo.py) it asks `make_shadow_source` for a shadow source with no recipe — what
step 5 does — and reports whether the graph converted (`onnx_graph` / `torchscript_via_onnx`) or why not,
the converted graph's operators, and the maximum absolute difference between the converted graph run with
the model's own weights and the model file run by its runtime (onnxruntime / torch.jit) on 200 members and
200 non-members. No shadow is trained here.

    PYTHONPATH=. python benchmarks/bench_convert.py [--names sk_logreg torch_mlp_sin_onnx] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mia_audit.models import load_model
from mia_audit.models.base import normalize_outputs
from mia_audit.shadows.clone import ShadowUnavailable, _torchscript_to_onnx, make_shadow_source
from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto


def _proto(model, path: Path, x: np.ndarray):
    if model.format_name == "onnx":
        return load_onnx_proto(path), model.output_name
    proto = _torchscript_to_onnx(module=model.module, example=np.asarray(x[:2], dtype=model.input_dtype))
    return proto, proto.graph.output[0].name


def convert_one(zoo_model) -> dict:
    model = load_model(path=zoo_model.path)
    split = zoo_model.split
    x = np.concatenate([split.x_members[:200], split.x_nonmembers[:200]]).astype(model.input_dtype)
    model.check_input(x[:2])  # as the audit does before step 5
    row: dict = {"model": zoo_model.name}
    _, kind = normalize_outputs(  # logits or probabilities, decided as the audit decides it
        raw=model.predict_raw(x, batch_size=256), output_kind="auto", native_kind=model.native_output_kind, source="zoo"
    )
    start = time.perf_counter()
    try:
        source = make_shadow_source(
            model=model, model_path=zoo_model.path, recipe=None, output_kind=kind,
            x_check=x, n_classes=split.n_classes, pool_x=x.astype(np.float64), calibration=None,
        )
    except ShadowUnavailable as error:
        row.update(source=None, reason=str(error).split(". Supply")[0])
        return row
    row["seconds"] = round(time.perf_counter() - start, 3)
    row["source"] = source.name
    graph = getattr(source, "graph", None)
    if graph is None:
        return row
    proto, output = _proto(model, zoo_model.path, x)
    _, original, running = graph_from_onnx(
        proto=proto, output_name=output, output_kind=source.output_kind, n_outputs=model.n_raw_outputs
    )
    with torch.no_grad():
        got, _ = graph.run(original, running, torch.from_numpy(x).to(graph.input_dtype), training=False)
    expected = model.predict_raw(x, batch_size=256)
    row["max_abs_difference"] = float(np.max(np.abs(got.double().numpy().reshape(len(x), -1) - expected.reshape(len(x), -1))))
    row["head"] = graph.head
    row["ops"] = sorted({node.op for node in graph.nodes})
    row["trainable_values"] = graph.n_parameters
    return row


def main() -> None:
    from tests.zoo import build_zoo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        zoo = build_zoo(directory=Path(folder), names=args.names)
        rows = [convert_one(model) for model in zoo.values()]
    converted = [r for r in rows if r.get("source") in ("onnx_graph", "torchscript_via_onnx")]
    for r in rows:
        if r.get("source"):
            print(f"{r['model']:32s} {r['source']:22s} head={r.get('head', '-'):13s} "
                  f"max|diff|={r.get('max_abs_difference', float('nan')):.2e}  {', '.join(r.get('ops', []))}")
        else:
            print(f"{r['model']:32s} not converted: {r['reason']}")
    print(f"converted through the graph: {len(converted)}/{len(rows)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
