"""Issue 12: one story told the same way everywhere a DPO or a pipeline looks.

Black-box tests: they drive the public CLI (`python -m mia_audit`, in a subprocess, some under a pseudo-terminal
so the tables are laid out for a real terminal width) and read only what a user reads: results.json, the terminal
text, the HTML report's text and the PDF's text (pypdf). No test imports `mia_audit` internals (the package layout
is being reorganised); expectations are computed here, independently, from the per-attack numbers in results.json.

Contract used by these tests (proposal in the issue-12 prep notes; names of fields that do not exist yet):

- Per-metric worst case (DESIGN §4.3): for `auc`, `tpr_at_fpr_0.001`, `tpr_at_fpr_0.01`, `tpr_at_fpr_0.1` the attack
  that maximises the metric; a TPR flagged `not_estimable` never wins; ties → higher AUC. results.json carries them
  as `worst_cases[metric] = {attack, value, ci, flag, ...}`; every defense row carries `worst_cases` too.
- Numbers are written as the README writes them: AUC `0.648 [0.618, 0.679]`, TPR `1.33% [0.33%, 3.33%]`.
- `results.json["distribution_shift"] = {auc, auc_ci, detected, attacks: [{attack, auc, difference, ...}], ...}`.
- `worst_cases["tpr_at_fpr_0.001"]["members_singled_out"] = {count, of, ci}` (Clopper–Pearson on the count).

Runtime: five CLI runs per module (the documented sample command, the issue's defended run, an HTML-only run, a
deliberately shifted data set, a `check`), plus `--help`; about 1.5–2 minutes on two cores, most of it the
defended run's retraining. Shadow outputs go to the session cache set up in conftest.py, so the sample's 16
shadows are trained once and reused by the defended run.
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE_ARGS = [
    "run",
    str(SAMPLES / "digits_mlp.onnx"),
    "--members",
    str(SAMPLES / "members.csv"),
    "--nonmembers",
    str(SAMPLES / "nonmembers.csv"),
]
DEFENSES = ("label_smoothing", "dropout", "top_k")
DEFENSE_SPEC = "label_smoothing:0.1,dropout:0.5,top_k:3"
METRICS = ("auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1")
FPR_OF = {"tpr_at_fpr_0.001": 0.001, "tpr_at_fpr_0.01": 0.01, "tpr_at_fpr_0.1": 0.1}
LABEL_RE = {
    "auc": r"\bAUC\b",
    "tpr_at_fpr_0.001": r"TPR\s*(?:at|@)\s*0\.1\s*%\s*FPR",
    "tpr_at_fpr_0.01": r"TPR\s*(?:at|@)\s*1\s*%\s*FPR",
    "tpr_at_fpr_0.1": r"TPR\s*(?:at|@)\s*10\s*%\s*FPR",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]")


def xfail12(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 12: {reason}")


# --- running the CLI ---------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["NO_COLOR"] = "1"
    env["SOURCE_DATE_EPOCH"] = "1798848000"  # 2027-01-01: report dates and waiver evaluation are reproducible
    env.pop("MIA_AUDIT_DEBUG", None)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    out: Path | None = None

    @property
    def terminal(self) -> str:
        return self.stdout + self.stderr

    @property
    def results(self) -> dict:
        return json.loads((self.out / "results.json").read_text(encoding="utf-8"))

    def html_text(self) -> str:
        return html_text((self.out / "report.html").read_text(encoding="utf-8"))

    def html(self) -> str:
        return (self.out / "report.html").read_text(encoding="utf-8")


def run_cli(args: list[str], *, out: Path | None = None, timeout: int = 600) -> Run:
    """`python -m mia_audit ARGS` with stdout and stderr captured (not a terminal)."""
    argv = [sys.executable, "-m", "mia_audit", *args] + (["--out", str(out)] if out is not None else [])
    done = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    return Run(code=done.returncode, stdout=done.stdout, stderr=done.stderr, out=out)


def run_in_terminal(args: list[str], *, columns: int, out: Path | None = None, timeout: int = 600) -> Run:
    """`python -m mia_audit ARGS` on a pseudo-terminal COLUMNS wide (what a user at a terminal sees).

    stdout and stderr share the terminal; the text comes back with escape sequences removed and line ends as
    `\\n` (progress frames drawn with `\\r` stay as separate lines)."""
    argv = [sys.executable, "-m", "mia_audit", *args] + (["--out", str(out)] if out is not None else [])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    process = subprocess.Popen(
        argv, cwd=ROOT, env=_env(COLUMNS=str(columns), LINES="60", TERM="xterm"), stdin=subprocess.DEVNULL,
        stdout=slave, stderr=slave, start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                process.kill()
                raise TimeoutError(f"mia-audit {' '.join(args[:1])} produced nothing for {timeout} s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = process.wait(timeout=timeout)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Run(code=code, stdout=text, stderr="", out=out)


# --- reading the documents ---------------------------------------------------------------------------------

_BLOCKS = {"p", "li", "tr", "h1", "h2", "h3", "h4", "dt", "dd", "figcaption", "caption", "section", "div", "table",
           "ul", "ol", "thead", "tbody", "header", "nav", "dl"}


class _Blocks(HTMLParser):
    """Text of an HTML document split into blocks (paragraphs, table rows, list items, headings), each tagged with
    the id of the enclosing <section>. <wbr> joins without a space; other tags separate words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str, str]] = []  # (section id, tag that opened the block, text)
        self._section = ""
        self._stack: list[str] = []
        self._parts: list[str] = []
        self._glue = False
        self._skip = 0

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._parts)).strip()
        if text:
            self.blocks.append((self._section, self._stack[-1] if self._stack else "", text))
        self._parts = []

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "svg", "script"):
            self._skip += 1
            return
        if tag == "wbr":
            self._glue = True
            return
        if tag == "section":
            self._flush()
            self._section = dict(attrs).get("id", "") or ""
        if tag in _BLOCKS:
            self._flush()
            self._stack.append(tag)
        elif not self._glue:
            self._parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("style", "svg", "script"):
            self._skip = max(0, self._skip - 1)
            return
        if tag in _BLOCKS:
            self._flush()
            if self._stack:
                self._stack.pop()
        elif tag != "wbr":
            self._parts.append(" ")

    def handle_data(self, data):
        if self._skip:
            return
        self._parts.append(data)
        self._glue = False


