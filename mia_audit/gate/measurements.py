"""The numbers a policy rule judges, read from an attack result, a slice entry or the model's utility.

Evidence (DESIGN §4.3): a number flagged `not_estimable`, measured on fewer non-members than the policy's
minimum, or missing the CI its rule needs, is never compared with a threshold — `evidence_problem` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mia_audit.gate.inputs import GateInput
from mia_audit.gate.metric_catalog import METRICS, MetricSpec
from mia_audit.gate.policy import SLICE_ANY, Policy, RegressionRule, ThresholdRule, slice_matches
from mia_audit.results import AuditResult

__all__ = [
    "POINT_NAMES",
    "Measurement",
    "evidence_problem",
    "judged_value",
    "low_evidence_note",
    "measurements_for",
    "minimum_nonmembers",
]


@dataclass(frozen=True)
class Measurement:
    """One number a rule can judge, with what is known about its evidence."""

    subject: str
    value: float | None
    ci: tuple[float, float] | None
    flag: str | None
    n_nonmembers: int | None


def _measure(entry: object, spec: MetricSpec, *, subject: str) -> Measurement:
    """Read `spec` from an attack result or a slice entry (both use results.json's field names)."""
    entry_flag = getattr(entry, "flag", None)
    n_nonmembers = getattr(entry, "n_nonmembers", None)
    if spec.fpr is not None:
        point = (getattr(entry, "tpr_at_fpr", None) or {}).get(spec.fpr_key)
        if point is None:
            return Measurement(subject=subject, value=None, ci=None, flag=entry_flag, n_nonmembers=n_nonmembers)
        flag = entry_flag if entry_flag == "not_estimable" else (point.flag or entry_flag)
        return Measurement(
            subject=subject,
            value=point.tpr,
            ci=None if point.ci is None else (float(point.ci[0]), float(point.ci[1])),
            flag=flag,
            n_nonmembers=point.n_nonmembers if point.n_nonmembers is not None else n_nonmembers,
        )
    value = getattr(entry, spec.field, None)
    ci = getattr(entry, spec.ci_field, None) if spec.ci_field else None
    return Measurement(
        subject=subject,
        value=None if value is None else float(value),
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        flag=entry_flag,
        n_nonmembers=n_nonmembers,
    )


def _model_measurement(result: AuditResult) -> Measurement:
    return Measurement(
        subject="model",
        value=result.utility.generalization_gap,
        ci=None,
        flag=None,
        n_nonmembers=result.data.nonmembers.n,
    )


def measurements_for(
    *, rule: ThresholdRule | RegressionRule, data: GateInput
) -> tuple[list[Measurement], str | None]:
    """The measurements a rule judges, or why its target is absent from the results."""
    spec = METRICS[rule.metric]
    selector = getattr(rule, "slice", None)
    if selector is not None:
        if not data.slices:
            return [], "the results contain no slice measurements"
        candidates = data.slices
        if selector == SLICE_ANY:
            # `any` judges the slices the audit ranks (issue 5): not those cut by the model's own output on the
            # attack signal (correctness, loss percentile), whose high within-slice AUC is partly selection,
            # nor those with too few records to be tested. Naming their spec still judges them.
            candidates = [
                entry
                for entry in candidates
                if not getattr(entry, "by_model_output", False) and entry.flag != "insufficient_evidence"
            ]
        matched = [
            entry
            for entry in candidates
            if slice_matches(selector=selector, spec=entry.spec, label=entry.label)
            and (rule.attack is None or entry.attack == rule.attack)
        ]
        if not matched:
            present = sorted({entry.label for entry in data.slices})
            shown = ", ".join(present[:6]) + (", …" if len(present) > 6 else "")
            attack = f" for attack {rule.attack}" if rule.attack else ""
            return [], f"no slice matches '{selector}'{attack} (slices in the results: {shown})"
        return [
            _measure(entry, spec, subject=f"slice {entry.label}" + (f" ({entry.attack})" if entry.attack else ""))
            for entry in matched
        ], None
    if spec.model_level:
        return [_model_measurement(data.result)], None
    attacks = data.result.attacks
    if rule.attack is not None:
        attacks = [attack for attack in attacks if attack.name == rule.attack]
        if not attacks:
            ran = ", ".join(a.name for a in data.result.attacks) or "none"
            return [], f"attack {rule.attack} is not in the results (attacks run: {ran})"
    if not attacks:
        return [], "the results contain no attack measurements"
    return [_measure(attack, spec, subject=f"attack {attack.name}") for attack in attacks], None


def minimum_nonmembers(*, rule: ThresholdRule | RegressionRule, policy: Policy) -> int | None:
    return rule.min_nonmembers if rule.min_nonmembers is not None else policy.min_nonmembers.get(rule.metric)


def evidence_problem(measurement: Measurement, *, spec: MetricSpec, judgement: str, minimum: int | None) -> str | None:
    """Why this number must not be compared with a threshold, or None when it may."""
    n = measurement.n_nonmembers
    if measurement.value is None or (isinstance(measurement.value, float) and math.isnan(measurement.value)):
        return f"results.json has no {spec.name} for {measurement.subject}"
    if measurement.flag == "not_estimable":
        needs = f" (needs at least {math.ceil(1 / spec.fpr - 1e-9)})" if spec.fpr else ""
        return f"{spec.label} is not estimable" + (f" with {n} non-members{needs}" if n is not None else "")
    if minimum is not None and (n is None or n < minimum):
        have = "an unknown number of" if n is None else str(n)
        return f"{have} non-members, below the policy's minimum of {minimum} for {spec.name}"
    if judgement != "point" and measurement.ci is None:
        return f"results.json gives no confidence interval for {spec.name} of {measurement.subject}"
    return None


def low_evidence_note(measurement: Measurement, *, spec: MetricSpec) -> str:
    if measurement.flag == "low_evidence" and spec.fpr is not None:
        return (f"; low evidence: {measurement.n_nonmembers} non-members give fewer than 10 expected false "
                f"positives at FPR {spec.fpr:g}")
    return ""


POINT_NAMES = {"point": "point estimate", "upper_ci": "upper 95% bound", "lower_ci": "lower 95% bound"}


def judged_value(measurement: Measurement, *, judgement: str) -> float:
    if judgement == "point":
        return float(measurement.value)
    return measurement.ci[1] if judgement == "upper_ci" else measurement.ci[0]
