"""Step 7 (defense comparison) on the committed sample, measured in one run (times and ratios, not pass/fail).

1. Wall time of a five-defense comparison through the CLI, as a user runs it:
       --defenses label_smoothing:0.1,dropout:0.5,mixup,dp_sgd:epsilon=4,top_k:3
       --defense-shadow-models 2 --shadow-models 4
   against the same audit without --defenses (both --no-cache, JSON only), so step 7's share is a ratio taken
   on the same machine at the same time. The measured comparison table (one line per row) is printed too.
2. DP-SGD's slowdown over plain training: `train_with_plan` on the sample's 300 members with the sample's own
   architecture (GraphClassifier of the ONNX graph), TrainingPlan() vs TrainingPlan(dp_epsilon=4), the same
   epochs and recipe, on the thread setting step 7 uses; repeats interleaved, median of the per-pair ratios.

    python benchmarks/bench_defenses.py [--epochs 30] [--repeats 5] [--skip-cli] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DEFENSES = "label_smoothing:0.1,dropout:0.5,mixup,dp_sgd:epsilon=4,top_k:3"


def run_cli(*, out: Path, defenses: bool) -> float:
    command = [
        sys.executable, "-m", "mia_audit", "run", str(SAMPLES / "digits_mlp.onnx"),
        "--members", str(SAMPLES / "members.csv"), "--nonmembers", str(SAMPLES / "nonmembers.csv"),
        "--out", str(out), "--shadow-models", "4", "--bootstrap", "200", "--format", "json", "--no-cache", "--quiet",
    ]
    if defenses:
        command += ["--defenses", DEFENSES, "--defense-shadow-models", "2"]
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if completed.returncode not in (0, 1, 3):  # 1 and 3 are policy verdicts of a completed audit
        raise SystemExit(f"mia-audit failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return elapsed


def print_table(results: Path) -> None:
    comparison = json.loads(results.read_text())["defenses"]
    print(f"  recipe: {comparison['recipe']}")
    print(f"  {'#':>2} {'row':<52} {'test acc':>8} {'drop':>7} {'gap':>7} {'worst AUC [95% CI]':>24} "
          f"{'attack':<17} {'TPR@0.1%':>8} {'bal.acc':>7} {'baseline adv [95% CI]':>24} {'effect.':>8} pareto  DP ε")
    for index, row in enumerate(comparison["rows"], start=1):
        if row["status"] != "done":
            print(f"  {index:>2} {row['label']:<52} skipped: {row['reason']}")
            continue
        point = row["worst_tpr_at_fpr_0.001"]
        tpr = "n/e" if point["flag"] == "not_estimable" else f"{point['tpr']:.2%}"
        auc = f"{row['worst_auc']:.3f} [{row['worst_auc_ci'][0]:.3f}, {row['worst_auc_ci'][1]:.3f}]"
        adv_ci = row["baseline_attack_advantage_ci"]
        adv = f"{row['baseline_attack_advantage']:+.3f} [{adv_ci[0]:.3f}, {adv_ci[1]:.3f}]"
        effect = "–" if row["effectiveness"] is None else f"{row['effectiveness']:+.1%}"
        dp = "" if row["dp_epsilon"] is None else f"{row['dp_epsilon']:.2f} (δ {row['dp_delta']:g})"
        print(f"  {index:>2} {row['label']:<52} {row['test_accuracy']:>8.3f} {row['utility_drop']:>+7.3f} "
              f"{row['generalization_gap']:>+7.3f} {auc:>24} {row['worst_attack']:<17} {tpr:>8} "
              f"{row['balanced_accuracy']:>7.3f} {adv:>24} {effect:>8} {'yes' if row['pareto_optimal'] else 'no':<6}  {dp}")
    print(f"  recommendation: {comparison['recommendation']}")


def cli_benchmark(keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = keep or Path(scratch)
        plain = run_cli(out=folder / "without_defenses", defenses=False)
        defended = run_cli(out=folder / "five_defenses", defenses=True)
        print("1. Five-defense comparison on the sample (CLI, --shadow-models 4 --defense-shadow-models 2, "
              "--bootstrap 200, --no-cache, JSON only)")
        print(f"  audit without --defenses:         {plain:7.1f} s")
        print(f"  audit with the five defenses:     {defended:7.1f} s")
        print(f"  step 7's share (difference):      {defended - plain:7.1f} s; with / without = {defended / plain:.1f}x")
        print_table(folder / "five_defenses" / "results.json")


def sample_training_data():
    from mia_audit.defenses.trainer import make_training_data

    header = (SAMPLES / "members.csv").read_text().splitlines()[0].split(",")
    table = np.loadtxt(SAMPLES / "members.csv", delimiter=",", skiprows=1)
    label = header.index("label")
    x = np.delete(table, label, axis=1)
    y = table[:, label].astype(np.int64)
    return make_training_data(x=x, y=y, n_classes=10), x


def dp_benchmark(*, epochs: int, repeats: int) -> None:
    import torch

    from mia_audit.defenses.base import TrainingPlan
    from mia_audit.defenses.graph_module import GraphClassifier
    from mia_audit.defenses.trainer import TrainRecipe, train_with_plan
    from mia_audit.seeds import SeedStreams
    from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto
    from mia_audit.shadows.torch_trainer import SINGLE_THREAD_FLOPS, forward_flops, torch_threads

    proto = load_onnx_proto(SAMPLES / "digits_mlp.onnx")
    graph, _, _ = graph_from_onnx(proto=proto, output_name=proto.graph.output[0].name, output_kind="logits",
                                  n_outputs=10)
    data, x = sample_training_data()
    recipe = TrainRecipe(epochs=epochs)
    record = torch.as_tensor(x[:1]).to(graph.input_dtype)
    threads = 1 if 3.0 * forward_flops(graph=graph, record=record) * recipe.batch_size < SINGLE_THREAD_FLOPS else None

    def timed(plan: TrainingPlan) -> tuple[float, object]:
        start = time.perf_counter()
        _, report = train_with_plan(make_module=lambda: GraphClassifier(graph, seed=0), data=data, plan=plan,
                                    recipe=recipe, seeds=SeedStreams(run_seed=0))
        return time.perf_counter() - start, report

    plain_times, dp_times, ratios = [], [], []
    with torch_threads(threads):
        timed(TrainingPlan())  # warm-up: first-call costs are not training
        timed(TrainingPlan(dp_epsilon=4.0))
        for _ in range(repeats):
            plain, _ = timed(TrainingPlan())
            private, report = timed(TrainingPlan(dp_epsilon=4.0))
            plain_times.append(plain)
            dp_times.append(private)
            ratios.append(private / plain)
    print(f"2. DP-SGD vs plain training: train_with_plan on {len(data.y)} members, the sample's 64-256-256-10 graph, "
          f"{epochs} epochs, batch {recipe.batch_size}, {threads or 'default'} torch thread(s), {repeats} interleaved repeats")
    print(f"  plain training:   median {statistics.median(plain_times):.3f} s (min {min(plain_times):.3f})")
    print(f"  DP-SGD (ε = 4):   median {statistics.median(dp_times):.3f} s (min {min(dp_times):.3f}); accountant ε "
          f"{report.dp_epsilon:.3f} at δ = 1e-05, noise multiplier {report.dp_noise_multiplier:.3f}")
    print(f"  slowdown DP-SGD / plain: median {statistics.median(ratios):.2f}x "
          f"(per-repeat ratios {', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="epochs for the DP-SGD vs plain timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true", help="only the DP-SGD vs plain timing")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two results.json under this folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="opacus")  # "secure RNG turned off": expected for a benchmark
    if not args.skip_cli:
        cli_benchmark(args.keep)
    dp_benchmark(epochs=args.epochs, repeats=args.repeats)


if __name__ == "__main__":
    main()
