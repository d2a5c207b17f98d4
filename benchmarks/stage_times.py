"""Per-stage wall time, CPU time and memory of one `mia-audit run`, in-process (issue 14's profile).

Runs the CLI in this process with the given arguments and records a mark at every progress event the
workflow emits (stage begin / advance / end: so per attack for "Running attacks" and "Measuring (bootstrap
CIs)"), and around the steps it can find by name: reading the audit sets and loading the model
(`workflow._load`), `workflow.run_audit`, the report rendering (`render_reports` of cli/run.py, and inside
it `render_html` / `render_pdf`). Names that a later package layout no longer has are skipped with a note.

For every interval between consecutive marks it prints wall seconds, CPU seconds (user + sys of this
process, all threads) and CPU / wall — 1.0 means one core busy, 2.0 both — plus the resident set at the
end of the interval and the peak so far. With `--tracemalloc` (slower: every Python and numpy allocation
is traced) it also prints, per interval, the peak of traced memory inside it and what is still held at
its end, and the top allocation sites at the end of each wrapped step.

    python benchmarks/stage_times.py [--tracemalloc] -- run samples/digits_mlp.onnx --members samples/members.csv \
        --nonmembers samples/nonmembers.csv --out /tmp/sample-report --no-cache
"""

from __future__ import annotations

import functools
import resource
import sys
import time
import tracemalloc

START = time.perf_counter()
MARKS: list[tuple[str, float, float, float, float, float, float]] = []  # label, wall, cpu, rss, peak, traced, traced peak


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def mark(label: str) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    traced, traced_peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    MARKS.append((label, time.perf_counter(), usage.ru_utime + usage.ru_stime, _rss_mib(), usage.ru_maxrss / 1024,
                  traced / 2**20, traced_peak / 2**20))


def top_allocations(label: str, limit: int = 6) -> None:
    if not tracemalloc.is_tracing():
        return
    stats = tracemalloc.take_snapshot().statistics("lineno")
    print(f"-- held at {label}:", file=sys.stderr)
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        print(f"   {stat.size / 2**20:8.1f} MiB in {stat.count:>9,} blocks  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}",
              file=sys.stderr)


def _wrap(module, name: str) -> None:
    function = getattr(module, name, None)
    if function is None:
        print(f"stage_times: {module.__name__}.{name} not found (layout changed?): not timed", file=sys.stderr)
        return

    @functools.wraps(function)
    def timed(*args, **kwargs):
        mark(f"{name} begin")
        try:
            return function(*args, **kwargs)
        finally:
            mark(f"{name} end")
            top_allocations(f"{name} end")

    setattr(module, name, timed)


def _cli_module():
    """The module whose names `mia-audit run` looks up at call time: cli/run.py (issue-10 layout) or cli.py."""
    import mia_audit.cli as cli

    try:
        from mia_audit.cli import run as run_module  # the package layout: cli/run.py holds the command

        if hasattr(run_module, "RichProgress"):
            return run_module
    except ImportError:
        pass
    return cli


def install() -> None:
    mark("interpreter start → stage_times imports")
    cli = _cli_module()
    mark("import mia_audit.cli")

    class TimedProgress(cli.RichProgress):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._label = None
            self._count = 0

        def begin(self, label: str, total: int | None = None) -> None:
            super().begin(label, total)
            self._label, self._count = label, 0
            self._each = total is not None and total <= 20  # per-item marks only for short stages (attacks)
            mark(f"[{label}] begin")

        def advance(self, amount: int = 1) -> None:
            super().advance(amount)
            self._count += amount
            if self._each:
                mark(f"[{self._label}] +{self._count}")

        def end(self) -> None:
            if self._label is not None:
                mark(f"[{self._label}] end")
                self._label = None
            super().end()

    cli.RichProgress = TimedProgress
    import mia_audit.workflow as workflow

    mark("import mia_audit.workflow (numpy, onnxruntime, …)")
    for name in ("_load", "run_audit", "query_target", "run_reference_step", "evaluate", "measure_groups"):
        _wrap(workflow, name)
    _wrap(cli, "render_reports" if hasattr(cli, "render_reports") else "_render_reports")
    import mia_audit.report as report

    mark("import mia_audit.report (jinja2, matplotlib, weasyprint)")
    for name in ("render_html", "render_pdf"):
        _wrap(report, name)


def print_marks() -> None:
    traced = tracemalloc.is_tracing()
    print(f"\n{'interval (ends at)':62s} {'wall s':>7} {'cpu s':>7} {'cores':>6} {'rss MiB':>8} {'peak MiB':>8}"
          + (f" {'traced':>8} {'tr.peak':>8}" if traced else ""), file=sys.stderr)
    previous_wall, previous_cpu, interval_peak = START, 0.0, 0.0
    for label, wall, cpu, rss, peak, held, held_peak in MARKS:
        span, used = wall - previous_wall, cpu - previous_cpu
        interval_peak = max(interval_peak, held_peak)
        if span >= 0.05 or label.endswith(("begin", "end")):  # shorter intervals fold into the next line
            cores = used / span if span > 0 else 0.0
            print(f"{label[:62]:62s} {span:7.2f} {used:7.2f} {cores:6.2f} {rss:8.0f} {peak:8.0f}"
                  + (f" {held:8.0f} {interval_peak:8.0f}" if traced else ""), file=sys.stderr)
            previous_wall, previous_cpu, interval_peak = wall, cpu, 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = time.perf_counter() - START
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{'total (since this script started)':62s} {total:7.2f} {cpu:7.2f} {cpu / total:6.2f} {_rss_mib():8.0f} "
          f"{usage.ru_maxrss / 1024:8.0f}", file=sys.stderr)


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--tracemalloc":
        tracemalloc.start()
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    install()
    from mia_audit.cli import app

    try:
        app(args=args, prog_name="mia-audit", standalone_mode=False)
    except SystemExit:
        pass
    finally:
        mark("exit")
        print_marks()


if __name__ == "__main__":
    main()
