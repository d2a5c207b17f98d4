"""What the CLI prints: the progress bars, the attack summary, the worst slices and the policy verdict table.

Only formatting; every number comes from the results. Tables go to stdout, or to stderr with --json (stdout
then carries the results document alone).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mia_audit.gate.ci_artifacts import threshold_text, value_text, waiver_text
from mia_audit.gate.metric_catalog import METRICS
from mia_audit.gate.verdict import Verdict
from mia_audit.results import AuditResult

__all__ = ["RichProgress", "make_console", "print_run_summary", "slice_lines", "summary_table", "verdict_table"]


def make_console(*, stderr: bool) -> Console:
    """Rich console; when not on a terminal (CI logs, pipes) wide enough that the table stays readable.

    NO_COLOR (https://no-color.org) turns off every escape sequence, not only colours.
    """
    plain = {"color_system": None} if os.environ.get("NO_COLOR") else {}
    console = Console(stderr=stderr, highlight=False, **plain)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=160, **plain)
    return console


class RichProgress:
    """ProgressSink drawing one transient bar per stage on stderr."""

    def __init__(self, *, console: Console, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = None

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def begin(self, label: str, total: int | None = None) -> None:
        self.end()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def end(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None

def _fmt_ci(value: float, ci: tuple[float, float], *, percent: bool = False) -> str:
    if percent:
        return f"{value:.2%} [{ci[0]:.2%}, {ci[1]:.2%}]"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def summary_table(result: AuditResult) -> Table:
    table = Table(title=f"Membership inference audit — {Path(result.model.path).name}", title_justify="left")
    for column in ("attack", "AUC [95% CI]", "TPR@0.1%FPR [95% CI]", "TPR@1%FPR", "advantage", "bal. acc.", "ε lb"):
        table.add_column(column, overflow="fold")
    for attack in result.attacks:
        low, one = attack.tpr_at_fpr["0.001"], attack.tpr_at_fpr["0.01"]
        flag = "" if low.flag == "ok" else f" ({low.flag})"
        marker = " *" if result.worst_case and attack.name == result.worst_case.attack else ""
        table.add_row(
            attack.name + marker,
            _fmt_ci(attack.auc, attack.auc_ci),
            _fmt_ci(low.tpr, low.ci, percent=True) + flag,
            f"{one.tpr:.2%}",
            f"{attack.advantage:+.3f}",
            f"{attack.balanced_accuracy:.3f}",
            f"{attack.epsilon_lower_bound:.2f}",
        )
    gap = result.utility
    table.caption = (
        f"* worst case. member acc {gap.member_accuracy:.3f}, non-member acc {gap.nonmember_accuracy:.3f}, "
        f"gap {gap.generalization_gap:+.3f}; {result.data.members.n} members, {result.data.nonmembers.n} non-members"
    )
    return table


_OUTCOME_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "inconclusive": "magenta",
                   "skipped": "dim"}


def verdict_table(verdict: Verdict) -> Table:
    """One row per rule; free text (paths, reasons, waivers) is escaped so it is never read as markup."""
    style = _OUTCOME_STYLES[verdict.verdict]
    table = Table(title=f"Policy gate — [{style}]{verdict.verdict.upper()}[/] ({escape(verdict.policy)})",
                  title_justify="left")
    for column in ("rule", "target", "metric", "value [95% CI]", "thresholds", "outcome", "why"):
        table.add_column(escape(column), overflow="fold")
    for line in verdict.rules:
        outcome = f"[{_OUTCOME_STYLES[line.outcome]}]{line.outcome}[/]"
        if line.waiver is not None and line.waiver.status != "not_needed":
            outcome += f" ({escape(waiver_text(line))})"
        cells = (line.id, line.target, f"{METRICS[line.metric].label} ({line.on})", value_text(line),
                 threshold_text(line))
        table.add_row(*map(escape, cells), outcome, escape(line.reason))
    table.caption = escape(f"{verdict.summary}; exit code {verdict.exit_code}")
    return table

def slice_lines(result: AuditResult, *, top: int = 3) -> list[str]:
    """The worst slices (by the AUC's lower CI bound) and the subject-level worst case, for the summary."""
    lines = []
    if result.slice_summary is not None:
        summary = result.slice_summary
        worst = summary.worst_slices[:top]
        lines.append(
            f"slices: {summary.n_tested} slice × attack pairs tested, {summary.n_significant} significant "
            f"(Benjamini–Hochberg, FDR {summary.fdr:g}), {summary.n_insufficient} slices with too few records"
        )
        if worst:
            lines.append("worst slices (ranked by the lower 95% CI bound of the AUC):")
        for number, entry in enumerate(worst, start=1):
            lines.append(
                f"  {number}. {entry.name} ({entry.attack}): AUC {_fmt_ci(entry.auc, entry.auc_ci)}, "
                f"adjusted p {entry.p_value_adjusted:.2g}{'' if entry.significant else ' (not significant)'}, "
                f"{entry.n_members} members / {entry.n_nonmembers} non-members"
            )
    if result.subjects is not None and result.subjects.worst_case is not None:
        worst = result.subjects.worst_case
        lines.append(
            f"subjects ('{result.subjects.group_column}'): worst {worst.attack} AUC {_fmt_ci(worst.auc, worst.auc_ci)} "
            f"over {result.subjects.n_member_subjects} member / {result.subjects.n_nonmember_subjects} "
            "non-member subjects"
        )
    return lines


def print_run_summary(*, result: AuditResult, verdict: Verdict, written: list[Path], junit: Path | None,
                      restricted: Path | None, as_json: bool) -> None:
    """After `run`: warnings on stderr, then the attack table, the worst slices, the verdict and the files
    written (on stdout, or on stderr with --json); where the restricted per-record file went, on stderr."""
    for warning in result.warnings:
        sys.stderr.write(f"mia-audit: warning: {warning}\n")
    console = make_console(stderr=as_json)
    console.print(summary_table(result))
    for line in slice_lines(result):
        console.print(line, markup=False, highlight=False)
    console.print(verdict_table(verdict))
    for path in written:
        console.print(f"{'results' if path.suffix == '.json' else 'report'}: {path}")
    if junit:
        console.print(f"JUnit: {junit}")
    if restricted is not None:
        sys.stderr.write(
            f"mia-audit: per-record scores written to {restricted} (RESTRICTED: personal data about the "
            "audited records; owner-only permissions; never attach it to the report)\n"
        )
