"""The report's formatters and printable pieces, shared by every section (and registered as Jinja filters).

One set of formatters for the whole report: 3 decimals for AUC, advantage and accuracies; percentages with 2
decimals for TPR; a dash for a missing number. `Cell` is a number with its interval and evidence mark,
`Headline` one line of the executive summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from mia_audit.results import TprAtFpr

__all__ = ["FILTERS", "FLAG_MARK", "HEADLINE_FPR", "Cell", "Headline", "ci", "count", "num", "pct", "pct_ci", "signed", "tpr_cell", "wbr"]

HEADLINE_FPR = "0.001"  # the results.json key of the FPR the summaries lead with (0.1%)
FLAG_MARK = {"ok": "", "low_evidence": "†", "not_estimable": "‡"}


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def ci(bounds: tuple[float, float] | list[float] | None, digits: int = 3) -> str:
    return "" if bounds is None else f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def pct_ci(bounds: tuple[float, float] | list[float] | None, digits: int = 2) -> str:
    return "" if bounds is None else f"[{pct(bounds[0], digits)}, {pct(bounds[1], digits)}]"


def count(value: int) -> str:
    return f"{value:,}"


def wbr(text: str) -> Markup:
    """Escaped text with line-break opportunities after underscores and '=' (long attack and slice names in
    narrow cells)."""
    return Markup(str(escape(text)).replace("_", "_<wbr>").replace("=", "=<wbr>"))


FILTERS = {"num": num, "signed": signed, "pct": pct, "ci": ci, "pct_ci": pct_ci, "count": count, "wbr": wbr}


@dataclass(frozen=True)
class Cell:
    """A number with its interval and evidence mark, printed on two lines in tables."""

    value: str
    interval: str = ""
    mark: str = ""


@dataclass(frozen=True)
class Headline:
    label: str
    value: str
    interval: str = ""
    note: str = ""
    text: bool = False  # a name, not a number: spans the value and interval columns


def tpr_cell(point: TprAtFpr | None) -> Cell:
    """TPR at an FPR as a table cell: "n/e" when not estimable, "–" when absent, else the rate and its CI."""
    if point is None:
        return Cell(value="–")
    if point.flag == "not_estimable":
        return Cell(value="n/e", mark=FLAG_MARK["not_estimable"])
    return Cell(value=pct(point.tpr), interval=pct_ci(point.ci), mark=FLAG_MARK[point.flag])
