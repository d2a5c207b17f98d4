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

What the gate reads is in `inputs`, the numbers it judges in `measurements`, one rule's judgement in
`judgement`; this module applies waivers, decides the verdict and prepares the gate before an audit runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mia_audit.clock import utc_today
from mia_audit.gate.inputs import GateInput, load_baseline
from mia_audit.gate.judgement import judge_regression_rule, judge_threshold_rule
from mia_audit.gate.metric_catalog import METRICS
from mia_audit.gate.policy import LoadedPolicy, Policy, RegressionRule, default_policy, load_policy, resolve_baseline
from mia_audit.gate.verdict import EXIT_CODES, RuleResult, Verdict, WaiverStatus

__all__ = ["GateSetup", "evaluate", "prepare_gate"]


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
            judgement = judge_regression_rule(rule=rule, policy=policy, data=current, baseline=baseline,
                                              baseline_problem=baseline_problem)
            kind = "regression"
        else:
            judgement = judge_threshold_rule(rule=rule, policy=policy, data=current)
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
                     today=utc_today())
