"""Harness for the hostile-input suite (issue 13): run the real CLI in a subprocess and check the contract.

Only the public surface is used — `python -m mia_audit ...`, its exit code, its stdout/stderr and the files
it writes — so the suite survives the package being reorganised.

The contract every refused input is held to (README "Exit codes", DESIGN §7):

- exit code 2, within a time limit (the issue asks < 5 s on two cores; we assert a generous bound);
- exactly one non-empty line on stderr, naming the file (and column / 1-based row where relevant);
- no traceback, no "internal error";
- no raw record values: every manifest carries ids `SECRET-…` that must never be printed;
- nothing on disk changed: every file under the case's folder (including a previous `--out`) hashed before and
  after, byte for byte, and no file added or removed.

Set `MIA_HOSTILE_LOG=/some/file.jsonl` to append what each case did (exit code, seconds, first stderr line):
that is how the catalogue in the prep note was made.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Bound for cases whose work grows with the input ("unbounded" in the issue: asked to finish in < 5 s).
UNBOUNDED_LIMIT_S = 20.0
#: Bound for special files (FIFO, /dev/zero): a stat before opening refuses them at once.
SPECIAL_LIMIT_S = 15.0
#: Bound for everything else (a whole small audit on a busy two-core machine).
RUN_LIMIT_S = 90.0
#: Address-space cap for the CLI process, so reading /dev/zero or allocating an absurd tensor fails fast
#: instead of exhausting the machine (a complete audit with shadows fits in well under 2 GiB).
MEMORY_LIMIT_BYTES = 2 << 30

#: Every manifest id starts with this; it must never appear in anything printed, nor in results.json.
SECRET = "SECRET-"
#: Fixed time, so two runs on the same inputs write the same bytes.
SOURCE_DATE_EPOCH = "1700000000"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every CLI subprocess: this checkout first on the path, no colours, fixed time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["NO_COLOR"] = "1"
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    for name in ("MIA_AUDIT_DEBUG", "GITHUB_STEP_SUMMARY", "COLUMNS"):
        env.pop(name, None)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.code is None

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        head = "timed out" if self.timed_out else f"exit {self.code}"
        return f"{head} after {self.seconds:.1f} s; stderr:\n{self.stderr[-2000:]}\nstdout:\n{self.stdout[-800:]}"


def _log(outcome: Outcome) -> None:
    target = os.environ.get("MIA_HOSTILE_LOG")
    if not target:
        return
    lines = outcome.stderr_lines
    record = {
        "case": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
        "code": outcome.code,
        "seconds": round(outcome.seconds, 2),
        "stderr_lines": len(lines),
        "first_line": (lines[0] if lines else "")[:400],
        "traceback_last": (lines[-1] if "Traceback" in outcome.stderr else "")[:300],
    }
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def run_cli(args: list[object], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Outcome:
    """`python -m mia_audit ARGS` with a wall-clock limit (the whole process group is killed past it)."""
    argv = [str(arg) for arg in args]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mia_audit", *argv],
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:  # set from outside: no preexec_fn in a test process that may run FIFO-feeding threads
        resource.prlimit(process.pid, resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (OSError, ValueError):  # already gone
        pass
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = None
    outcome = Outcome(
        args=tuple(argv),
        code=code,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        seconds=time.monotonic() - started,
    )
    _log(outcome)
    return outcome


# --- the contract ----------------------------------------------------------------------------------------------


def assert_clean_streams(outcome: Outcome) -> None:
    """No traceback, no internal error, no record id, in anything printed."""
    printed = outcome.stdout + outcome.stderr
    assert "Traceback" not in printed, outcome.describe()
    assert "internal error" not in printed, outcome.describe()
    assert SECRET not in printed, "a record id was printed:\n" + outcome.describe()


def assert_refused(outcome: Outcome, *, names: tuple[str, ...], limit: float) -> None:
    """Exit code 2 within `limit` seconds, one stderr line naming every fragment of `names`, clean streams."""
    assert not outcome.timed_out, f"no answer within {limit:g} s: " + outcome.describe()
    assert outcome.seconds < limit, outcome.describe()
    assert outcome.code == 2, outcome.describe()
    lines = outcome.stderr_lines
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + outcome.describe()
    for fragment in names:
        assert fragment in lines[0], f"{fragment!r} not named in: {lines[0]}"
    assert_clean_streams(outcome)


# --- files ---------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(root: Path, *, hidden: bool = True) -> dict[str, str]:
    """Every entry under `root` → its kind and, for regular files, the SHA-256 of its bytes.

    Special files (FIFOs) are recorded by kind only and never opened; symlinks by their target.
    `hidden=False` leaves out dot-files (a killed process may leave its temporary files behind).
    """
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if not hidden and any(part.startswith(".") for part in Path(relative).parts):
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = f"link -> {os.readlink(path)}"
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = "dir"
            elif stat.S_ISREG(info.st_mode):
                found[relative] = f"file {sha256_file(path)}"
            else:
                found[relative] = "special"
    return found


def snapshot_diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    return f"added {added}, removed {removed}, changed {changed}"


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]], *, newline: str = "\n") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- FIFOs -----------------------------------------------------------------------------------------------------


@dataclass
class FifoFeeder:
    """A named pipe; optionally a thread that writes `data` to whoever opens it for reading, then closes.

    A fed FIFO is what `--context <(generate)` gives the CLI: the case ends quickly whether the tool reads it
    (today: accepted as if it were a file) or refuses it unread (the contract). An unfed one is a FIFO nobody
    writes to: a tool that opens it blocks until the time limit.
    """

    path: Path
    data: bytes | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> "FifoFeeder":
        os.mkfifo(self.path)
        if self.data is not None:
            self._thread = threading.Thread(target=self._feed, daemon=True)
            self._thread.start()
        return self

    def _feed(self) -> None:
        try:
            with open(self.path, "wb") as pipe:  # blocks until a reader opens the FIFO
                pipe.write(self.data or b"")
        except OSError:  # the reader went away
            pass

    def close(self) -> None:
        """Unblock a writer still waiting for a reader (the CLI refused the FIFO unread); remove the FIFO."""
        if self._thread is not None and self._thread.is_alive():
            try:
                reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                reader = None
            deadline = time.monotonic() + 5
            while reader is not None and self._thread.is_alive() and time.monotonic() < deadline:
                try:
                    os.read(reader, 1 << 16)  # drain, so a writer blocked on a full pipe finishes
                except BlockingIOError:
                    pass
                self._thread.join(timeout=0.05)
            if reader is not None:
                os.close(reader)
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


# --- killing a run at a chosen point -----------------------------------------------------------------------------

#: Runs `python -m mia_audit` (via runpy, same thing) with an audit hook (PEP 578) that counts the filesystem
#: writes under $MIA_KILL_ROOT — files opened for writing, renames, removals, folders made or removed — logs each
#: one to $MIA_KILL_LOG and SIGKILLs its own process just before write number $MIA_KILL_AT (0: never).
#: It observes the interpreter, not mia_audit's modules, so it does not depend on the package layout.
KILL_HOOK = r"""
import json, os, runpy, signal, sys
root = os.path.join(os.path.abspath(os.environ["MIA_KILL_ROOT"]), "")
kill_at = int(os.environ.get("MIA_KILL_AT", "0"))
log = open(os.environ["MIA_KILL_LOG"], "a", buffering=1)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
count = 0

