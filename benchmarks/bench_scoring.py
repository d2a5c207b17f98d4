"""Scoring overhead: mia-audit's query step vs a bare onnxruntime `session.run`, on the same 100k-row batch.

Reports ratios taken in one run (medians of interleaved repeats), never absolute pass/fail times:

- adapter / bare:   `ModelAdapter.predict_raw` (batched, dtype handling) vs one `session.run` call
- query / bare:     adapter + output normalisation + every per-record signal in float64 (step 3 as a whole)

    python benchmarks/bench_scoring.py [--rows 100000] [--repeats 7]
Target: adapter / bare ≤ 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mia_audit.models import load_model, normalize_outputs
from mia_audit.data.signals import compute_signals
from mia_audit.evaluation.query import resolve_batch_size

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "samples" / "digits_mlp.onnx"


def batch(rows: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(ROOT / "samples" / "nonmembers.csv", delimiter=",", skiprows=1)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(data), rows)
    x = np.clip(data[pick, :-1] + rng.normal(0, 0.5, (rows, data.shape[1] - 1)), 0, 16)
    return x.astype(np.float32), data[pick, -1].astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the tool's automatic choice")
    args = parser.parse_args()
    x, y = batch(args.rows)
    args.batch_size = resolve_batch_size(requested=args.batch_size, record_shape=x.shape[1:], itemsize=x.itemsize)

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    adapter = load_model(path=MODEL)

    def bare() -> None:
        session.run(None, {input_name: x})

    def adapter_only() -> None:
        adapter.predict_raw(x, batch_size=args.batch_size)

    def query_step() -> None:
        raw = adapter.predict_raw(x, batch_size=args.batch_size)
        outputs, kind = normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="bench")
        compute_signals(outputs=outputs, output_kind=kind, labels=y)

    timings: dict[str, list[float]] = {"bare": [], "adapter": [], "query": []}
    # Interleaved rounds; inside a round each variant is warmed up once right before it is timed, because
    # two onnxruntime sessions on 2 cores disturb each other: the previous session's worker threads keep
    # spinning for a moment after its run and would be billed to whichever variant runs next.
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("adapter", adapter_only), ("query", query_step)):
            fn()
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in timings.items()}
    print(f"rows={args.rows} batch_size={args.batch_size} repeats={args.repeats} model={MODEL.name}")
    for name, value in median.items():
        print(f"  {name:8s} median {value * 1000:8.1f} ms")
    print(f"ratio adapter/bare = {median['adapter'] / median['bare']:.2f}  (target ≤ 1.3)")
    print(f"ratio query/bare   = {median['query'] / median['bare']:.2f}  (adapter + normalisation + float64 signals)")


if __name__ == "__main__":
    main()
