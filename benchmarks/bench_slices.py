"""Slice overhead: a 50k-record audit with 20 slices × every attack vs the same audit without slices.

Builds everything in the script (no downloads): generated 10-class tabular data with a categorical `region`
meta column, a torch MLP trained on the members and exported to ONNX, manifests of 25k members and 25k
non-members. Then, in one run, interleaved repeats of

- `plain`:  the whole audit (`run_audit`) with `--no-slices`,
- `slices`: the whole audit with the default slices (10 true classes + correct/incorrect + 4 loss-percentile
            bins) and `--slice-columns region` (4 values): 20 slices × the 7 attacks = 140 slice evaluations,

and reports the overhead (slices − plain) / plain from medians and from minimums of wall-clock time, and from
the median CPU time of this process (less sensitive to other processes on a shared machine). It also times
the slice step alone (`build_slices` + `evaluate_slices` on the run's scores): what slicing adds, measured
directly. Target (issue 5): overhead < 20%.

    python benchmarks/bench_slices.py [--records 50000] [--repeats 3] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mia_audit.config import ManifestOptions, RunConfig  # noqa: E402
from mia_audit.slices.spec import SlicingSpec  # noqa: E402
from mia_audit.slices.dimensions import build_slices  # noqa: E402
from mia_audit.slices.evaluate import evaluate_slices  # noqa: E402
from mia_audit.workflow import run_audit  # noqa: E402

N_FEATURES = 20
N_CLASSES = 10
REGIONS = ("north", "south", "east", "west")


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian class clusters with overlap (so the model can overfit), plus a region per record."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (N_CLASSES, N_FEATURES))
    y = rng.integers(0, N_CLASSES, n)
    x = centers[y] + rng.normal(0.0, 1.6, (n, N_FEATURES))
    region = rng.integers(0, len(REGIONS), n)
    x[:, 0] += 0.5 * region  # the region shifts one feature a little
    return x.astype(np.float32), y.astype(np.int64), region


def train_and_export(x: np.ndarray, y: np.ndarray, path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, N_CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    features, labels = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(8):
        for batch in torch.randperm(len(labels), generator=generator).split(256):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(features[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    torch.onnx.export(
        model, (torch.zeros(2, N_FEATURES),), str(path), input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )


def write_manifest(path: Path, x: np.ndarray, y: np.ndarray, region: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"x{i}" for i in range(N_FEATURES)] + ["region", "label"])
        for features, label, where in zip(x, y, region):
            writer.writerow([f"{v:.5g}" for v in features] + [REGIONS[where], int(label)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="members + non-members")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    half = args.records // 2

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        x, y, region = make_data(args.records, seed=7)
        model_path = tmp / "model.onnx"
        train_and_export(x[:half], y[:half], model_path, seed=7)
        write_manifest(tmp / "members.csv", x[:half], y[:half], region[:half])
        write_manifest(tmp / "nonmembers.csv", x[half:], y[half:], region[half:])

        def config(slicing: SlicingSpec) -> RunConfig:
            return RunConfig(
                model_path=model_path,
                members_path=tmp / "members.csv",
                nonmembers_path=tmp / "nonmembers.csv",
                out_dir=tmp / "out",
                manifest=ManifestOptions(meta_columns=("region",)),
                n_bootstrap=args.bootstrap,
                slicing=slicing,
            )

        variants = {
            "plain": config(SlicingSpec(enabled=False)),
            "slices": config(SlicingSpec(columns=("region",))),
        }
        timings: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        runs = {}
        for _ in range(args.repeats):
            for name, cfg in variants.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                runs[name] = run_audit(config=cfg)
                timings[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

        audit = runs["slices"]
        result = audit.result
        n_slices = result.slice_summary.n_slices
        n_attacks = len(audit.record_scores)
        assert result.slice_summary.n_tested + result.slice_summary.n_insufficient * n_attacks == n_slices * n_attacks

        # The slice step alone, on the scores of the last run (rebuild inputs outside the timer).
        from mia_audit.data.manifest import read_manifest
        from mia_audit.models import load_model, normalize_outputs
        from mia_audit.data.signals import compute_signals

        spec = variants["slices"].slicing
        members = read_manifest(path=tmp / "members.csv", options=variants["slices"].manifest)
        nonmembers = read_manifest(path=tmp / "nonmembers.csv", options=variants["slices"].manifest)
        model = load_model(path=model_path)
        signals = []
        for audit_set in (members, nonmembers):
            raw = model.predict_raw(audit_set.features, batch_size=65_536)
            outputs, kind = normalize_outputs(raw=raw, output_kind="auto", native_kind=None, source="bench")
            labels = audit_set.raw_labels.astype(np.int64)
            signals.append(compute_signals(outputs=outputs, output_kind=kind, labels=labels))
        step = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            slices = build_slices(
                spec=spec, members=members, nonmembers=nonmembers, member_signals=signals[0],
                nonmember_signals=signals[1],
            )
            evaluate_slices(
                spec=spec, slices=slices, record_scores=audit.record_scores, member_correct=signals[0].correct,
                nonmember_correct=signals[1].correct, global_results=result.attacks, seed=0,
            )
            step.append(time.perf_counter() - start)

    median = {name: statistics.median(values) for name, values in timings.items()}
    best = {name: min(values) for name, values in timings.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    step_median = statistics.median(step)

    def overhead(times: dict[str, float]) -> float:
        return (times["slices"] - times["plain"]) / times["plain"]

    print(
        f"records={args.records} ({half} members, {args.records - half} non-members) repeats={args.repeats} "
        f"bootstrap={args.bootstrap}; {n_slices} slices × {n_attacks} attacks = {n_slices * n_attacks} evaluations"
    )
    print(f"  audit without slices  median {median['plain']:7.2f} s   {[round(t, 2) for t in timings['plain']]}")
    print(f"  audit with slices     median {median['slices']:7.2f} s   {[round(t, 2) for t in timings['slices']]}")
    print(f"  slice step alone      median {step_median:7.2f} s   {[round(t, 2) for t in step]}")
    print(f"  CPU time (median)     without {cpu_median['plain']:.2f} s, with {cpu_median['slices']:.2f} s")
    print(
        f"overhead (with − without) / without: median wall {overhead(median):+.1%}, min wall {overhead(best):+.1%}, "
        f"median CPU {overhead(cpu_median):+.1%}   (target < 20%)"
    )
    print(f"slice step alone / audit without slices (median wall) = {step_median / median['plain']:.1%}")


if __name__ == "__main__":
    main()