def inside(path):
    try:
        return os.path.abspath(os.fsdecode(path)).startswith(root)
    except TypeError:
        return False

def hook(event, args):
    global count
    if event == "open":
        if isinstance(args[0], int) or not (args[2] & WRITE):
            return
        paths = args[:1]
    elif event in ("os.rename", "os.link", "os.symlink", "shutil.move", "shutil.copyfile"):
        paths = args[:2]
    elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.truncate", "shutil.rmtree"):
        paths = args[:1]
    else:
        return
    if not any(inside(path) for path in paths):
        return
    count += 1
    log.write(json.dumps([count, event, [os.fsdecode(p) for p in paths]]) + "\n")
    if count == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
sys.argv = ["mia_audit", *sys.argv[1:]]
runpy.run_module("mia_audit", run_name="__main__", alter_sys=True)
"""


def run_cli_killed_at_write(args: list[object], *, cwd: Path, root: Path, kill_at: int, log: Path,
                            timeout: float) -> tuple[Outcome, list[tuple[int, str, list[str]]]]:
    """Run the CLI, SIGKILLed just before its `kill_at`-th write under `root` (0: run to the end).

    Returns the outcome (code -9 when killed) and the writes it saw: (number, audit event, paths).
    """
    log.unlink(missing_ok=True)
    argv = [str(arg) for arg in args]
    env = cli_env({"MIA_KILL_ROOT": str(root), "MIA_KILL_AT": str(kill_at), "MIA_KILL_LOG": str(log)})
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-c", KILL_HOOK, *argv], cwd=cwd, env=env, capture_output=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
    outcome = Outcome(args=tuple(argv), code=completed.returncode, stdout=completed.stdout.decode("utf-8", "replace"),
                      stderr=completed.stderr.decode("utf-8", "replace"), seconds=time.monotonic() - started)
    writes = [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []
    return outcome, writes


def start_cli(args: list[object], *, cwd: Path) -> subprocess.Popen:
    """`python -m mia_audit ARGS` in the background (its own process group), output discarded."""
    return subprocess.Popen([sys.executable, "-m", "mia_audit", *map(str, args)], cwd=cwd, env=cli_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
