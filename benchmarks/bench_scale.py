"""The audit at scale against its floor: wall time and peak RSS, measured in one run (issue 14).

For each size N (records per side) the script makes seeded data once, then measures in child processes:

- floor: read both manifests and run one onnxruntime pass over every row (batches of 65,536, the tool's
  automatic batch size for 32 float32 features), three ways — pandas (`read_csv`), pyarrow (`csv.read_csv`)
  and pyarrow (`parquet.read_table`, when Parquet copies were written);
- audit: `python -m mia_audit run MODEL --members … --nonmembers … --shadow-models 0 --format json --quiet`
  (default bootstrap, slices on), on the CSV manifests and, with `--audit-formats csv,parquet`, on the
  Parquet ones too (the two results.json must then agree attack by attack).

Each child is timed from the parent (start-up and imports included, as a user sees it); its peak RSS and
CPU time (user + sys) come from `os.wait4`, i.e. that child alone. CPU / wall says how many of the cores the
child kept busy. Printed: per-N table, audit / floor ratios (wall and RSS; the pandas floor is the primary
one, as in issue 14) and the 100k → 1M growth (10.0 = linear).

Data (seeded; `--data-dir`, default /tmp/mia-bench-scale, reused when present): a 32 → 128 → 128 → 10 MLP
with random weights exported with torch.onnx.export, features N(0, 1) rounded to 4 decimals (CSV stays
~8 bytes a value), labels = the model's prediction kept with probability 0.9 for members and 0.7 for
non-members (otherwise another class), so the attacks find a generalization gap to measure. Columns
`f00`…`f31`, then `label` (the README's manifest format). Not a model of any real data: it sizes the work.

    python benchmarks/bench_scale.py --sizes 10000,100000 [--repeats 3]
    python benchmarks/bench_scale.py --sizes 1000000 --write csv,parquet
    python benchmarks/bench_scale.py --sizes 100000 --audit-formats csv,parquet   # once Parquet is supported
    python benchmarks/bench_scale.py --sizes 100000 --profile /tmp/prof          # audit under cProfile

Targets (issue 14) at 1M per side: audit ≤ 3× the floor's wall time and ≤ 1.2× its peak RSS; 100k → 1M
growth close to 10. The parent imports only the standard library, so it adds nothing to the children's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES = 32
N_CLASSES = 10
HIDDEN = 128
BATCH = 65_536  # resolve_batch_size(): 32 MiB // (32 × 4 bytes) = 262,144, capped at 65,536
KEEP_LABEL = {"members": 0.9, "nonmembers": 0.7}
DATA_VERSION = 2  # bump when the generated data changes, so cached copies are remade
FLOORS = ("pandas", "pyarrow-csv", "parquet")


# --------------------------------------------------------------------------------------------------
# Child: generate the model and the manifests (torch, numpy and pyarrow live only here)
# --------------------------------------------------------------------------------------------------


def export_model(path: Path, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, N_CLASSES),
    ).eval()
    with torch.no_grad():
        model[-1].weight.mul_(8.0)  # confident enough that the probability signals spread over (0, 1)
    example = torch.zeros(2, N_FEATURES)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, dynamo=False)


def generate(*, directory: Path, n: int, seed: int, formats: list[str]) -> None:
    import numpy as np
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    model = directory.parent / f"mlp32-s{seed}.onnx"
    if not model.exists():
        export_model(model, seed)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"f{j:02d}" for j in range(N_FEATURES)]
    for side_index, side in enumerate(("members", "nonmembers")):
        rng = np.random.default_rng([seed, n, side_index])
        x = np.round(rng.standard_normal((n, N_FEATURES)), 4)
        predicted = np.concatenate([
            session.run(None, {"input": x[s : s + BATCH].astype(np.float32)})[0].argmax(axis=1)
            for s in range(0, n, BATCH)
        ])
        other = (predicted + rng.integers(1, N_CLASSES, n)) % N_CLASSES
        label = np.where(rng.random(n) < KEEP_LABEL[side], predicted, other).astype(np.int64)
        table = pa.table({**{name: x[:, j] for j, name in enumerate(names)}, "label": label})
        del x
        if "csv" in formats:
            pacsv.write_csv(table, directory / f"{side}.csv", pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
        if "parquet" in formats:
            pq.write_table(table, directory / f"{side}.parquet")
    (directory / "stamp.json").write_text(json.dumps({"version": DATA_VERSION, "n": n, "seed": seed, "formats": formats}))


# --------------------------------------------------------------------------------------------------
# Child: the floor (read both manifests, one inference pass over all rows)
# --------------------------------------------------------------------------------------------------


def _features_from_table(table, names):
    import numpy as np

    features = np.empty((table.num_rows, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        features[:, j] = table.column(name).to_numpy()
    return features, table.column("label").to_numpy()


def floor(*, reader: str, model: Path, paths: list[Path]) -> None:
    start = time.perf_counter()
    import numpy as np
    import onnxruntime as ort

    if reader == "pandas":
        import pandas as pd
    else:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    imported = time.perf_counter()
    sides = []
    for path in paths:
        if reader == "pandas":
            frame = pd.read_csv(path)
            names = [c for c in frame.columns if c != "label"]
            sides.append((frame[names].to_numpy(dtype=np.float32), frame["label"].to_numpy()))
            del frame
        else:
            table = pacsv.read_csv(path) if reader == "pyarrow-csv" else pq.read_table(path)
            sides.append(_features_from_table(table, [c for c in table.column_names if c != "label"]))
            del table
    read = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = 0
    for features, labels in sides:
        outputs = np.concatenate([session.run(None, {name: features[s : s + BATCH]})[0] for s in range(0, len(features), BATCH)])
        correct += int((outputs.argmax(axis=1) == labels).sum())
    inferred = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "read_s": read - imported, "infer_s": inferred - read,
                      "rows": sum(len(f) for f, _ in sides), "correct": correct}))


# --------------------------------------------------------------------------------------------------
# Parent: orchestrate children, measure each with wait4
# --------------------------------------------------------------------------------------------------


def measure(command: list[str], *, log: Path, env: dict[str, str]) -> dict:
    """Run one child; wall time from here, peak RSS and CPU time of that child alone (wait4)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024.0,  # KiB on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "cores_busy": (usage.ru_utime + usage.ru_stime) / wall,
        "exit": child.returncode,
        "load1_before": load_before,
        "stdout": log.with_suffix(".out").read_text(errors="replace"),
        "stderr": log.with_suffix(".err").read_text(errors="replace"),
    }