def html_blocks(document: str) -> list[tuple[str, str, str]]:
    parser = _Blocks()
    parser.feed(document)
    parser.close()
    parser._flush()
    return parser.blocks


def html_text(document: str) -> str:
    return " ".join(text for _, _, text in html_blocks(document))


def section_blocks(document: str, section: str) -> list[str]:
    return [text for sec, _, text in html_blocks(document) if sec == section]


def pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [re.sub(r"\s+", " ", page.extract_text() or "") for page in PdfReader(str(path)).pages]


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# --- independent expectations -------------------------------------------------------------------------------


def fmt_auc(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def fmt_pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def fmt_tpr(value: float, ci) -> str:
    return f"{fmt_pct(value)} [{fmt_pct(ci[0])}, {fmt_pct(ci[1])}]"


@dataclass(frozen=True)
class Expected:
    """The per-metric worst case as DESIGN §4.3 defines it, computed here from the per-attack numbers."""

    metric: str
    attacks: frozenset[str]  # the argmax (more than one only on an exact tie of value and AUC)
    value: float | None
    ci: tuple[float, float] | None  # the first tied attack's (messages, CI comparisons)
    flag: str
    cis: tuple[tuple[str, tuple[float, float]], ...] = ()  # every tied attack's own interval

    @property
    def estimable(self) -> bool:
        return self.value is not None

    @property
    def point(self) -> str:
        return f"{self.value:.3f}" if self.metric == "auc" else fmt_pct(self.value)

    @property
    def text(self) -> str:
        return self.text_with(self.ci)

    def text_with(self, ci) -> str:
        return fmt_auc(self.value, ci) if self.metric == "auc" else fmt_tpr(self.value, ci)

    def ci_of(self, attack: str) -> tuple[float, float]:
        return dict(self.cis)[attack]

    def stated_in(self, text: str) -> bool:
        """TEXT names one of the tied attacks together with its value and its own 95% CI."""
        return any(names_one_of(text, frozenset({name})) and self.text_with(ci) in text for name, ci in self.cis)


def expected_worst(attacks: list[dict], metric: str) -> Expected:
    candidates = []
    for attack in attacks:
        if metric == "auc":
            value, ci, flag = attack["auc"], tuple(attack["auc_ci"]), "ok"
        else:
            point = attack["tpr_at_fpr"][f"{FPR_OF[metric]:g}"]
            if point["flag"] == "not_estimable":
                continue
            value, ci, flag = point["tpr"], tuple(point["ci"]), point["flag"]
        candidates.append(((value, attack["auc"]), attack["name"], ci, flag))
    if not candidates:
        return Expected(metric=metric, attacks=frozenset(), value=None, ci=None, flag="not_estimable")
    best = max(key for key, *_ in candidates)
    winners = [c for c in candidates if c[0] == best]
    return Expected(metric=metric, attacks=frozenset(c[1] for c in winners), value=best[0], ci=winners[0][2],
                    flag=winners[0][3], cis=tuple((c[1], c[2]) for c in winners))


def expected_all(attacks: list[dict]) -> dict[str, Expected]:
    return {metric: expected_worst(attacks, metric) for metric in METRICS}


def headline_metric(expected: dict[str, Expected]) -> str:
    """The headline leads with the strongest estimable low-FPR figure: the lowest estimable FPR level."""
    for metric in ("tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"):
        if expected[metric].estimable:
            return metric
    return "auc"


def names_one_of(text: str, attacks: frozenset[str]) -> bool:
    return any(re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) for name in attacks)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    alpha = 1 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


# --- a deliberately shifted audit set from bundled data -----------------------------------------------------


