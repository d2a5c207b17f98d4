"""Deterministic inline-SVG charts for the report (matplotlib, Agg backend).

`svg_figure` is the one helper every chart goes through (ROC, distributions, per-slice AUC; later
privacy/utility charts): it renders with a fixed `svg.hashsalt` and no date, drops the XML prologue,
metadata and comments, and prefixes every id with the chart's name so several charts can live in one HTML
document. The same figure therefore always yields the same bytes.

Charts read only aggregated data from the AuditResult: down-sampled ROC points, fixed-bin histograms and
per-slice AUCs with their intervals.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mia_audit.results import AttackResult, Histogram, SliceResult  # noqa: E402

# Okabe–Ito colour-blind-safe palette; combined with four line styles → 32 distinct attack curves.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":")
MEMBER_COLOUR = "#D55E00"
NONMEMBER_COLOUR = "#0072B2"
PAGE_WIDTH_IN = 6.8  # A4 minus the report's margins

STYLE = {
    "svg.hashsalt": "mia-audit",
    "svg.fonttype": "none",  # text stays text: selectable, searchable, rendered with the report's font
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "path.simplify": False,
}


@contextmanager
def chart_style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def _text(label: str) -> str:
    """Plain text for matplotlib: no mathtext from data, no legend-hiding leading underscore."""
    label = label.replace("$", r"\$")
    return "\u200b" + label if label.startswith("_") else label


def svg_figure(figure: Figure, *, name: str) -> str:
    """Serialise `figure` as inline SVG with ids prefixed by `name`, then close it."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"chart name must be lowercase letters, digits and dashes: {name!r}")
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"mia-audit-{name}"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"', rf'\1="#{name}-\2"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", svg)
    svg = svg.replace("<svg ", f'<svg class="chart-svg" role="img" aria-label="{name}" ', 1)
    return svg.strip() + "\n"


def _style(index: int) -> dict:
    return {"color": PALETTE[index % len(PALETTE)], "linestyle": LINESTYLES[(index // len(PALETTE)) % len(LINESTYLES)]}


def _floor(n: int) -> float:
    """A power of ten at or below 1/n: the lowest FPR (or TPR) step with n records."""
    return float(10.0 ** np.floor(np.log10(1.0 / max(n, 1))))


def roc_chart(*, attacks: list[AttackResult], name: str = "roc", headline_fpr: float = 0.001) -> str:
    """Log-log ROC (left) and linear ROC (right) of every attack, with the chance diagonal.

    The log-log panel marks the headline FPR and shades FPRs below 1/N non-members, which this audit
    cannot resolve (Carlini et al. 2022 argue for reading attacks on this log-log scale).
    """
    n_nonmembers = max((a.n_nonmembers for a in attacks), default=1)
    n_members = max((a.n_members for a in attacks), default=1)
    floor = min(_floor(n_nonmembers), _floor(n_members), headline_fpr / 10)
    with chart_style():
        height = 3.45 + 0.16 * ((len(attacks) + 3) // 3)
        figure, (log_axes, lin_axes) = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, height), layout="constrained")
        for index, attack in enumerate(sorted(attacks, key=lambda a: (-a.auc, a.name))):
            fpr = np.asarray(attack.roc.fpr, dtype=float)
            tpr = np.asarray(attack.roc.tpr, dtype=float)
            label = _text(f"{attack.name} (AUC {attack.auc:.3f})")
            log_axes.plot(np.clip(fpr, floor, 1), np.clip(tpr, floor, 1), drawstyle="steps-post", **_style(index))
            lin_axes.plot(fpr, tpr, drawstyle="steps-post", label=label, **_style(index))
        chance = np.array([floor, 1.0])
        log_axes.plot(chance, chance, color="#888888", linestyle=(0, (1, 1.5)), linewidth=1.0)
        lin_axes.plot([0, 1], [0, 1], color="#888888", linestyle=(0, (1, 1.5)), linewidth=1.0, label="chance")
        log_axes.axvline(headline_fpr, color="#444444", linewidth=0.9, linestyle=(0, (4, 2)))
        log_axes.annotate(
            f"FPR = {headline_fpr:.1%}", xy=(headline_fpr, 1.0), xytext=(3, -3), textcoords="offset points",
            ha="left", va="top", fontsize=7, color="#444444",
        )
        resolution = 1.0 / max(n_nonmembers, 1)
        log_axes.axvspan(floor, resolution, color="#eeeeee", zorder=0, linewidth=0)
        log_axes.text(
            np.sqrt(floor * resolution), np.sqrt(floor), f"FPR < 1/N (N = {n_nonmembers:,})",
            rotation=90, ha="center", va="center", fontsize=6.5, color="#777777",
        )
        log_axes.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05))
        lin_axes.set(xlim=(0, 1), ylim=(0, 1.01))
        log_axes.set_title("ROC, log-log scale (low-FPR region)")
        lin_axes.set_title("ROC, linear scale")
        for axes in (log_axes, lin_axes):
            axes.set_xlabel("False positive rate (non-members flagged)")
            axes.set_ylabel("True positive rate (members flagged)")
        figure.legend(loc="outside lower center", ncols=3, frameon=False, handlelength=2.6)
        return svg_figure(figure, name=name)


