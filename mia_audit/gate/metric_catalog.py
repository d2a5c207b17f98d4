"""The metrics a policy can judge: where each lives in results.json, its range, and whether it has a CI.

One registry (`METRICS`) used by the policy schema (names, threshold ranges, which judgements apply) and
by the gate (where to read a number). Every metric is oriented so that higher = more leakage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """One judgeable metric. `field`/`ci_field` name the attribute on an attack (or slice) entry."""

    name: str
    label: str
    low: float
    high: float  # math.inf when unbounded
    field: str
    ci_field: str | None = None
    fpr: float | None = None  # for TPR@FPR metrics: the FPR level, the key "0.001" in results.json
    percent: bool = False
    model_level: bool = False  # a property of the model (same for every attack), read from `utility`
    chance: str = ""

    @property
    def has_ci(self) -> bool:
        return self.ci_field is not None or self.fpr is not None

    @property
    def fpr_key(self) -> str | None:
        return None if self.fpr is None else f"{self.fpr:g}"

    @property
    def span(self) -> float:
        return self.high - self.low

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.percent:
            return f"{value:.2%}"
        return f"{value:.3f}"

    def format_change(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value * 100:+.2f} pp" if self.percent else f"{value:+.3f}"

    def format_ci(self, ci: tuple[float, float] | None) -> str:
        return "no CI" if ci is None else f"[{self.format(ci[0])}, {self.format(ci[1])}]"


def _tpr(alpha: float) -> MetricSpec:
    return MetricSpec(
        name=f"tpr_at_fpr_{alpha:g}",
        label=f"TPR@{alpha:.1%}FPR".replace(".0%", "%"),
        low=0.0,
        high=1.0,
        field="tpr_at_fpr",
        fpr=alpha,
        percent=True,
        chance=f"{alpha:.1%}",
    )


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(name="auc", label="AUC", low=0.0, high=1.0, field="auc", ci_field="auc_ci", chance="0.5"),
        _tpr(0.001),
        _tpr(0.01),
        _tpr(0.1),
        MetricSpec(
            name="advantage", label="advantage", low=-1.0, high=1.0, field="advantage", ci_field="advantage_ci",
            chance="0",
        ),
        MetricSpec(
            name="generalization_gap",
            label="generalization gap",
            low=-1.0,
            high=1.0,
            field="generalization_gap",
            model_level=True,
            chance="0",
        ),
        MetricSpec(
            name="epsilon_lower_bound", label="ε lower bound", low=0.0, high=math.inf, field="epsilon_lower_bound",
            chance="0",
        ),
    )
}

JUDGEMENTS: dict[str, str] = {
    "ci": "the whole 95% CI: fail when it lies above `fail`, inconclusive when it straddles `fail`, "
    "warn when it reaches above `warn`, pass when all of it is at or below `warn`",
    "point": "the point estimate",
    "upper_ci": "the upper 95% confidence bound",
    "lower_ci": "the lower 95% confidence bound",
}

__all__ = ["JUDGEMENTS", "METRICS", "MetricSpec"]