def _write_manifest(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for features, label in zip(x, y):
            writer.writerow([f"{v:g}" for v in features] + [int(label)])
    return path


def shifted_audit_set(folder: Path) -> dict[str, Path]:
    """scikit-learn's bundled digits; within every class, members are the records on one side of the class's first
    principal direction and non-members the other side: a class-conditional region shift, as when members and
    non-members come from different sites or collection dates. The model (logistic regression, exported with
    skl2onnx) trains on the members only."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
    member = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        index = np.flatnonzero(y == label)
        centred = x[index] - x[index].mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        projection = centred @ direction
        member[index[projection < np.median(projection)]] = True
    model = LogisticRegression(C=1.0, max_iter=3000).fit(x[member], y[member])
    onnx_model = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return {
        "model": folder / "model.onnx",
        "members": _write_manifest(folder / "members.csv", x[member], y[member]),
        "nonmembers": _write_manifest(folder / "nonmembers.csv", x[~member], y[~member]),
        "x_members": x[member],
        "x_nonmembers": x[~member],
    }


def blind_auc(x_members: np.ndarray, x_nonmembers: np.ndarray) -> float:
    """Cross-fitted feature-only classifier (the test's own, not the tool's): is the pair really shifted?"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([x_members, x_nonmembers])
    y = np.r_[np.ones(len(x_members)), np.zeros(len(x_nonmembers))]
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
        scores[test] = fitted.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


# --- fixtures: each audit runs once per module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Run:
    """The README's sample command exactly as documented (defaults: 16 shadows, 1,000 bootstrap resamples, seed 0,
    json + html + pdf), on an 80-column terminal; --quiet only so that the terminal text is the summary alone."""
    out = tmp_path_factory.mktemp("sample") / "mia-report"
    return run_in_terminal([*SAMPLE_ARGS, "--quiet"], columns=80, out=out)


@pytest.fixture(scope="module")
def defended(tmp_path_factory, sample) -> Run:
    """The issue's defended run (default shadows; the sample's shadows come from the cache `sample` filled)."""
    out = tmp_path_factory.mktemp("defended") / "mia-report"
    return run_cli([*SAMPLE_ARGS, "--defenses", DEFENSE_SPEC, "--format", "json,html", "--quiet"], out=out)


@pytest.fixture(scope="module")
def html_only(tmp_path_factory) -> Run:
    """`--format html` on a 120-column terminal with progress bars (4 shadows, trained, not cached)."""
    out = tmp_path_factory.mktemp("html-only") / "mia-report"
    return run_in_terminal(
        [*SAMPLE_ARGS, "--format", "html", "--shadow-models", "4", "--no-cache", "--bootstrap", "100", "--no-slices"],
        columns=120, out=out,
    )


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> tuple[Run, dict]:
    folder = tmp_path_factory.mktemp("shifted")
    data = shifted_audit_set(folder)
    run = run_cli(
        ["run", str(data["model"]), "--members", str(data["members"]), "--nonmembers", str(data["nonmembers"]),
         "--shadow-models", "0", "--no-slices", "--bootstrap", "200", "--quiet"],
        out=folder / "mia-report",
    )
    return run, data


@pytest.fixture(scope="module")
def shifted_run(shifted) -> Run:
    """The shifted audit: 901 non-members, so TPR at 0.1% FPR is not estimable there."""
    return shifted[0]


@pytest.fixture(scope="module")
def check_120(sample) -> Run:
    """`mia-audit check` of the sample's results.json on a 120-column terminal (the policy table alone)."""
    return run_in_terminal(["check", str(sample.out / "results.json")], columns=120)


def test_the_runs_completed(sample, defended, html_only, shifted) -> None:
    """Preconditions of everything below: each run ended with a verdict (exit 0, 1 or 3) and wrote its files."""
    shift_run, _ = shifted
    for run in (sample, defended, html_only, shift_run):
        assert run.code in (0, 1, 3), run.terminal[-3000:]
    assert {p.name for p in sample.out.iterdir()} >= {"results.json", "report.html", "report.pdf"}
    assert [p.name for p in html_only.out.iterdir()] == ["report.html"]
    assert defended.results["defenses"] is not None


def test_the_sample_is_a_model_where_attacks_disagree(sample) -> None:
    """Precondition for the consistency tests: on the sample different metrics have different worst attacks, so a
    report that picks "the worst case" once and reuses it for every metric is caught."""
    expected = expected_all(sample.results["attacks"])
    assert expected["auc"].attacks.isdisjoint(expected["tpr_at_fpr_0.001"].attacks)


# --- (i) one worst case per metric, told the same way everywhere ----------------------------------------------


@xfail12("results.json has one worst_case chosen by TPR@0.1%FPR (even a not-estimable one: true_label_probability "
         "8.15% on the shifted set), no per-metric worst_cases")
@pytest.mark.parametrize("which", ["sample", "defended", "shifted_run"])
def test_results_json_has_the_per_metric_worst_cases(which, request) -> None:
    results = request.getfixturevalue(which).results
    expected = expected_all(results["attacks"])
    worst_cases = results["worst_cases"]
    for metric, want in expected.items():
        entry = worst_cases[metric]
        if not want.estimable:
            assert entry["attack"] is None and entry["flag"] == "not_estimable", (metric, entry)
            continue
        assert entry["attack"] in want.attacks, (metric, entry["attack"], sorted(want.attacks))
        assert entry["value"] == pytest.approx(want.value, abs=1e-12), metric
        assert tuple(entry["ci"]) == pytest.approx(want.ci_of(entry["attack"]), abs=1e-12), metric
        assert entry["flag"] == want.flag, metric


@xfail12("the policy's worst-case rules judge whichever attack has the worst outcome / widest CI (lira_online), "
         "not the per-metric worst case (lira_offline); with 901 non-members the TPR@0.1% line shows 0.00% of an "
         "arbitrary attack for a number that is not estimable")
@pytest.mark.parametrize("which", ["sample", "defended", "shifted_run"])
def test_policy_lines_judge_the_per_metric_worst_case(which, request) -> None:
    results = request.getfixturevalue(which).results
    expected = expected_all(results["attacks"])
    judged = [line for line in results["verdict"]["rules"] if line["metric"] in METRICS
              and str(line["target"]).startswith("worst")]
    assert judged, "the default policy has worst-case rules"
    for line in judged:
        want = expected[line["metric"]]
        if not want.estimable:
            assert line["outcome"] == "inconclusive" and line["value"] is None, line
            continue
        assert line["subject"] in {f"attack {name}" for name in want.attacks}, (line["id"], line["subject"])
        assert line["value"] == pytest.approx(want.value, abs=1e-12), line["id"]
        assert tuple(line["ci"]) == pytest.approx(want.ci_of(line["subject"].split(" ", 1)[1]), abs=1e-12), line["id"]


@xfail12("the terminal marks one '* worst case' (chosen by TPR@0.1%FPR) and states no per-metric worst case")
@pytest.mark.parametrize("which", ["sample", "defended", "shifted_run"])
def test_terminal_states_each_metrics_worst_case(which, request) -> None:
    """One line per metric names the label, the attack and the number (as the report writes them)."""
    run = request.getfixturevalue(which)
    lines = run.terminal.splitlines()
    for metric, want in expected_all(run.results["attacks"]).items():
        if want.estimable:
            hits = [l for l in lines if re.search(LABEL_RE[metric], l) and names_one_of(l, want.attacks)
                    and want.point in l]
        else:
            hits = [l for l in lines if re.search(LABEL_RE[metric], l) and "not estimable" in l]
        assert hits, f"no terminal line states the worst case for {metric}: {sorted(want.attacks)} {want.text if want.estimable else ''}"


@xfail12("the executive summary's headline rows describe the TPR@0.1%-chosen attack (lira_offline, AUC 0.624) "
         "while rmia reaches AUC 0.648")
@pytest.mark.parametrize("which", ["sample", "defended", "shifted_run"])
def test_executive_summary_states_each_metrics_worst_case(which, request) -> None:
    """A paragraph or table row of section 2 names, for every metric, its worst attack with value and 95% CI."""
    run = request.getfixturevalue(which)
    blocks = section_blocks(run.html(), "executive-summary")
    for metric, want in expected_all(run.results["attacks"]).items():
        if want.estimable:
            ok = any(re.search(LABEL_RE[metric], b) and want.stated_in(b) for b in blocks)
        else:
            ok = any(re.search(LABEL_RE[metric], b) and "not estimable" in b for b in blocks)
        assert ok, f"section 2 does not state the worst case for {metric} ({sorted(want.attacks)}, " \
                   f"{want.text if want.estimable else 'not estimable'})"


@xfail12("the report's policy table names lira_online for TPR@0.1%FPR and prints raw numbers (0.01 [0, 0.05333])")
def test_report_policy_lines_name_the_same_attack_and_number(sample) -> None:
    results = sample.results
    expected = expected_all(results["attacks"])
    rows = section_blocks(sample.html(), "policy")
    for line in results["verdict"]["rules"]:
        if line["metric"] not in METRICS or not str(line["target"]).startswith("worst"):
            continue
        want = expected[line["metric"]]
        row = next((r for r in rows if r.startswith(line["id"] + " ") or r == line["id"]), None)
        assert row is not None, f"no row for rule {line['id']} in section 10"
        assert want.stated_in(row), (line["id"], want.text, row)


@xfail12("the terminal's policy table names lira_online 1.00% for TPR@0.1%FPR, the summary marks lira_offline")
def test_terminal_policy_lines_name_the_same_attack_and_number(sample, check_120) -> None:
    expected = expected_all(sample.results["attacks"])
    lines = check_120.stdout.splitlines()
    for line in sample.results["verdict"]["rules"]:
        if line["metric"] not in METRICS or not str(line["target"]).startswith("worst"):
            continue
        want = expected[line["metric"]]
        block = "\n".join(table_row_lines(lines, line["id"]))
        assert names_one_of(block, want.attacks) and want.point in block, (line["id"], sorted(want.attacks), block)


def table_row_lines(lines: list[str], first_cell: str) -> list[str]:
    """The terminal lines of the table row whose first cell starts with FIRST_CELL (a row continues while its
    first cell is empty)."""
    def first(line: str) -> str | None:
        cells = line.split("│")
        return cells[1].strip() if len(cells) > 2 else None

    start = next(i for i, line in enumerate(lines) if (first(line) or "").startswith(first_cell))
    end = start + 1
    while end < len(lines) and first(lines[end]) == "":
        end += 1
    return lines[start:end]


def _defense_rows_html(document: str) -> dict[int, str]:
    """Section 8's comparison table: row number → the row's text."""
    rows = {}
    for section, tag, text in html_blocks(document):
        if section == "defenses" and tag == "tr":
            match = re.match(r"(\d+) ", text)
            if match:
                rows[int(match.group(1))] = text
    return rows


@xfail12("each defense row's 'worst case' is picked by a TPR@0.1%FPR that is not estimable on 748 non-members "
         "(dropout: modified_entropy 0.571 although rmia reaches 0.656)")
def test_defense_rows_use_the_per_metric_worst_case(defended) -> None:
    """results.json rows carry worst_cases; the table shows each row's highest-AUC attack and its AUC with CI (AUC
    is the metric estimable on the attack-evaluation set); row 1 tells the same story as the executive summary."""
    results = defended.results
    rows = results["defenses"]["rows"]
    table = _defense_rows_html(defended.html())
    top = expected_all(results["attacks"])
    for number, row in enumerate(rows, start=1):
        if row["status"] != "done":
            continue
        want = expected_worst(row["attacks"], "auc")
        assert row["worst_cases"]["auc"]["attack"] in want.attacks, (row["label"], row["worst_cases"]["auc"])
        text = table[number]
        assert want.stated_in(text), (row["label"], want.text, text)
        if row["role"] == "original":
            assert want.attacks == top["auc"].attacks and want.value == top["auc"].value
    for row in rows:
        if row["status"] == "done" and row["role"] != "original":
            low = row["worst_cases"]["tpr_at_fpr_0.001"]
            assert low["attack"] is None and low["flag"] == "not_estimable", (row["label"], low)


# --- (ii) the contradictions the issue lists ------------------------------------------------------------------

DEFENSE_WORDS = {
    "label_smoothing": r"label[\s-]+smoothing",
    "dropout": r"\bdropout\b",
    "top_k": r"\btop[\s-]?k\b|\btop[\s-]?3\b",
}
NEGATION = re.compile(r"\b(?:not|no|none|never|did not|does not|without|raised|raises)\b", re.IGNORECASE)


def _measured_effect(results: dict) -> dict[str, tuple[str, Expected]]:
    """For every single-defense variant: 'lowers' when its highest-AUC interval lies below the retrained baseline's,
    'raises' when above, else 'no established reduction' (CI-based, on AUC, estimable on every row)."""
    rows = results["defenses"]["rows"]
    base = next(r for r in rows if r["role"] == "retrained_baseline" and r["status"] == "done")
    base_worst = expected_worst(base["attacks"], "auc")
    effects = {}
    for row in rows:
        if row["role"] != "variant" or row["status"] != "done" or len(row["defenses"]) != 1:
            continue
        worst = expected_worst(row["attacks"], "auc")
        if worst.ci[1] < base_worst.ci[0]:
            effect = "lowers"
        elif worst.ci[0] > base_worst.ci[1]:
            effect = "raises"
        else:
            effect = "no established reduction"
        effects[row["defenses"][0]["name"]] = (effect, worst)
    return effects


def _recommendation_blocks(document: str) -> list[tuple[str, str]]:
    """Section 9: (title, whole text) per recommendation (each starts with an h3)."""
    blocks: list[tuple[str, str]] = []
    for section, tag, text in html_blocks(document):
        if section != "recommendations":
            continue
        if tag == "h3":
            blocks.append((text, text))
        elif blocks:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + " " + text)
    return blocks