def ensure_data(*, directory: Path, n: int, seed: int, formats: list[str], env: dict[str, str]) -> None:
    stamp = directory / "stamp.json"
    if stamp.exists():
        have = json.loads(stamp.read_text())
        if have.get("version") == DATA_VERSION and set(formats) <= set(have.get("formats", [])):
            return
        formats = sorted(set(formats) | set(have.get("formats", [])))
    print(f"  generating N = {n:,} per side ({', '.join(formats)}) in {directory} …", flush=True)
    result = measure([sys.executable, __file__, "_generate", str(directory), str(n), str(seed), ",".join(formats)],
                     log=directory.parent / "logs" / f"generate-{n}", env=env)
    if result["exit"] != 0:
        sys.exit(f"generation failed:\n{result['stderr'][-3000:]}")
    print(f"  generated in {result['wall_s']:.1f} s", flush=True)


def audit_command(*, model: Path, directory: Path, fmt: str, out: Path, extra: list[str], profile: Path | None) -> list[str]:
    runner = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else []) + ["-m", "mia_audit"]
    return runner + [
        "run", str(model), "--members", str(directory / f"members.{fmt}"), "--nonmembers", str(directory / f"nonmembers.{fmt}"),
        "--shadow-models", "0", "--format", "json", "--quiet", "--out", str(out), *extra,
    ]


