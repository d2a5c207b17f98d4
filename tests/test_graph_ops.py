"""The converter's op table, op by op, against onnxruntime (issue 11: converter coverage).

For every case of tests/graph_op_cases.py (one or more per operator) the one-node ONNX model is converted
with `graph_from_onnx` and run with its own weights; onnxruntime runs the same model. Checked per case:

- forward: the converted graph's output equals onnxruntime's (same shape and kind; floats to 2e-4);
- one gradient step: the gradient reaching the dense layer before the op is finite, non-zero where the
  table says the op has a gradient ("exact" / "straight_through") and zero where it says "none"; a step
  along it keeps the output finite;
- the stacked (vmap-free) runner, where the op has a stacked rule: K = 2 models at once equal each model
  run alone.

And for the table as a whole: every op in it has a case (so no op goes untested), and every entry names
an operator that exists in the ONNX specification (onnx.defs) at the domain it is registered under.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mia_audit.shadows.graph import NotStackable, entries, run_stacked
from mia_audit.shadows.graph.registry import lookup
from mia_audit.shadows.onnx_import import graph_from_onnx
from tests.graph_op_cases import CASES, Case, build

BY_ID = {case.id: case for case in CASES}


def _ours(entry) -> bool:
    """Entries of the converter's own op modules (the defenses register a training-only dropout op)."""
    return entry.module.startswith("mia_audit.shadows.graph")


@pytest.fixture(scope="session")
def converted() -> dict:
    """Every case built, run by onnxruntime and converted once: id -> (graph, weights, running, expected)
    or the exception the conversion raised."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    results: dict = {}
    for case in CASES:
        try:
            proto = build(case)
            session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            expected = session.run([case.output], {"X": case.x})[0]
            if case.out_type == "zipmap":  # {label: probability} per row, read in sorted label order
                expected = np.array([[row[key] for key in sorted(row)] for row in expected], dtype=np.float32)
            graph, original, running = graph_from_onnx(proto=proto, output_name=case.output, output_kind="logits", n_outputs=None)
            results[case.id] = (graph, original, running, np.asarray(expected))
        except Exception as error:  # noqa: BLE001 - reported by the case's own test
            results[case.id] = error
    return results


def _get(converted: dict, case: Case):
    outcome = converted[case.id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def test_every_op_in_the_table_has_a_case():
    table = {entry.key for entry in entries() if _ours(entry)}
    tested = {case.key for case in CASES}
    assert table - tested == set(), "ops without a test case"
    assert tested - table == set(), "cases for ops that are not in the table"


@pytest.mark.parametrize("entry", [e for e in entries() if _ours(e)], ids=lambda e: e.key)
def test_each_entry_is_an_onnx_operator(entry):
    assert onnx.defs.has(entry.name, entry.domain), f"{entry.key} is not in the ONNX specification"
    assert entry.reference.startswith("https://onnx.ai/onnx/operators/onnx_")
    assert entry.gradient in ("exact", "straight_through", "none")
    assert (entry.run is None) == (entry.lower is not None)


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_forward_equals_onnxruntime(converted, case_id):
    case = BY_ID[case_id]
    graph, original, running, expected = _get(converted, case)
    with torch.no_grad():
        got, _ = graph.run(original, running, torch.from_numpy(case.x), training=False)
    got = got.numpy()
    assert got.shape == expected.shape
    assert got.dtype.kind == expected.dtype.kind, f"{got.dtype} vs onnxruntime's {expected.dtype}"
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_one_gradient_step(converted, case_id):
    case = BY_ID[case_id]
    graph, original, running, _ = _get(converted, case)
    kind = lookup(case.key).gradient
    params = {name: value.clone().requires_grad_(True) for name, value in original.items()}
    x = torch.from_numpy(case.x)
    out, _ = graph.run(params, running, x, training=False)
    if not out.is_floating_point() or not out.requires_grad:
        assert kind == "none" or not out.is_floating_point(), "a floating-point output with no gradient"
        return
    direction = torch.from_numpy(np.random.default_rng(0).standard_normal(tuple(out.shape))).to(out.dtype)
    (torch.nan_to_num(out) * direction).sum().backward()
    grads = [p.grad for p in params.values() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    total = sum(float(g.abs().sum()) for g in grads)
    if kind == "none":
        assert total == 0.0
        return
    assert total > 0.0, f"{case.key} is documented with a gradient ({kind}) but none reaches the layer before it"
    with torch.no_grad():
        stepped = {name: p - 0.01 * p.grad if p.grad is not None else p for name, p in params.items()}
        after, _ = graph.run(stepped, running, x, training=False)
    assert torch.isfinite(after).all() or not torch.isfinite(out).all()
    assert not torch.equal(after, out.detach())


STACKED = [c.id for c in CASES if c.stackable and lookup(c.key).stacked is not None]


@pytest.mark.parametrize("case_id", STACKED)
def test_stacked_runner_equals_each_model_alone(converted, case_id):
    case = BY_ID[case_id]
    graph, original, running, _ = _get(converted, case)
    draws = [original, {name: value * 1.001 for name, value in original.items()}]
    stacked = {name: torch.stack([d[name] for d in draws]) for name in original}
    x = torch.from_numpy(case.x)
    try:
        together = run_stacked(graph, stacked, x, x_stacked=False)
        per_model_x = torch.stack([x, x * 0.999])
        together_own_x = run_stacked(graph, stacked, per_model_x, x_stacked=True)
    except NotStackable as error:
        pytest.fail(f"{case.key} has a stacked rule but the stacked runner refused this case: {error}")
    alone = torch.stack([graph.run(d, running, x, training=False)[0] for d in draws])
    alone_own_x = torch.stack([graph.run(d, running, per_model_x[k], training=False)[0] for k, d in enumerate(draws)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(together_own_x, alone_own_x, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_shape_arithmetic_stays_unstacked_in_the_stacked_runner():
    """Shape → Concat → Reshape (how dynamo writes a flatten): the shape vector is not stacked, so the
    Reshape keeps its stacked rule and the whole graph runs without vmap."""
    case = Case(key="Concat", id="shape-concat", x=np.ones((4, 2, 3), np.float32), nodes=[
        onnx.helper.make_node("Shape", ["h"], ["s"], end=1),
        onnx.helper.make_node("Concat", ["s", "minus_one"], ["target"], axis=0),
        onnx.helper.make_node("Reshape", ["h", "target"], ["Y"]),
    ], constants={"minus_one": np.array([-1], np.int64)})
    graph, original, running = graph_from_onnx(proto=build(case), output_name="Y", output_kind="logits", n_outputs=None)
    stacked = {name: torch.stack([value, 2 * value]) for name, value in original.items()}
    together = run_stacked(graph, stacked, torch.from_numpy(case.x), x_stacked=False)
    assert together.shape == (2, 4, 6)
    torch.testing.assert_close(together[1], 2 * together[0])