def test_the_defended_run_measures_contradicting_defenses(defended) -> None:
    """Precondition: step 7 on the sample measures at least one requested defense as not lowering the attack, so
    the recommendation tests below test something."""
    effects = _measured_effect(defended.results)
    assert set(effects) == set(DEFENSES)
    assert any(effect != "lowers" for effect, _ in effects.values()), effects


@xfail12("'Consider label smoothing' and 'Adopt dropout' are recommended although step 7 measured them as raising "
         "or not lowering the attack; 'reduce overfitting' suggests dropout without citing its measurement")
def test_no_recommendation_for_a_defense_measured_not_to_help(defended) -> None:
    effects = _measured_effect(defended.results)
    document = defended.html()
    problems = []
    for title, text in _recommendation_blocks(document):
        for name, (effect, worst) in effects.items():
            if effect == "lowers" or not re.search(DEFENSE_WORDS[name], text, re.IGNORECASE):
                continue
            if re.search(DEFENSE_WORDS[name], title, re.IGNORECASE) and not NEGATION.search(title):
                problems.append(f"'{title}' recommends {name}, measured: {effect} ({worst.text})")
            elif f"{worst.value:.3f}" not in text:
                problems.append(f"'{title}' mentions {name} without citing its measurement ({effect}, {worst.text})")
    for block in section_blocks(document, "executive-summary"):
        for name, (effect, worst) in effects.items():
            if effect != "lowers" and re.search(DEFENSE_WORDS[name], block, re.IGNORECASE) \
                    and f"{worst.value:.3f}" not in block:
                problems.append(f"executive summary mentions {name} without its measured AUC: {block[:160]}")
    assert not problems, "\n".join(problems)


