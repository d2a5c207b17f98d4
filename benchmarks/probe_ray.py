"""What a local Ray instance costs and does on this machine (issue 14's Ray executor, before it is written).

Measures and checks, with `ray.init(num_cpus=2)` on this machine only (no cluster, no network):

1. import and start-up time, the memory of Ray's own processes once idle, shutdown time;
2. the per-task overhead (100 empty tasks) and a 64 MiB numpy array through the object store;
3. what a task sees: torch's version and thread count, OMP_NUM_THREADS (Ray sets it to the task's num_cpus);
4. bit-identity: a seeded torch training loop (a small MLP, Adam, 50 steps) in a task and in this process,
   on one thread each, compared bit for bit (float results depend on the thread count, not on Ray);
5. retries: a task whose worker process dies (SIGKILL of itself on the first attempt) with max_retries=1
   comes back with the second attempt's result; the same with max_retries=0 raises; a task killed from the
   driver (its pid from a marker file) is retried too; `ray.cancel(force=True)` is not retried.

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/probe_ray.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (no network here anyway)

start = time.perf_counter()
import ray  # noqa: E402

IMPORT_S = time.perf_counter() - start


def _ray_processes_rss_mib() -> float:
    """Resident memory of Ray's processes (gcs_server, raylet, workers, …) from ps."""
    out = subprocess.run(["ps", "-eo", "rss,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    return sum(int(line.split(None, 1)[0]) for line in out if "ray" in line.split(None, 1)[1] and "probe_ray" not in line) / 1024


def train(seed: int, threads: int) -> bytes:
    import torch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 64, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(50):
        index = torch.randint(0, 512, (64,), generator=g)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    return b"".join(p.detach().numpy().tobytes() for p in model.parameters())


@ray.remote(num_cpus=1)
def empty() -> None:
    return None


@ray.remote(num_cpus=1)
def environment() -> dict:
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "cuda": torch.cuda.is_available(), "pid": os.getpid()}


@ray.remote(num_cpus=1)
def train_task(seed: int, threads: int) -> bytes:
    return train(seed, threads)


@ray.remote(num_cpus=1)
def dies_once(marker: str) -> dict:
    """First attempt: SIGKILL its own worker (a crash Ray cannot see coming). Second attempt: returns."""
    path = Path(marker)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempt": attempt, "pid": os.getpid()}


@ray.remote(num_cpus=1)
def slow_with_pid(marker: str, seconds: float) -> dict:
    path = Path(marker)
    attempts = path.read_text().split() if path.exists() else []
    attempts.append(str(os.getpid()))
    path.write_text(" ".join(attempts))
    time.sleep(seconds)
    return {"attempts": len(attempts)}


def main() -> None:
    print(f"ray {ray.__version__}; import {IMPORT_S:.2f} s; /dev/shm: "
          + subprocess.run(["df", "-h", "/dev/shm"], capture_output=True, text=True).stdout.splitlines()[-1])
    before = time.perf_counter()
    info = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - before
    print(f"ray.init(num_cpus=2): {init_s:.2f} s; resources {ray.cluster_resources()}; gcs {info.address_info.get('gcs_address')}")
    ray.get(empty.remote())  # first task starts a worker
    first_task_s = time.perf_counter() - before - init_s
    time.sleep(2)
    print(f"first task after init: {first_task_s:.2f} s; Ray's processes hold {_ray_processes_rss_mib():.0f} MiB RSS (idle, 1-2 workers)")

    t = time.perf_counter()
    ray.get([empty.remote() for _ in range(100)])
    print(f"100 empty tasks: {(time.perf_counter() - t) * 10:.1f} ms per task")
    import numpy as np

    array = np.random.default_rng(0).standard_normal(8 * 2**20)  # 64 MiB float64
    t = time.perf_counter()
    ref = ray.put(array)
    back = ray.get(ref)
    print(f"64 MiB array put + get: {(time.perf_counter() - t) * 1000:.0f} ms, zero-copy read-only view: {not back.flags.writeable}")

    print(f"task environment: {ray.get(environment.remote())}")
    remote_bytes = ray.get(train_task.remote(7, 1))
    local_bytes = train(7, 1)
    print(f"seeded torch training, 1 thread, task vs this process: {'bit-identical' if remote_bytes == local_bytes else 'DIFFERENT'}")
    two_threads = train(7, 2)
    print(f"same training here with 2 threads vs 1: {'bit-identical' if two_threads == local_bytes else 'different bits'}")

    with tempfile.TemporaryDirectory() as tmp:
        result = ray.get(dies_once.options(max_retries=1).remote(str(Path(tmp) / "a")))
        print(f"worker SIGKILLed itself, max_retries=1: result from attempt {result['attempt']}")
        try:
            ray.get(dies_once.options(max_retries=0).remote(str(Path(tmp) / "b")))
            print("worker SIGKILLed itself, max_retries=0: returned (unexpected)")
        except ray.exceptions.WorkerCrashedError as error:
            print(f"worker SIGKILLed itself, max_retries=0: {type(error).__name__} raised")

        marker = Path(tmp) / "c"
        ref = slow_with_pid.options(max_retries=1).remote(str(marker), 3.0)
        while not marker.exists():
            time.sleep(0.05)
        os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
        print(f"task killed from the driver (SIGKILL of its worker), max_retries=1: {ray.get(ref)}")

        marker = Path(tmp) / "d"
        ref = slow_with_pid.options(max_retries=3).remote(str(marker), 3.0)
        while not marker.exists():
            time.sleep(0.05)
        ray.cancel(ref, force=True)
        try:
            ray.get(ref)
            print("ray.cancel(force=True): returned (retried)")
        except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as error:
            print(f"ray.cancel(force=True), max_retries=3: {type(error).__name__}, attempts {len(marker.read_text().split())}")

    t = time.perf_counter()
    ray.shutdown()
    print(f"ray.shutdown(): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
