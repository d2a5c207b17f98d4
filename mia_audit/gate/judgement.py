"""Judging one rule: a threshold rule over its measurements, or a regression rule against a baseline.

Outcomes per rule: pass, warn, fail, inconclusive (the data cannot support a decision) or skipped (the
rule's target is absent and the policy says to skip it). A rule over several attacks or slices takes the
worst of their outcomes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from mia_audit.gate.inputs import GateInput
from mia_audit.gate.measurements import (
    POINT_NAMES,
    Measurement,
    evidence_problem,
    judged_value,
    low_evidence_note,
    measurements_for,
    minimum_nonmembers,
)
from mia_audit.gate.metric_catalog import METRICS, MetricSpec
from mia_audit.gate.policy import Policy, RegressionRule, ThresholdRule

__all__ = ["Judgement", "judge_regression_rule", "judge_threshold_rule"]

SEVERITY = {"skipped": 0, "pass": 1, "warn": 2, "inconclusive": 3, "fail": 4}
ROUNDING = 1e-12  # a judged number "exceeds" a threshold only beyond floating-point noise


def _above(value: float, threshold: float | None) -> bool:
    return threshold is not None and value > threshold + ROUNDING


@dataclass(frozen=True)
class Judgement:
    outcome: str
    judged: float | None
    reason: str
    measurement: Measurement | None
    baseline: float | None = None  # regressions: the baseline's judged number


def _judge_threshold(measurement: Measurement, rule: ThresholdRule, spec: MetricSpec) -> Judgement:
    fmt = spec.format
    warn, fail = rule.warn, rule.fail
    if rule.judgement == "ci":
        low, high = measurement.ci
        ci = spec.format_ci(measurement.ci)
        if _above(low, fail):
            outcome, judged, why = "fail", low, f"95% CI {ci} lies above fail {fmt(fail)}"
        elif _above(high, fail):
            outcome, judged = "inconclusive", high
            why = f"95% CI {ci} straddles fail {fmt(fail)}: the data cannot tell whether it fails"
        elif _above(high, warn):
            outcome, judged = "warn", high
            why = f"95% CI {ci} reaches above warn {fmt(warn)}" + (
                f", all of it at or below fail {fmt(fail)}" if fail is not None else "")
        else:
            outcome, judged = "pass", high
            why = f"95% CI {ci} at or below {'warn ' + fmt(warn) if warn is not None else 'fail ' + fmt(fail)}"
    else:
        judged = judged_value(measurement, judgement=rule.judgement)
        name = POINT_NAMES[rule.judgement]
        if _above(judged, fail):
            outcome, why = "fail", f"{name} {fmt(judged)} above fail {fmt(fail)}"
        elif _above(judged, warn):
            outcome, why = "warn", f"{name} {fmt(judged)} above warn {fmt(warn)}"
        else:
            limit = f"warn {fmt(warn)}" if warn is not None else f"fail {fmt(fail)}"
            outcome, why = "pass", f"{name} {fmt(judged)} at or below {limit}"
    return Judgement(outcome=outcome, judged=judged, reason=why + low_evidence_note(measurement, spec=spec),
                      measurement=measurement)


def _worst(judgements: list[Judgement]) -> Judgement:
    return max(judgements, key=lambda j: (SEVERITY[j.outcome], -math.inf if j.judged is None else j.judged))


def _missing(rule: ThresholdRule | RegressionRule, why: str) -> Judgement:
    if rule.if_missing == "skip":
        return Judgement(outcome="skipped", judged=None, reason=f"skipped: {why} (if_missing: skip)", measurement=None)
    return Judgement(outcome="inconclusive", judged=None, reason=f"{why}; nothing to judge", measurement=None)


def judge_threshold_rule(*, rule: ThresholdRule, policy: Policy, data: GateInput) -> Judgement:
    spec = METRICS[rule.metric]
    measurements, missing = measurements_for(rule=rule, data=data)
    if missing:
        return _missing(rule, missing)
    minimum = minimum_nonmembers(rule=rule, policy=policy)
    judgements = []
    for measurement in measurements:
        problem = evidence_problem(measurement, spec=spec, judgement=rule.judgement, minimum=minimum)
        if problem:
            judgements.append(Judgement(outcome="inconclusive", judged=None, reason=problem, measurement=measurement))
        else:
            judgements.append(_judge_threshold(measurement, rule, spec))
    worst = _worst(judgements)
    reason = f"{worst.measurement.subject}: {worst.reason}"
    if len(judgements) > 1:
        counts = Counter(j.outcome for j in judgements)
        tally = ", ".join(f"{counts[o]} {o}" for o in ("fail", "inconclusive", "warn", "pass") if counts[o])
        kind = "slices" if getattr(rule, "slice", None) else "attacks"
        reason += f" (worst of {len(judgements)} {kind}: {tally})"
    return Judgement(outcome=worst.outcome, judged=worst.judged, reason=reason, measurement=worst.measurement)


@dataclass(frozen=True)
class _Side:
    """One side of a regression: its worst measurement and judged number, or why there is none."""

    measurement: Measurement | None = None
    judged: float | None = None
    missing: str | None = None  # the target is absent: the rule's if_missing applies
    problem: str | None = None  # present but not judgeable: inconclusive


def _side(rule: RegressionRule, policy: Policy, data: GateInput, name: str) -> _Side:
    spec = METRICS[rule.metric]
    measurements, missing = measurements_for(rule=rule, data=data)
    if missing:
        return _Side(missing=f"{name}: {missing}")
    minimum = minimum_nonmembers(rule=rule, policy=policy)
    for measurement in measurements:
        problem = evidence_problem(measurement, spec=spec, judgement=rule.judgement, minimum=minimum)
        if problem:
            return _Side(measurement=measurement, problem=f"{name}, {measurement.subject}: {problem}")
    worst = max(measurements, key=lambda m: judged_value(m, judgement=rule.judgement))
    return _Side(measurement=worst, judged=judged_value(worst, judgement=rule.judgement))


def judge_regression_rule(*, rule: RegressionRule, policy: Policy, data: GateInput,
                          baseline: GateInput | None, baseline_problem: str | None) -> Judgement:
    spec = METRICS[rule.metric]
    if baseline is None:
        return _missing(rule, baseline_problem or "no baseline results.json (give --baseline or `baseline:`)")
    now = _side(rule, policy, data, "current results")
    before = _side(rule, policy, baseline, "baseline")
    for side in (now, before):
        if side.missing:
            return _missing(rule, side.missing)
    for side in (now, before):
        if side.problem:
            return Judgement(outcome="inconclusive", judged=None, reason=side.problem, measurement=now.measurement)
    change = now.judged - before.judged
    if _above(change, rule.fail):
        outcome, comparison = "fail", f"more than the allowed {spec.format_change(rule.fail)} for fail"
    elif _above(change, rule.warn):
        outcome, comparison = "warn", f"more than the allowed {spec.format_change(rule.warn)} for warn"
    else:
        limit = rule.warn if rule.warn is not None else rule.fail
        outcome, comparison = "pass", f"within the allowed {spec.format_change(limit)}"
    reason = (f"{spec.label} {POINT_NAMES[rule.judgement]}: {spec.format(before.judged)} in the baseline "
              f"({before.measurement.subject}), {spec.format(now.judged)} now ({now.measurement.subject}); "
              f"change {spec.format_change(change)}, {comparison}")
    if baseline.result.data.nonmembers.sha256 != data.result.data.nonmembers.sha256:
        reason += "; note: the baseline was measured on different non-members"
    return Judgement(outcome=outcome, judged=change, reason=reason + low_evidence_note(now.measurement, spec=spec),
                      measurement=now.measurement, baseline=before.judged)