@xfail12("label smoothing carries a Pareto-optimal badge with AUC 0.776, above the retrained baseline's CI")
def test_pareto_badge_only_when_not_above_the_baseline(defended) -> None:
    results = defended.results
    rows = results["defenses"]["rows"]
    base = expected_worst(next(r for r in rows if r["role"] == "retrained_baseline")["attacks"], "auc")
    table = _defense_rows_html(defended.html())
    for number, row in enumerate(rows, start=1):
        if row["status"] != "done":
            continue
        worst = expected_worst(row["attacks"], "auc")
        badge = "Pareto-optimal" in table[number] or bool(row.get("pareto_optimal"))
        if worst.value > base.ci[1]:
            assert not badge, f"{row['label']}: AUC {worst.text} is above the baseline's {base.text} yet Pareto-optimal"


@xfail12("'Worst-case AUC 0.624' is lira_offline's AUC; rmia reaches 0.648")
def test_worst_case_auc_is_the_highest_auc(sample) -> None:
    highest = max(attack["auc"] for attack in sample.results["attacks"])
    for block in section_blocks(sample.html(), "executive-summary"):
        if re.search(r"worst[- ]case AUC", block, re.IGNORECASE):
            assert f"{highest:.3f}" in block, block


# --- (iii) page 1, sign-off, wording true to the files written ------------------------------------------------