def _attack_numbers(results_json: Path) -> dict:
    document = json.loads(results_json.read_text())
    return {attack["name"]: {k: v for k, v in attack.items() if k not in ("timing",)} for attack in document.get("attacks", [])}


def run_size(*, n: int, args, env: dict[str, str]) -> dict:
    directory = args.data_dir / f"n{n}-s{args.seed}"
    ensure_data(directory=directory, n=n, seed=args.seed, formats=args.write, env=env)
    model = args.data_dir / f"mlp32-s{args.seed}.onnx"
    logs = args.data_dir / "logs"
    floors = [f for f in FLOORS if f != "parquet" or (directory / "members.parquet").exists()]
    runs: dict[str, list[dict]] = {f"floor:{f}": [] for f in floors}
    runs.update({f"audit:{fmt}": [] for fmt in args.audit_formats})
    for repeat in range(args.repeats):  # interleaved, so background load hits floor and audit alike
        for reader in floors:
            suffix = "parquet" if reader == "parquet" else "csv"
            paths = [str(directory / f"{side}.{suffix}") for side in ("members", "nonmembers")]
            result = measure([sys.executable, __file__, "_floor", reader, str(model), *paths],
                             log=logs / f"floor-{reader}-{n}-{repeat}", env=env)
            if result["exit"] != 0:
                sys.exit(f"floor {reader} failed:\n{result['stderr'][-3000:]}")
            result["phases"] = json.loads(result["stdout"].strip().splitlines()[-1])
            runs[f"floor:{reader}"].append(result)
        for fmt in args.audit_formats:
            out = args.data_dir / "out" / f"{fmt}-{n}"
            shutil.rmtree(out, ignore_errors=True)
            profile = args.profile / f"audit-{fmt}-{n}.prof" if args.profile else None
            if profile:
                profile.parent.mkdir(parents=True, exist_ok=True)
            command = audit_command(model=model, directory=directory, fmt=fmt, out=out, extra=args.audit_args, profile=profile)
            result = measure(command, log=logs / f"audit-{fmt}-{n}-{repeat}", env=env)
            if result["exit"] not in (0, 1, 3):  # 0/1/3 are policy verdicts; 2 input error, 4 internal error
                last = (result["stderr"].strip().splitlines() or ["(no stderr)"])[-1]
                print(f"  audit on {fmt} exited {result['exit']}: {last}", flush=True)
            elif (out / "results.json").exists():
                result["attacks"] = _attack_numbers(out / "results.json")
            runs[f"audit:{fmt}"].append(result)
            print(f"  N={n:,} repeat {repeat + 1}: audit:{fmt} {result['wall_s']:.1f} s, "
                  f"{result['peak_rss_mib']:.0f} MiB (exit {result['exit']})", flush=True)
    return {"n": n, "runs": runs}


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["exit"] in (0, 1, 3)] or runs
    return {
        "wall_s": statistics.median(r["wall_s"] for r in ok),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in ok),
        "cores_busy": statistics.median(r["cores_busy"] for r in ok),
        "ok": all(r["exit"] in (0, 1, 3) for r in runs),
        "repeats": len(runs),
    }


