"""The release gate: judge a results.json against a policy, one line per rule, and decide (DESIGN §6).

Outcomes per rule: pass, warn, fail, inconclusive (the data cannot support a decision) or skipped (the
rule's target is absent and the policy says to skip it). The verdict:

- fail when any rule fails, or warns under `fail_on_warn`;
- otherwise inconclusive when any rule is inconclusive, or when no rule was judged at all;
- otherwise warn when any rule warns, else pass.

A waiver in force turns its rule's warn / fail / inconclusive into a pass for the verdict (the line keeps
the measured outcome and names the waiver); an expired waiver waives nothing and says so.

Evidence (DESIGN §4.3): a number flagged `not_estimable`, measured on fewer non-members than the policy's
minimum, or missing the CI its rule needs, is never compared with a threshold — the rule is inconclusive.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from mia_audit.errors import InputError
from mia_audit.gate.metric_catalog import METRICS, MetricSpec
from mia_audit.gate.policy import (
    SLICE_ANY,
    LoadedPolicy,
    Policy,
    RegressionRule,
    ThresholdRule,
    default_policy,
    load_policy,
    resolve_baseline,
    slice_matches,
)
from mia_audit.results import AuditResult
from mia_audit.gate.verdict import EXIT_CODES, RuleResult, Verdict, WaiverStatus
from mia_audit.files.yaml_source import format_location

SEVERITY = {"skipped": 0, "pass": 1, "warn": 2, "inconclusive": 3, "fail": 4}
ROUNDING = 1e-12  # a judged number "exceeds" a threshold only beyond floating-point noise

# --- inputs ---------------------------------------------------------------------------------------------


class SliceTpr(BaseModel):
    """TPR at one FPR inside a slice entry (the same fields as an attack's, most of them optional)."""

    model_config = ConfigDict(extra="allow")

    tpr: float
    ci: tuple[float, float] | None = None
    flag: str | None = None
    n_nonmembers: int | None = None


class SliceEntry(BaseModel):
    """One entry of results.json's optional `slices` list, read leniently: only what the gate uses."""

    model_config = ConfigDict(extra="allow")

    spec: str
    value: str | int | float | bool | list[str | int | float | bool] | None = None
    attack: str | None = None
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    advantage: float | None = None
    advantage_ci: tuple[float, float] | None = None
    epsilon_lower_bound: float | None = None
    generalization_gap: float | None = None
    tpr_at_fpr: dict[str, SliceTpr] = Field(default_factory=dict)
    flag: str | None = None
    n_members: int | None = None
    n_nonmembers: int | None = None

    @field_validator("tpr_at_fpr", mode="before")
    @classmethod
    def _bare_numbers(cls, value):
        if isinstance(value, dict):
            return {key: {"tpr": item} if isinstance(item, (int, float)) else item for key, item in value.items()}
        return value

    @property
    def label(self) -> str:
        """`spec=value` (list values joined by commas), the name a policy's `slice:` matches."""
        if self.value is None:
            return self.spec
        value = ",".join(str(v) for v in self.value) if isinstance(self.value, list) else str(self.value)
        return f"{self.spec}={value}"


_SLICES = TypeAdapter(list[SliceEntry])


@dataclass(frozen=True)
class GateInput:
    """A results document as the gate reads it: the validated result plus its slices, if any."""

    result: AuditResult
    slices: list[SliceEntry] | None  # None: the results contain no `slices` at all
    source: str


def _slices(raw: object, *, source: str) -> list[SliceEntry] | None:
    if raw is None:
        return None
    try:
        return _SLICES.validate_python(raw)
    except ValidationError as error:
        item = error.errors()[0]
        raise InputError(f"{source}: {format_location(('slices', *item['loc']))}: {item['msg']}") from None


def gate_input(*, result: AuditResult, source: str) -> GateInput:
    """Wrap a result this process just computed; slices come from its JSON form (whichever module wrote them).

    Slices the gate cannot read here are a defect between modules, not bad user input: RuntimeError.
    """
    document = json.loads(result.to_json())
    try:
        slices = _slices(document.get("slices"), source=source)
    except InputError as error:
        raise RuntimeError(f"the slice results do not have the shape the policy gate reads: {error}") from None
    return GateInput(result=result, slices=slices, source=source)


def read_results(*, path: Path) -> tuple[GateInput, dict]:
    """Read and validate a results.json for the gate; InputError (exit code 2) names what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the results file ({error})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a mia-audit results.json (the top level is not an object)")
    version = str(raw.get("schema_version", ""))
    if version.split(".")[0] != "1":
        raise InputError(f"{path}: results schema version '{version}' is not one this mia-audit reads (1.x)")
    # The gate reads slices leniently (only what its rules use; see SliceEntry), so a results file whose
    # slices were written by another tool or version can still be judged; the rest is validated strictly.
    body = {k: v for k, v in raw.items() if k != "slices"}
    try:
        result = AuditResult.model_validate(body)
    except ValidationError as error:
        item = error.errors()[0]
        raise InputError(
            f"{path}: {format_location(item['loc']) or 'document'}: {item['msg']} (not a mia-audit results.json?)"
        ) from None
    return GateInput(result=result, slices=_slices(raw.get("slices"), source=str(path)), source=str(path)), raw


def evaluation_date(*, environ: Mapping[str, str] | None = None) -> date:
    """Today's UTC date for waiver expiry, or SOURCE_DATE_EPOCH's when set (reproducible verdicts)."""
    environ = os.environ if environ is None else environ
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc).date()
        except (ValueError, OverflowError, OSError):
            raise InputError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not '{epoch}'") from None
    return datetime.now(timezone.utc).date()


# --- measurements ---------------------------------------------------------------------------------------


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


def _subjects(rule: ThresholdRule | RegressionRule, data: GateInput) -> tuple[list[Measurement], str | None]:
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


def _minimum(rule: ThresholdRule | RegressionRule, policy: Policy) -> int | None:
    return rule.min_nonmembers if rule.min_nonmembers is not None else policy.min_nonmembers.get(rule.metric)


def _evidence_problem(measurement: Measurement, *, spec: MetricSpec, judgement: str, minimum: int | None) -> str | None:
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


def _low_evidence_note(measurement: Measurement, spec: MetricSpec) -> str:
    if measurement.flag == "low_evidence" and spec.fpr is not None:
        return (f"; low evidence: {measurement.n_nonmembers} non-members give fewer than 10 expected false "
                f"positives at FPR {spec.fpr:g}")
    return ""


_POINT_NAMES = {"point": "point estimate", "upper_ci": "upper 95% bound", "lower_ci": "lower 95% bound"}


def _judged(measurement: Measurement, judgement: str) -> float:
    if judgement == "point":
        return float(measurement.value)
    return measurement.ci[1] if judgement == "upper_ci" else measurement.ci[0]


def _above(value: float, threshold: float | None) -> bool:
    return threshold is not None and value > threshold + ROUNDING


@dataclass(frozen=True)
class _Judgement:
    outcome: str
    judged: float | None
    reason: str
    measurement: Measurement | None
    baseline: float | None = None  # regressions: the baseline's judged number


def _judge_threshold(measurement: Measurement, rule: ThresholdRule, spec: MetricSpec) -> _Judgement:
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
        judged = _judged(measurement, rule.judgement)
        name = _POINT_NAMES[rule.judgement]
        if _above(judged, fail):
            outcome, why = "fail", f"{name} {fmt(judged)} above fail {fmt(fail)}"
        elif _above(judged, warn):
            outcome, why = "warn", f"{name} {fmt(judged)} above warn {fmt(warn)}"
        else:
            limit = f"warn {fmt(warn)}" if warn is not None else f"fail {fmt(fail)}"
            outcome, why = "pass", f"{name} {fmt(judged)} at or below {limit}"
    return _Judgement(outcome=outcome, judged=judged, reason=why + _low_evidence_note(measurement, spec),
                      measurement=measurement)


def _worst(judgements: list[_Judgement]) -> _Judgement:
    return max(judgements, key=lambda j: (SEVERITY[j.outcome], -math.inf if j.judged is None else j.judged))


def _missing(rule: ThresholdRule | RegressionRule, why: str) -> _Judgement:
    if rule.if_missing == "skip":
        return _Judgement(outcome="skipped", judged=None, reason=f"skipped: {why} (if_missing: skip)", measurement=None)
    return _Judgement(outcome="inconclusive", judged=None, reason=f"{why}; nothing to judge", measurement=None)


def _evaluate_threshold(rule: ThresholdRule, policy: Policy, data: GateInput) -> _Judgement:
    spec = METRICS[rule.metric]
    measurements, missing = _subjects(rule, data)
    if missing:
        return _missing(rule, missing)
    minimum = _minimum(rule, policy)
    judgements = []
    for measurement in measurements:
        problem = _evidence_problem(measurement, spec=spec, judgement=rule.judgement, minimum=minimum)
        if problem:
            judgements.append(_Judgement(outcome="inconclusive", judged=None, reason=problem, measurement=measurement))
        else:
            judgements.append(_judge_threshold(measurement, rule, spec))
    worst = _worst(judgements)
    reason = f"{worst.measurement.subject}: {worst.reason}"
    if len(judgements) > 1:
        counts = Counter(j.outcome for j in judgements)
        tally = ", ".join(f"{counts[o]} {o}" for o in ("fail", "inconclusive", "warn", "pass") if counts[o])
        kind = "slices" if getattr(rule, "slice", None) else "attacks"
        reason += f" (worst of {len(judgements)} {kind}: {tally})"
    return _Judgement(outcome=worst.outcome, judged=worst.judged, reason=reason, measurement=worst.measurement)


@dataclass(frozen=True)
class _Side:
    """One side of a regression: its worst measurement and judged number, or why there is none."""

    measurement: Measurement | None = None
    judged: float | None = None
    missing: str | None = None  # the target is absent: the rule's if_missing applies
    problem: str | None = None  # present but not judgeable: inconclusive


def _side(rule: RegressionRule, policy: Policy, data: GateInput, name: str) -> _Side:
    spec = METRICS[rule.metric]
    measurements, missing = _subjects(rule, data)
    if missing:
        return _Side(missing=f"{name}: {missing}")
    minimum = _minimum(rule, policy)
    for measurement in measurements:
        problem = _evidence_problem(measurement, spec=spec, judgement=rule.judgement, minimum=minimum)
        if problem:
            return _Side(measurement=measurement, problem=f"{name}, {measurement.subject}: {problem}")
    worst = max(measurements, key=lambda m: _judged(m, rule.judgement))
    return _Side(measurement=worst, judged=_judged(worst, rule.judgement))


def _evaluate_regression(rule: RegressionRule, policy: Policy, data: GateInput,
                         baseline: GateInput | None, baseline_problem: str | None) -> _Judgement:
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
            return _Judgement(outcome="inconclusive", judged=None, reason=side.problem, measurement=now.measurement)
    change = now.judged - before.judged
    if _above(change, rule.fail):
        outcome, comparison = "fail", f"more than the allowed {spec.format_change(rule.fail)} for fail"
    elif _above(change, rule.warn):
        outcome, comparison = "warn", f"more than the allowed {spec.format_change(rule.warn)} for warn"
    else:
        limit = rule.warn if rule.warn is not None else rule.fail
        outcome, comparison = "pass", f"within the allowed {spec.format_change(limit)}"
    reason = (f"{spec.label} {_POINT_NAMES[rule.judgement]}: {spec.format(before.judged)} in the baseline "
              f"({before.measurement.subject}), {spec.format(now.judged)} now ({now.measurement.subject}); "
              f"change {spec.format_change(change)}, {comparison}")
    if baseline.result.data.nonmembers.sha256 != data.result.data.nonmembers.sha256:
        reason += "; note: the baseline was measured on different non-members"
    return _Judgement(outcome=outcome, judged=change, reason=reason + _low_evidence_note(now.measurement, spec),
                      measurement=now.measurement, baseline=before.judged)


# --- waivers and the verdict ----------------------------------------------------------------------------


def _waiver_status(rule_id: str, outcome: str, policy: Policy, today: date) -> tuple[WaiverStatus | None, str]:
    waiver = next((w for w in policy.waivers if w.rule == rule_id), None)
    if waiver is None:
        return None, ""
    expires = waiver.expires.isoformat()
    if today > waiver.expires:
        status = WaiverStatus(reason=waiver.reason, approver=waiver.approver, expires=expires, status="expired",
                              applied=False)
        return status, f"; waiver by {waiver.approver} expired on {expires} and no longer waives this rule"
    if outcome in ("warn", "fail", "inconclusive"):
        days = (waiver.expires - today).days
        status = WaiverStatus(reason=waiver.reason, approver=waiver.approver, expires=expires, status="active",
                              applied=True)
        return status, f"; WAIVED by {waiver.approver} until {expires} ({days} day(s) left): {waiver.reason}"
    status = WaiverStatus(reason=waiver.reason, approver=waiver.approver, expires=expires, status="not_needed",
                          applied=False)
    return status, ""


def _decide(lines: list[RuleResult], *, fail_on_warn: bool) -> tuple[str, str]:
    counted = Counter(line.counts_as for line in lines)
    if counted["fail"] or (fail_on_warn and counted["warn"]):
        verdict = "fail"
    elif counted["inconclusive"]:
        verdict = "inconclusive"
    elif counted["warn"]:
        verdict = "warn"
    elif counted["pass"]:
        verdict = "pass"
    else:
        verdict = "inconclusive"
    measured = Counter(line.outcome for line in lines)
    tally = ", ".join(f"{measured[o]} {o}" for o in ("fail", "inconclusive", "warn", "pass", "skipped") if measured[o])
    notes = []
    waived = sum(1 for line in lines if line.waiver is not None and line.waiver.applied)
    expired = sum(1 for line in lines if line.waiver is not None and line.waiver.status == "expired")
    if waived:
        notes.append(f"{waived} waived")
    if expired:
        notes.append(f"{expired} waiver(s) expired")
    if fail_on_warn and counted["warn"] and not counted["fail"]:
        notes.append("fail_on_warn: a warning fails the gate")
    if not (counted["fail"] or counted["inconclusive"] or counted["warn"] or counted["pass"]):
        notes.append("no rule could be judged")
    summary = f"{verdict.upper()}: {len(lines)} rule(s): {tally}" + (f"; {'; '.join(notes)}" if notes else "")
    return verdict, summary


def evaluate(
    *,
    loaded: LoadedPolicy,
    current: GateInput,
    today: date,
    baseline: GateInput | None = None,
    baseline_source: str | None = None,
    baseline_problem: str | None = None,
) -> Verdict:
    """Judge `current` under the policy; `today` decides which waivers are in force."""
    policy = loaded.policy
    lines: list[RuleResult] = []
    for rule in policy.all_rules():
        spec = METRICS[rule.metric]
        if isinstance(rule, RegressionRule):
            judgement = _evaluate_regression(rule, policy, current, baseline, baseline_problem)
            kind = "regression"
        else:
            judgement = _evaluate_threshold(rule, policy, current)
            kind = "threshold"
        waiver, note = _waiver_status(rule.id, judgement.outcome, policy, today)
        measurement = judgement.measurement
        lines.append(
            RuleResult(
                id=rule.id,
                kind=kind,
                description=rule.description,
                target=rule.target,
                metric=spec.name,
                on=rule.judgement,
                subject=None if measurement is None else measurement.subject,
                value=None if measurement is None else measurement.value,
                ci=None if measurement is None else measurement.ci,
                judged=judgement.judged,
                baseline_value=judgement.baseline,
                warn=rule.warn,
                fail=rule.fail,
                n_nonmembers=None if measurement is None else measurement.n_nonmembers,
                evidence=None if measurement is None else measurement.flag,
                outcome=judgement.outcome,
                reason=judgement.reason + note,
                waiver=waiver,
            )
        )
    verdict, summary = _decide(lines, fail_on_warn=policy.fail_on_warn)
    return Verdict(
        verdict=verdict,
        exit_code=EXIT_CODES[verdict],
        summary=summary,
        policy=loaded.source,
        policy_sha256=loaded.sha256,
        evaluated_on=today.isoformat(),
        fail_on_warn=policy.fail_on_warn,
        baseline=baseline_source,
        rules=lines,
    )


def load_baseline(*, path: Path | None) -> tuple[GateInput | None, str | None, str | None]:
    """(baseline, its source, why there is none). A missing file is the regression rules' `if_missing`
    case (the first run of a pipeline has no previous results); a broken one is an input error."""
    if path is None:
        return None, None, None
    if not path.exists():
        return None, str(path), f"baseline results file {path} not found"
    baseline, _ = read_results(path=path)
    return baseline, str(path), None


@dataclass(frozen=True)
class GateSetup:
    """Everything the gate needs besides the results, prepared (and checked) before an audit runs."""

    loaded: LoadedPolicy
    baseline: GateInput | None
    baseline_source: str | None
    baseline_problem: str | None
    today: date

    def judge(self, *, current: GateInput) -> Verdict:
        return evaluate(loaded=self.loaded, current=current, today=self.today, baseline=self.baseline,
                        baseline_source=self.baseline_source, baseline_problem=self.baseline_problem)


def prepare_gate(*, policy_path: Path | None, baseline_path: Path | None) -> GateSetup:
    """Load the policy (or the default one), the baseline and the evaluation date; InputError on bad input."""
    loaded = load_policy(path=policy_path) if policy_path is not None else default_policy()
    baseline, source, problem = load_baseline(path=resolve_baseline(loaded=loaded, override=baseline_path))
    return GateSetup(loaded=loaded, baseline=baseline, baseline_source=source, baseline_problem=problem,
                     today=evaluation_date())


__all__ = [
    "GateInput",
    "SliceEntry",
    "evaluate",
    "evaluation_date",
    "gate_input",
    "GateSetup",
    "load_baseline",
    "prepare_gate",
    "read_results",
]
