"""The machine's fp32 matmul rate, and the rate today's shadow trainer reaches (issue 14: "shadows at the FLOP limit").

1. Reference: a 2048 × 2048 fp32 matmul (2 · 2048³ FLOPs) with torch on 1 thread and on every core
   (and numpy on the same sizes for comparison), median of `--repeats` runs after a warm-up.
2. With `--shadows`: today's `train_torch_shadows` on the sample's architecture (digits_mlp.onnx,
   64 → 256 → 256 → 10, converted to torch) and data (1,797 records), 16 shadows, a fixed number of epochs,
   with the trainer's own thread choice. FLOPs are counted as the trainer counts them
   (`torch_trainer.forward_flops`, torch's FLOP counter; a training step = 3 × forward): training =
   3 · forward · batch · steps · epochs · K, plus the two full evaluation passes at the end (2 · forward · N · K).
   Achieved GFLOP/s and its fraction of the 1-thread and all-core matmul rates are printed.

Part 1 imports only torch and numpy, so it runs unchanged whatever the package layout; part 2 imports
mia_audit's trainer (names of today's layout).

    python benchmarks/bench_flops.py [--repeats 7] [--shadows] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SIZE = 2048


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: thread pool, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(*, threads: int, repeats: int = 7, size: int = SIZE, library: str = "torch") -> float:
    """GFLOP/s of one size × size fp32 matmul with `threads` intra-op threads (torch) — median of repeats."""
    flops = 2.0 * size**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    if library == "numpy":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            return flops / _median_seconds(lambda: a @ b, repeats) / 1e9
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.empty(size, size)
        return flops / _median_seconds(lambda: torch.mm(ta, tb, out=out), repeats) / 1e9
    finally:
        torch.set_num_threads(before)


def shadow_gflops(*, epochs: int, n_shadows: int = 16) -> dict:
    """Achieved GFLOP/s of today's trainer on the sample's architecture and data (fixed epochs)."""
    try:
        from mia_audit.seeds import SeedStreams
        from mia_audit.shadows.keep import keep_mask
        from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
        from mia_audit.shadows.recipe import TrainingRecipe
        from mia_audit.shadows.torch_trainer import SINGLE_THREAD_FLOPS, forward_flops, train_torch_shadows
    except ImportError as error:  # the package layout moved (issue 10): update these imports
        raise SystemExit(f"--shadows needs today's trainer modules: {error}") from None

    data = np.vstack([np.loadtxt(ROOT / "samples" / f, delimiter=",", skiprows=1) for f in ("members.csv", "nonmembers.csv")])
    x, y = data[:, :-1], data[:, -1].astype(np.int64)
    graph, _, _ = graph_from_onnx(proto=load_onnx_proto(ROOT / "samples" / "digits_mlp.onnx"), output_name="logits",
                                  output_kind="logits", n_outputs=10)
    keep = keep_mask(n_records=len(y), n_shadows=n_shadows, rng=np.random.default_rng(0))
    recipe = TrainingRecipe(epochs=epochs)
    forward = forward_flops(graph=graph, record=torch.from_numpy(x[:1]).to(graph.input_dtype))
    steps = -(-int(keep.sum(axis=0).max()) // recipe.batch_size)
    train_flops = 3.0 * forward * recipe.batch_size * steps * epochs * n_shadows
    eval_flops = 2.0 * forward * len(y) * n_shadows
    step_flops = 3.0 * forward * recipe.batch_size * n_shadows
    start = time.perf_counter()
    cpu_start = time.process_time()
    train_torch_shadows(graph=graph, x=x, y=y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=0), calibration=None)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {
        "forward_flops_per_record": forward,
        "steps_per_epoch": steps,
        "epochs": epochs,
        "seconds": seconds,
        "cpu_over_wall": cpu / seconds,
        "gflops": (train_flops + eval_flops) / seconds / 1e9,
        "step_gflop": step_flops / 1e9,
        "threads": 1 if step_flops < SINGLE_THREAD_FLOPS else torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shadows", action="store_true", help="also measure today's shadow trainer on the sample")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"torch {torch.__version__} (threads default {torch.get_num_threads()}), numpy {np.__version__}, "
          f"{cores} CPUs, load {os.getloadavg()}")
    reference = {}
    for threads in sorted({1, cores}):
        reference[threads] = matmul_gflops(threads=threads, repeats=args.repeats)
        numpy_rate = matmul_gflops(threads=threads, repeats=args.repeats, library="numpy")
        print(f"  {SIZE}x{SIZE} fp32 matmul, {threads} thread(s): torch {reference[threads]:6.1f} GFLOP/s, "
              f"numpy {numpy_rate:6.1f} GFLOP/s")
    if args.shadows:
        result = shadow_gflops(epochs=args.epochs)
        print(f"  shadow training (sample MLP 64-256-256-10, 16 shadows, {result['epochs']} epochs, "
              f"{result['steps_per_epoch']} steps/epoch, {result['step_gflop']:.2f} GFLOP/step, trainer uses "
              f"{result['threads']} thread(s)): {result['seconds']:.2f} s, CPU/wall {result['cpu_over_wall']:.2f}, "
              f"{result['gflops']:.1f} GFLOP/s")
        for threads, rate in reference.items():
            print(f"  fraction of the {threads}-thread matmul rate: {result['gflops'] / rate:.2f}")
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