def report(results: list[dict], *, primary: str) -> None:
    print(f"\n{'N/side':>9} {'what':18s} {'wall s':>8} {'peak MiB':>9} {'cores':>6}  phases (median run)")
    for entry in results:
        for key, runs in entry["runs"].items():
            s = summarise(runs)
            phases = ""
            if key.startswith("floor:"):
                p = runs[len(runs) // 2]["phases"]
                phases = f"import {p['import_s']:.1f} s, read {p['read_s']:.1f} s, infer {p['infer_s']:.1f} s"
            elif not s["ok"]:
                phases = f"FAILED (exit {runs[-1]['exit']})"
            print(f"{entry['n']:>9,} {key:18s} {s['wall_s']:8.1f} {s['peak_rss_mib']:9.0f} {s['cores_busy']:6.2f}  {phases}")
    print("\naudit / floor (same run; primary floor = pandas read + one onnxruntime pass):")
    for entry in results:
        for audit_key in [k for k in entry["runs"] if k.startswith("audit:")]:
            audit = summarise(entry["runs"][audit_key])
            if not audit["ok"]:
                continue
            for floor_key in [k for k in entry["runs"] if k.startswith("floor:")]:
                f = summarise(entry["runs"][floor_key])
                mark = "  <- primary" if floor_key == f"floor:{primary}" else ""
                print(f"  N={entry['n']:>9,} {audit_key} / {floor_key:18s} wall {audit['wall_s'] / f['wall_s']:6.1f}x"
                      f"  RSS {audit['peak_rss_mib'] / f['peak_rss_mib']:5.2f}x{mark}")
    by_n = {entry["n"]: entry for entry in results}
    for small, large in ((10_000, 100_000), (100_000, 1_000_000)):
        if small in by_n and large in by_n:
            print(f"\ngrowth {small:,} -> {large:,} per side (10.0 = linear in N):")
            for key in by_n[large]["runs"]:
                if key in by_n[small]["runs"]:
                    a, b = summarise(by_n[small]["runs"][key]), summarise(by_n[large]["runs"][key])
                    if a["ok"] and b["ok"]:
                        print(f"  {key:18s} wall {b['wall_s'] / a['wall_s']:6.1f}x   RSS {b['peak_rss_mib'] / a['peak_rss_mib']:5.1f}x")
    for entry in results:
        csv_runs, parquet_runs = entry["runs"].get("audit:csv"), entry["runs"].get("audit:parquet")
        if csv_runs and parquet_runs and "attacks" in csv_runs[0] and "attacks" in parquet_runs[0]:
            same = csv_runs[0]["attacks"] == parquet_runs[0]["attacks"]
            print(f"N={entry['n']:,}: results.json attacks from Parquet {'==' if same else '!='} from CSV")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="records per side, comma-separated")
    parser.add_argument("--write", default="csv,parquet", help="manifest copies to generate: csv, parquet or both")
    parser.add_argument("--audit-formats", default="csv", help="manifests the audit is given: csv, parquet or both")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats (medians are reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mia-bench-scale"))
    parser.add_argument("--profile", type=Path, default=None, help="run the audit under cProfile, .prof files here")
    parser.add_argument("--audit-args", default="", help="extra arguments for `mia_audit run`, e.g. '--bootstrap 200'")
    parser.add_argument("--json-out", type=Path, default=None, help="also write every measurement here")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.write = [f for f in args.write.split(",") if f]
    args.audit_formats = [f for f in args.audit_formats.split(",") if f]
    args.audit_args = args.audit_args.split()
    if "csv" not in args.write:
        parser.error("--write must include csv (the pandas and pyarrow CSV floors read it)")
    if not set(args.audit_formats) <= set(args.write):
        parser.error("--audit-formats must be among the --write formats")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}, mia_audit from {ROOT}", flush=True)
    results = []
    for n in args.sizes:
        results.append(run_size(n=n, args=args, env=env))
    print(f"load average at the end: {os.getloadavg()}")
    report(results, primary="pandas")
    if args.json_out:
        for entry in results:
            for runs in entry["runs"].values():
                for r in runs:
                    r.pop("stdout", None)
                    r["stderr"] = r["stderr"][-2000:]
        args.json_out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_generate":
        generate(directory=Path(sys.argv[2]), n=int(sys.argv[3]), seed=int(sys.argv[4]), formats=sys.argv[5].split(","))
    elif len(sys.argv) > 1 and sys.argv[1] == "_floor":
        floor(reader=sys.argv[2], model=Path(sys.argv[3]), paths=[Path(p) for p in sys.argv[4:]])
    else:
        main()