@xfail12("page 1 holds the title, contents and document control; the verdict starts on page 2")
def test_page_one_has_verdict_headline_numbers_and_next_step(sample) -> None:
    results = sample.results
    page = pdf_pages(sample.out / "report.pdf")[0]
    assert results["verdict"]["verdict"].upper() in page.upper()
    expected = expected_all(results["attacks"])
    for metric in ("auc", headline_metric(expected)):
        want = expected[metric]
        assert want.stated_in(page), (metric, want.text)
    # The sample is inconclusive on evidence: the next step that would change it is more non-members.
    needed = math.ceil(10 / 0.001)
    assert re.search(rf"{needed:,}\s+non-\s?members", page), "page 1 does not name the next step"


@xfail12("sign-off has name, role, date and signature only")
def test_sign_off_has_decision_conditions_residual_risk_and_reassessment(sample) -> None:
    text = sample.html_text()
    for pattern in (r"\bDecision\b", r"\baccept\b", r"accept with conditions", r"\breject\b", r"\bConditions\b",
                    r"[Rr]esidual risk", r"[Rr]e-?assessment date"):
        assert re.search(pattern, text), pattern


@xfail12("an HTML-only run says results.json is attached to a PDF that was not written")
def test_html_only_run_mentions_no_pdf_attachment(html_only) -> None:
    text = html_only.html_text()
    found = re.search(r".{0,80}attach.{0,80}", text, re.IGNORECASE)
    assert found is None, found.group(0)
    assert "PDF/A" not in text and "report.pdf" not in text


@xfail12("'4 of 300' members singled out has no interval")
def test_members_singled_out_has_a_clopper_pearson_interval(sample) -> None:
    results = sample.results
    entry = results["worst_cases"]["tpr_at_fpr_0.001"]["members_singled_out"]
    n = results["data"]["members"]["n"]
    attack = next(a for a in results["attacks"] if a["name"] == results["worst_cases"]["tpr_at_fpr_0.001"]["attack"])
    k = round(attack["tpr_at_fpr"]["0.001"]["tpr"] * n)
    low, high = clopper_pearson(k, n)
    assert entry["count"] == k and entry["of"] == n
    assert entry["ci"] == [math.floor(low * n), math.ceil(high * n)]
    row = next(b for b in section_blocks(sample.html(), "executive-summary") if "singled out" in b)
    assert f"[{math.floor(low * n)}, {math.ceil(high * n)}]" in row, row