def _visible_range(histogram: Histogram) -> tuple[int, int]:
    """First and last bin with any count on either side (empty tails are not drawn)."""
    total = np.asarray(histogram.members) + np.asarray(histogram.nonmembers)
    filled = np.flatnonzero(total)
    if filled.size == 0:
        return 0, len(total) - 1
    return int(filled[0]), int(filled[-1])


def _draw_histogram(axes, histogram: Histogram) -> None:
    """Fractions per bin for both sides. A probability histogram gets a log y axis: the members' mass sits
    at p_y ≈ 1 and the informative difference is the thin tail of non-members the model gets wrong."""
    edges = np.asarray(histogram.edges, dtype=float)
    first, last = _visible_range(histogram)
    if histogram.scale == "linear":
        first, last = 0, len(edges) - 2
    shown = slice(first, last + 1)
    log_y = histogram.scale == "linear"
    largest = max(sum(histogram.members), sum(histogram.nonmembers), 1)
    baseline = 10.0 ** np.floor(np.log10(0.5 / largest)) if log_y else 0.0
    for counts, colour, side in (
        (histogram.nonmembers, NONMEMBER_COLOUR, "non-members"),
        (histogram.members, MEMBER_COLOUR, "members"),
    ):
        counts = np.asarray(counts, dtype=float)
        total = counts.sum()
        fraction = counts / total if total else counts
        values = np.maximum(fraction[shown], baseline)
        axes.stairs(values, edges[first : last + 2], baseline=baseline, fill=True, alpha=0.35, color=colour)
        axes.stairs(
            values, edges[first : last + 2], baseline=baseline, color=colour, linewidth=1.2,
            label=_text(f"{side} (n = {int(total):,})"),
        )
    if histogram.scale == "log":
        axes.set_xscale("log")
    axes.set_xlim(edges[first], edges[last + 1])
    if log_y:
        axes.set_yscale("log")
        axes.set_ylim(baseline, 1.5)
        axes.set_ylabel("Fraction of records in bin (log scale)")
    else:
        axes.set_ylim(0, None)
        axes.set_ylabel("Fraction of records in bin")
    axes.set_xlabel(_text(histogram.label))


