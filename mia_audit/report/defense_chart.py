"""The privacy/utility chart of the defense comparison (step 7), through the deterministic `svg_figure` helper.

x = test accuracy on the utility test set, y = worst-case attack AUC with its 95% interval as an error bar;
one numbered point per row of the table, the Pareto-optimal variants connected (no other variant has at least
their accuracy and at most their AUC), and the chance line AUC = 0.5. When one variant costs much more
accuracy than the rest (DP-SGD at small ε typically does), a second panel zooms on the rows near the best
accuracy so that they stay readable. Only the rows' aggregate numbers are drawn.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from mia_audit.report.charts import PAGE_WIDTH_IN, _text, chart_style, svg_figure
from mia_audit.report.defense_view import ChartPoint

# marker, colour per kind of row (Okabe–Ito colours, as in the other charts); explained in the caption
STYLES = {
    "original": ("s", "#777777"),
    "retrained_baseline": ("D", "#000000"),
    "training": ("o", "#0072B2"),
    "output": ("v", "#D55E00"),
    "output + training": ("P", "#CC79A7"),
}
PARETO_COLOUR = "#009E73"
ZOOM_WINDOW = 0.05  # accuracy points below the best that the zoom panel shows
ZOOM_WHEN_SPREAD = 0.15  # zoom only when some row is this far below the best accuracy


def _style(point: ChartPoint) -> tuple[str, str]:
    key = point.role if point.role != "variant" else (point.kind or "training")
    return STYLES.get(key, STYLES["training"])


def _limits(values_low: list[float], values_high: list[float], *, pad_low: float, pad_high: float, floor: float):
    span = max(max(values_high) - min(values_low), floor)
    return min(values_low) - pad_low * span, max(values_high) + pad_high * span


#: label positions tried in turn (offset in points, horizontal alignment) so that close points stay legible
LABEL_SLOTS = (((5, 3), "left"), ((-5, 3), "right"), ((5, -9), "left"), ((-5, -9), "right"))


def _label_slots(points: list[ChartPoint], xlim, ylim) -> list[int]:
    """A label slot per point: the first one not used by an earlier point within 4% of the axes."""
    width, height = xlim[1] - xlim[0], ylim[1] - ylim[0]
    slots: list[int] = []
    for i, point in enumerate(points):
        taken = {
            slots[j] for j in range(i)
            if abs(points[j].test_accuracy - point.test_accuracy) < 0.04 * width and abs(points[j].auc - point.auc) < 0.04 * height
        }
        slots.append(next((k for k in range(len(LABEL_SLOTS)) if k not in taken), 0))
    return slots


def _draw(axes, points: list[ChartPoint], front: list[ChartPoint], *, legend: bool) -> None:
    ylim = _limits([p.auc_ci[0] for p in points] + [0.5], [p.auc_ci[1] for p in points] + [0.5],
                   pad_low=0.08, pad_high=0.12, floor=0.05)
    xlim = _limits([p.test_accuracy for p in points], [p.test_accuracy for p in points],
                   pad_low=0.08, pad_high=0.14, floor=0.01)
    for point, slot in zip(points, _label_slots(points, xlim, ylim)):
        marker, colour = _style(point)
        low, high = point.auc_ci
        axes.errorbar(
            [point.test_accuracy], [point.auc], yerr=[[max(point.auc - low, 0.0)], [max(high - point.auc, 0.0)]],
            fmt=marker, color=colour, markersize=6.5, capsize=2.5, elinewidth=0.9,
            markerfacecolor=colour if point.pareto else "white", markeredgewidth=1.2, zorder=3,
            label=_text(f"{point.index}. {point.label}" + (" — Pareto-optimal" if point.pareto else "")) if legend else None,
        )
        offset, align = LABEL_SLOTS[slot]
        axes.annotate(
            str(point.index), xy=(point.test_accuracy, point.auc), xytext=offset, textcoords="offset points",
            ha=align, fontsize=7.5, fontweight="bold", color=colour, zorder=4,
        )
    if len(front) > 1:
        axes.plot([p.test_accuracy for p in front], [p.auc for p in front], color=PARETO_COLOUR, linewidth=1.1,
                  linestyle="--", zorder=2, label="Pareto front (higher accuracy, lower AUC)" if legend else None)
    axes.axhline(0.5, color="#888888", linestyle=(0, (1, 1.5)), linewidth=1.0, zorder=1,
                 label="chance (AUC = 0.5)" if legend else None)
    axes.set_ylim(*ylim)
    axes.set_xlim(*xlim)
    axes.set_xlabel("Test accuracy (utility, higher is better)")
    axes.set_ylabel("Worst-case attack AUC (lower is more private)")


def privacy_utility_chart(*, points: list[ChartPoint], name: str = "privacy-utility") -> str:
    """Test accuracy vs worst-case AUC [95% CI] for every row; Pareto front connected; chance line."""
    front = sorted((p for p in points if p.pareto), key=lambda p: (p.test_accuracy, p.auc))
    best = max(p.test_accuracy for p in points)
    near = [p for p in points if p.test_accuracy >= best - ZOOM_WINDOW]
    zoom = 1 < len(near) < len(points) and best - min(p.test_accuracy for p in points) > ZOOM_WHEN_SPREAD
    with chart_style():
        longest = max(len(point.label) for point in points)
        columns = 1 if longest > 42 else 2
        legend_rows = -(-(len(points) + 2) // columns)
        figure, axes_row = plt.subplots(
            1, 2 if zoom else 1, figsize=(PAGE_WIDTH_IN, 3.3 + 0.17 * legend_rows), layout="constrained", squeeze=False
        )
        _draw(axes_row[0][0], points, front, legend=True)
        axes_row[0][0].set_title("All rows (bars: 95% CI)")
        if zoom:
            in_view = [p for p in front if p in near]
            _draw(axes_row[0][1], near, in_view, legend=False)
            axes_row[0][1].set_title(f"Zoom: within {ZOOM_WINDOW:.2f} of the best accuracy")
        figure.legend(loc="outside lower center", ncols=columns, frameon=False, handlelength=2.2)
        return svg_figure(figure, name=name)


__all__ = ["privacy_utility_chart"]
