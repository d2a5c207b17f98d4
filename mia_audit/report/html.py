"""Render the report's HTML from the view model: Jinja2 with autoescaping, inline CSS and SVG, no scripts."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from mia_audit.report.charts import histogram_chart, roc_chart, slice_auc_chart
from mia_audit.report.defense_chart import privacy_utility_chart
from mia_audit.report.templates import MAIN_TEMPLATE, STYLESHEET, templates_dir
from mia_audit.report.slice_view import CHART_LIMIT, top_slices
from mia_audit.report.format import FILTERS
from mia_audit.report.view import ReportView


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,  # every value from results.json / context.yaml is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


def charts_for(view: ReportView) -> dict[str, Markup]:
    """The report's charts as trusted inline SVG (generated here; text inside is XML-escaped by matplotlib)."""
    result = view.result
    charts: dict[str, Markup] = {}
    if result.attacks:
        charts["roc"] = Markup(roc_chart(attacks=result.attacks, name="roc"))
    histograms = [result.distributions[key] for key in ("loss", "true_label_probability") if key in result.distributions]
    if histograms:
        charts["distributions"] = Markup(histogram_chart(histograms=histograms, name="distributions"))
    shown = top_slices(result, limit=CHART_LIMIT)
    if shown:
        worst = result.slice_summary.worst if result.slice_summary else None
        charts["slices"] = Markup(slice_auc_chart(
            slices=shown,
            global_auc={attack.name: attack.auc for attack in result.attacks},
            worst=worst.name if worst else None,
            name="slices",
        ))
    if view.defenses is not None and view.defenses.points:
        charts["privacy-utility"] = Markup(privacy_utility_chart(points=view.defenses.points, name="privacy-utility"))
    return charts


def render_html(*, view: ReportView) -> str:
    """The complete, self-contained report.html."""
    environment = _environment()
    css = (templates_dir() / STYLESHEET).read_text(encoding="utf-8")
    view.charts = {**charts_for(view), **view.charts}
    return environment.get_template(MAIN_TEMPLATE).render(view=view, css=Markup(css))