def histogram_chart(*, histograms: list[Histogram], name: str = "distributions") -> str:
    """Member vs non-member histograms side by side (Li et al. 2021, Figure 7), one shared legend."""
    with chart_style():
        figure, axes_row = plt.subplots(
            1, len(histograms), figsize=(PAGE_WIDTH_IN, 3.0), layout="constrained", squeeze=False
        )
        for axes, histogram in zip(axes_row[0], histograms):
            _draw_histogram(axes, histogram)
            axes.set_title(_text(histogram.label.split(" (")[0]))
        handles, labels = axes_row[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        return svg_figure(figure, name=name)


SLICE_COLOUR = "#D55E00"
MODEL_OUTPUT_COLOUR = "#777777"
GLOBAL_COLOUR = "#0072B2"
WORST_BAND = "#fde3c8"
SLICE_LABEL_CHARS = 44


def _short(label: str, limit: int = SLICE_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def slice_auc_chart(
    *, slices: list[SliceResult], global_auc: dict[str, float], worst: str | None = None, name: str = "slices"
) -> str:
    """Per-slice AUC with its 95% CI as horizontal error bars, rank 1 at the top (ranked by the lower bound).

    Slice names label the left axis and each slice's attack the right one. An open diamond marks that attack's
    AUC on all records and a dotted line chance (0.5). Slices cut by the model's own output are drawn hollow
    and grey; the worst slice of the disparity summary sits on a shaded band. Reads only aggregated results.
    """
    n = len(slices)
    positions = np.arange(n)
    aucs = np.array([entry.auc for entry in slices], dtype=float)
    lows = np.array([entry.auc_ci[0] for entry in slices], dtype=float)
    highs = np.array([entry.auc_ci[1] for entry in slices], dtype=float)
    globals_ = np.array([global_auc.get(entry.attack, np.nan) for entry in slices], dtype=float)
    model_output = np.array([entry.by_model_output for entry in slices], dtype=bool)
    left = min(0.45, float(np.nanmin(np.concatenate([lows, globals_, [0.5]]))))
    left = float(np.floor(left * 20.0) / 20.0)
    with chart_style():
        figure, axes = plt.subplots(figsize=(PAGE_WIDTH_IN, 1.45 + 0.235 * max(n, 1)), layout="constrained")
        for index, entry in enumerate(slices):
            if entry.name == worst:
                axes.axhspan(index - 0.5, index + 0.5, color=WORST_BAND, zorder=0, linewidth=0)
        handles = []
        for mask, colour, marker, face, label in (
            (~model_output, SLICE_COLOUR, "o", SLICE_COLOUR, "slice AUC with 95% CI"),
            (model_output, MODEL_OUTPUT_COLOUR, "s", "white", "slice cut by the model's own output"),
        ):
            if not mask.any():
                continue
            handles.append(axes.errorbar(
                aucs[mask], positions[mask], xerr=np.vstack([aucs[mask] - lows[mask], highs[mask] - aucs[mask]]),
                fmt=marker, color=colour, markerfacecolor=face, markeredgecolor=colour, markersize=4.2,
                elinewidth=1.2, capsize=2.2, label=label, zorder=3,
            ))
        known = ~np.isnan(globals_)
        if known.any():
            handles.append(axes.scatter(
                globals_[known], positions[known], marker="D", s=16, facecolor="white", edgecolor=GLOBAL_COLOUR,
                linewidth=1.0, zorder=4, label="same attack on all records",
            ))
        handles.append(axes.axvline(
            0.5, color="#888888", linestyle=(0, (1, 1.5)), linewidth=1.0, label="chance (AUC 0.5)", zorder=1
        ))
        axes.set_yticks(positions, [_text(_short(entry.name)) for entry in slices])
        axes.set_ylim(n - 0.5, -0.5)  # rank 1 at the top
        axes.set_xlim(left, 1.0)
        axes.grid(axis="y", visible=False)
        attacks = axes.twinx()
        attacks.set_ylim(n - 0.5, -0.5)
        attacks.set_yticks(positions, [_text(_short(entry.attack, 26)) for entry in slices])
        attacks.tick_params(axis="y", length=0, labelsize=6.8, labelcolor="#555555")
        attacks.grid(False)
        for spine in attacks.spines.values():
            spine.set_visible(False)
        attacks.set_ylabel("Attack (the slice's top-ranked)", color="#555555")
        axes.set_xlabel("AUC (0.5 = chance, 1.0 = members fully separated)")
        axes.set_ylabel("Slice (rank 1 at the top)")
        axes.set_title("Per-slice AUC with 95% confidence intervals")
        figure.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize=7)
        return svg_figure(figure, name=name)
