"""The policy verdict as stored in results.json (`verdict`): one line per rule and the overall decision.

Kept apart from the policy schema so results.json readers need nothing but this and `results.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Outcome = Literal["pass", "warn", "fail", "inconclusive", "skipped"]
VerdictName = Literal["pass", "warn", "fail", "inconclusive"]

EXIT_CODES: dict[str, int] = {"pass": 0, "warn": 0, "fail": 1, "inconclusive": 3}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WaiverStatus(_Model):
    """The waiver that names a rule, and whether it changed the rule's effect on the verdict."""

    reason: str
    approver: str
    expires: str  # ISO date, valid up to and including it
    status: Literal["active", "expired", "not_needed"]
    applied: bool  # True: the rule's warn / fail / inconclusive outcome does not count


class RuleResult(_Model):
    """One line of the verdict: what was measured, what it was compared with, and the outcome."""

    id: str
    kind: Literal["threshold", "regression"]
    description: str | None = None
    target: str  # "worst case", "model", "attack loss", "slice any", "slice sex=F"
    metric: str
    on: str  # ci | point | upper_ci | lower_ci
    subject: str | None = None  # the attack / slice that decided the outcome
    value: float | None = None  # its point estimate
    ci: tuple[float, float] | None = None  # its 95% CI, None where the metric has none
    judged: float | None = None  # the number compared with the thresholds (a regression: the increase)
    baseline_value: float | None = None  # regression only: the baseline's judged number
    warn: float | None = None
    fail: float | None = None
    n_nonmembers: int | None = None
    evidence: str | None = None  # ok | low_evidence | not_estimable where results.json gives a flag
    outcome: Outcome
    reason: str
    waiver: WaiverStatus | None = None

    @property
    def counts_as(self) -> Outcome:
        """The outcome as the verdict sees it: a waived warn / fail / inconclusive counts as pass."""
        return "pass" if self.waiver is not None and self.waiver.applied else self.outcome


class Verdict(_Model):
    """The gate's decision on one results.json under one policy."""

    verdict: VerdictName
    exit_code: int
    summary: str
    policy: str  # a policy file's path, or "built-in default policy"
    policy_sha256: str | None = None
    evaluated_on: str  # ISO date used for waiver expiry (SOURCE_DATE_EPOCH when set)
    fail_on_warn: bool = False
    baseline: str | None = None
    rules: list[RuleResult]


__all__ = ["EXIT_CODES", "Outcome", "RuleResult", "Verdict", "VerdictName", "WaiverStatus"]
