"""Shadow training and RMIA scoring, measured in one run (ratios, not pass/fail times).

1. Training K = 16 small MLPs (20 → 64 → 64 → 2 on 2,000 generated records, each on its keep-mask half,
   Adam, batch 64, fixed epochs):
   - vectorized:  mia-audit's trainer, all 16 models in one vmapped step
   - sequential:  a plain PyTorch loop (nn.Sequential, fused Adam), the 16 models one after another,
                  each on the same records in the same batch order
   - sequential (mia-audit, models_per_batch=1): the trainer's own code path, one model at a time
   - sequential (all threads): the plain loop with torch's default thread count
   Target: sequential / vectorized >= 3. The same comparison on the sample's 64 → 256 → 256 → 10 MLP is
   printed too (larger matrices: less overhead to save).
2. RMIA memory for N = Z = 50,000: tracemalloc peak of `rmia_scores` (sort + searchsorted) against the
   8 · N · Z bytes an N × Z matrix of ratios would take.

    python benchmarks/bench_shadows.py [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from mia_audit.attacks.rmia import rmia_scores
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.architectures import graph_from_architecture
from mia_audit.shadows.keep import keep_mask
from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
from mia_audit.shadows.recipe import ArchitectureRecipe, TrainingRecipe
from mia_audit.shadows.torch_trainer import _batch_order, torch_threads, train_torch_shadows

ROOT = Path(__file__).resolve().parents[1]


def plain_sequential(*, widths: list[int], x: np.ndarray, y: np.ndarray, keep: np.ndarray, epochs: int, batch: int) -> None:
    """The baseline: ordinary PyTorch training, one model after another."""
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    members = [np.flatnonzero(keep[:, k]) for k in range(keep.shape[1])]
    steps = max(1, -(-max(m.size for m in members) // batch))
    for k in range(keep.shape[1]):
        torch.manual_seed(k)
        layers: list[torch.nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        rng = np.random.default_rng([0, k, 0xBA7C])
        for _ in range(epochs):
            order = torch.from_numpy(_batch_order(members=members[k], steps=steps, batch=batch, rng=rng))
            for s in range(steps):
                index = order[s * batch : (s + 1) * batch]
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(xt[index]), yt[index]).backward()
                optimizer.step()
        with torch.no_grad():
            model(xt)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_benchmark(*, name: str, graph, widths, x, y, epochs: int, repeats: int, threads: int) -> None:
    keep = keep_mask(n_records=len(y), n_shadows=16, rng=np.random.default_rng(0))
    recipe = TrainingRecipe(epochs=epochs)

    def vectorized() -> None:
        train_torch_shadows(graph=graph, x=x, y=y, keep=keep, recipe=recipe, seeds=SeedStreams(run_seed=0), calibration=None)

    def own_sequential() -> None:
        train_torch_shadows(graph=graph, x=x, y=y, keep=keep, recipe=recipe.model_copy(update={"models_per_batch": 1}),
                            seeds=SeedStreams(run_seed=0), calibration=None)

    def plain() -> None:
        with torch_threads(threads):
            plain_sequential(widths=widths, x=x, y=y, keep=keep, epochs=epochs, batch=recipe.batch_size)

    def plain_all_threads() -> None:
        with torch_threads(all_threads):
            plain_sequential(widths=widths, x=x, y=y, keep=keep, epochs=epochs, batch=recipe.batch_size)

    vectorized()  # warm-up (vmap, allocator)
    all_threads = torch.get_num_threads()
    times: dict[str, list[float]] = {"vectorized": [], "sequential": [], "sequential_mia": [], "sequential_all_threads": []}
    for _ in range(repeats):  # interleaved, so background load hits all variants alike
        times["vectorized"].append(timed(vectorized))
        times["sequential"].append(timed(plain))
        times["sequential_mia"].append(timed(own_sequential))
        times["sequential_all_threads"].append(timed(plain_all_threads))
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"{name}: 16 models, {len(y)} records, {epochs} epochs, batch 64, torch threads {threads}, {repeats} repeats")
    for key, value in median.items():
        print(f"  {key:23s} median {value:7.2f} s")
    print(f"  ratio sequential / vectorized              = {median['sequential'] / median['vectorized']:.2f}  (target >= 3)")
    print(f"  ratio sequential (mia-audit) / vectorized  = {median['sequential_mia'] / median['vectorized']:.2f}")
    print(f"  ratio sequential ({all_threads} threads) / vectorized = "
          f"{median['sequential_all_threads'] / median['vectorized']:.2f}")


def rmia_memory(n: int) -> None:
    rng = np.random.default_rng(0)
    px, pox, pz, poz = (rng.uniform(0.01, 1, n) for _ in range(4))
    tracemalloc.start()
    start = time.perf_counter()
    rmia_scores(p_target_x=px, p_out_x=pox, p_target_z=pz, p_out_z=poz, a=0.3, gamma=1.0)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    matrix = 8 * n * n
    print(f"RMIA N = Z = {n}: {seconds * 1000:.0f} ms, peak {peak / 2**20:.2f} MiB traced "
          f"(inputs {4 * 8 * n / 2**20:.2f} MiB); an N x Z float64 matrix would take {matrix / 2**30:.1f} GiB "
          f"= {matrix / peak:.0f}x the peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = 1  # what the trainer uses for models this small (SINGLE_THREAD_FLOPS); the baseline gets the same

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20))
    y = (x[:, :5].sum(axis=1) + rng.normal(0, 1, 2000) > 0).astype(np.int64)
    small = graph_from_architecture(spec=ArchitectureRecipe(type="mlp", hidden=[64, 64], standardize=False), x=x, n_classes=2)
    training_benchmark(name="small MLP 20-64-64-2", graph=small, widths=[20, 64, 64, 2], x=x, y=y,
                       epochs=args.epochs, repeats=args.repeats, threads=threads)

    data = np.vstack([np.loadtxt(ROOT / "samples" / f, delimiter=",", skiprows=1) for f in ("members.csv", "nonmembers.csv")])
    sample_graph, _, _ = graph_from_onnx(proto=load_onnx_proto(ROOT / "samples" / "digits_mlp.onnx"), output_name="logits",
                                         output_kind="logits", n_outputs=10)
    training_benchmark(name="sample MLP 64-256-256-10", graph=sample_graph, widths=[64, 256, 256, 10],
                       x=data[:, :-1] / 16.0, y=data[:, -1].astype(np.int64), epochs=max(2, args.epochs // 2),
                       repeats=args.repeats, threads=threads)
    rmia_memory(50_000)


if __name__ == "__main__":
    main()