@xfail12("raw keys, Python reprs and unformatted numbers reach the report and results.json")
def test_no_raw_values_in_the_report_or_python_reprs_in_results(sample) -> None:
    text = sample.html_text()
    for pattern in (r"tpr_at_fpr_0\.\d+", r"\b(?:low_evidence|not_estimable|insufficient_evidence)\b",
                    r"\bnull\b(?! hypothes)", r"\[\]", r"\{'", r"\['",
                    r"(?<![\d.,])1 (?:slices|attacks|rules|records|members)\b", r"\bNone\b(?! of\b)", "\u00ad"):
        found = re.search(pattern, text)
        assert found is None, f"{pattern!r}: …{text[max(0, found.start() - 60):found.end() + 60]}…"
    for row in section_blocks(sample.html(), "policy"):  # numbers formatted like everywhere else, not "%.4g"
        assert not re.search(r"(?<![\w.])0\.\d{4,}\b|\[0, ", row), row

    def strings(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    reprs = [s for s in strings(sample.results) if re.match(r"^\s*[\[{(]\s*'", s)]
    assert not reprs, reprs


@xfail12("the environment appendix omits the renderers byte-identity depends on")
def test_environment_appendix_names_renderer_versions(sample) -> None:
    appendix = " ".join(section_blocks(sample.html(), "appendix"))
    for package in ("weasyprint", "matplotlib", "jinja2"):
        version = metadata.version(package)
        assert re.search(rf"{package}\b.*?{re.escape(version)}", appendix, re.IGNORECASE), package
        assert sample.results["environment"]["packages"].get(package) == version


@xfail12("the PDF is untagged and its /AF array lists results.json twice (WeasyPrint 70 pdfa bug)")
def test_pdf_is_tagged_pdfa3_with_each_attachment_once(sample) -> None:
    from pypdf import PdfReader

    reader = PdfReader(str(sample.out / "report.pdf"))
    catalog = reader.trailer["/Root"]
    xmp = catalog["/Metadata"].get_object().get_data().decode("utf-8", "replace")
    assert re.search(r"pdfaid:part(?:>|=\")3", xmp), "not PDF/A-3 any more"
    references = [ref.idnum for ref in catalog["/AF"]]
    assert len(references) == len(set(references)) == len(reader.attachments), references
    assert "/StructTreeRoot" in catalog and catalog["/MarkInfo"]["/Marked"], "untagged PDF"


@xfail12("sources include a course report and an undated article; internal words reach the report")
@pytest.mark.parametrize("which", ["sample", "defended"])
def test_no_internal_jargon_and_peer_reviewed_sources(which, request) -> None:
    run = request.getfixturevalue(which)
    text = run.html_text()
    for pattern in (r"seeds?/\d+", r"seed documents?", r"checklist step", r"with the seed\b", r"the seed's"):
        found = re.search(pattern, text, re.IGNORECASE)
        assert found is None, f"{pattern!r}: …{text[max(0, found.start() - 60):found.end() + 60]}…"
    for title, block in _recommendation_blocks(run.html()):
        references = block.split("References", 1)[-1]
        assert "CSCI2980" not in references and "Raizada" not in references, title


# --- terminal ---------------------------------------------------------------------------------------------------


@xfail12("at 80 columns the summary table folds attack names and outcomes mid-word")
def test_terminal_fits_80_columns_without_splitting_words(sample) -> None:
    text = sample.terminal
    tables = [line for line in text.splitlines() if re.search(r"[│┃┏┗└┡╭╰]", line)]
    assert tables and all(len(line.rstrip()) <= 80 for line in tables)
    for attack in sample.results["attacks"]:
        assert re.search(rf"(?<![\w]){attack['name']}(?![\w])", "\n".join(tables)), f"{attack['name']} split"
    outcomes = "\n".join(line for line in tables if "│" in line)
    for line in sample.results["verdict"]["rules"]:
        assert re.search(rf"\b{line['outcome']}\b", outcomes), f"outcome {line['outcome']} split"


@xfail12("the policy 'why' column wraps to 16 lines at 120 columns")
def test_policy_table_rows_stay_short_at_120_columns(sample, check_120) -> None:
    lines = check_120.stdout.splitlines()
    n_rules = len(sample.results["verdict"]["rules"])
    body_start = next(i for i, l in enumerate(lines) if l.startswith(("┡", "├", "╞")))
    body_end = next(i for i in range(body_start, len(lines)) if lines[i].startswith(("└", "╰")))
    assert body_end - body_start - 1 <= 3 * n_rules, "\n".join(lines[body_start:body_end])
    assert all(len(l.rstrip()) <= 120 for l in lines)


@xfail12("the summary ends with the verdict table; no next step")
def test_terminal_says_the_next_step_after_the_verdict(sample) -> None:
    assert re.search(r"10,000\s+non-\s?members", sample.terminal)


@xfail12("step 7 ran but the terminal summary never mentions the defenses")
def test_terminal_summarises_requested_defenses(defended) -> None:
    for name in DEFENSES:
        assert re.search(DEFENSE_WORDS[name], defended.stdout, re.IGNORECASE), name


@xfail12("numpy RuntimeWarnings from rmia.py leak to stderr")
def test_no_python_warnings_leak(defended) -> None:
    assert "RuntimeWarning" not in defended.stderr and "Warning:" not in defended.stderr.replace("warning:", ""), \
        defended.stderr[-2000:]


@xfail12("progress bars are removed before their last frame (Querying 0/1797, Running attacks 8/12, shadows "
         "jump from ~1,300/4,800)")
def test_every_progress_bar_ends_at_its_total(html_only) -> None:
    last: dict[str, tuple[int, int]] = {}
    for line in html_only.stdout.splitlines():
        match = re.match(r"\W*(\S.*?)\s+[━╸╺╾╼─ ]+\s+(\d+)/(\d+)\b", line)
        if match:
            last[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    assert any(label.startswith("Training") for label in last), sorted(last)
    unfinished = {label: f"{done}/{total}" for label, (done, total) in last.items() if done != total}
    assert not unfinished, unfinished


@xfail12("--help shows `{model}`, `<bool>` on every flag and loses bracketed defaults")
def test_help_keeps_defaults_and_shows_no_internal_metavars() -> None:
    run = run_cli(["run", "--help"])
    assert run.code == 0
    text = run.stdout
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "MODEL" in usage.upper()
    assert "<bool>" not in text
    entry = text.split("--batch-size", 1)[1].split("--drop-overlap", 1)[0]
    assert "auto" in entry and "size ." not in collapse(entry)


# --- (iv) the distribution-shift guard ------------------------------------------------------------------------


def test_the_shifted_pair_is_really_shifted(shifted) -> None:
    """Precondition (the test's own classifier, not the tool's): a feature-only classifier separates the sets."""
    _, data = shifted
    assert blind_auc(data["x_members"], data["x_nonmembers"]) > 0.75


@xfail12("no distribution-shift guard: the shifted audit FAILs the model on AUC 0.90 that the features alone explain")
def test_shift_guard_fires_on_a_shifted_pair(shifted) -> None:
    run, _ = shifted
    results = run.results
    guard = results["distribution_shift"]
    assert guard["detected"] is True and guard["auc_ci"][0] > 0.5, guard
    compared = {entry["attack"]: entry for entry in guard["attacks"]}
    for attack in results["attacks"]:
        entry = compared[attack["name"]]
        assert entry["difference"] == pytest.approx(attack["auc"] - guard["auc"], abs=1e-9), attack["name"]
    assert results["verdict"]["verdict"] == "inconclusive" and run.code == 3
    assert any(re.search(r"distribution shift", line["reason"], re.IGNORECASE) and line["outcome"] == "inconclusive"
               for line in results["verdict"]["rules"]), results["verdict"]["rules"]
    assert re.search(r"distribution shift", run.terminal, re.IGNORECASE)
    page = pdf_pages(run.out / "report.pdf")[0]
    assert re.search(r"distribution shift", page, re.IGNORECASE)
    assert f"{guard['auc']:.3f}" in page


@xfail12("no distribution-shift guard in results.json")
def test_shift_guard_is_quiet_on_the_sample(sample) -> None:
    guard = sample.results["distribution_shift"]
    assert guard["detected"] is False and guard["auc_ci"][0] <= 0.5, guard
    for line in sample.results["verdict"]["rules"]:
        if re.search(r"shift", line["id"] + " " + line["reason"], re.IGNORECASE):
            assert line["outcome"] in ("pass", "skipped"), line


# --- (v) the README tells the truth about the sample ------------------------------------------------------------


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_sample_claims() -> dict[str, dict[str, str]]:
    """The numbers the README's policy section documents for the sample, parsed from its prose."""
    paragraph = collapse(_readme().split("**The sample under the default policy", 1)[1].split("\n\n", 1)[0])
    pct = r"([\d.]+%) \[([\d.]+%), ([\d.]+%)\]"
    patterns = {
        "lira_offline": rf"LiRA offline flags ([\d.]+%) of members at 0\.1% FPR \(95% CI \[([\d.]+%), ([\d.]+%)\]",
        "lira_online": rf"LiRA online {pct}",
        "rmia": r"RMIA reaches AUC ([\d.]+) \[([\d.]+), ([\d.]+)\]",
        "loss": rf"loss attack stays at {pct} and AUC (\d\.\d+)",
    }
    claims = {}
    for attack, pattern in patterns.items():
        match = re.search(pattern, paragraph)
        assert match, f"README no longer states the sample's {attack} numbers in the expected words: {pattern}"
        claims[attack] = match.groups()
    return claims


def test_readme_sample_numbers_are_what_the_sample_prints(sample) -> None:
    claims = _readme_sample_claims()
    attacks = {attack["name"]: attack for attack in sample.results["attacks"]}
    terminal = collapse(sample.terminal)

    def tpr(name: str) -> tuple[str, str, str]:
        point = attacks[name]["tpr_at_fpr"]["0.001"]
        return fmt_pct(point["tpr"]), fmt_pct(point["ci"][0]), fmt_pct(point["ci"][1])

    assert claims["lira_offline"] == tpr("lira_offline")
    assert claims["lira_online"] == tpr("lira_online")
    rmia = attacks["rmia"]
    assert claims["rmia"] == (f"{rmia['auc']:.3f}", f"{rmia['auc_ci'][0]:.3f}", f"{rmia['auc_ci'][1]:.3f}")
    assert claims["loss"] == (*tpr("loss"), f"{attacks['loss']['auc']:.3f}")
    # …and the terminal prints them (the numbers a reader compares with the README).
    assert f"{rmia['auc']:.3f}" in terminal and tpr("lira_offline")[0] in terminal
    assert sample.code == 3 and sample.results["verdict"]["verdict"] == "inconclusive"


@xfail12("'Run the sample' does not say up front that the sample exits 3 (inconclusive)")
def test_readme_run_the_sample_explains_exit_code_3() -> None:
    section = _readme().split("## Run the sample", 1)[1].split("\n## ", 1)[0]
    first_paragraph = collapse(section.strip().split("\n\n", 1)[0])
    assert re.search(r"\b(exit code|exits(?: with)?) 3\b", first_paragraph), first_paragraph
    assert "inconclusive" in first_paragraph.lower()


@xfail12("the README's install line resolves the CUDA build of torch on an ordinary machine")
def test_readme_install_offers_the_cpu_wheel_index() -> None:
    install = _readme().split("## Install", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"pip install torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu", install)
    assert re.search(r"pip install torch==[\d.]+\s*$", install, re.MULTILINE), "keep the line for this project's machines"
