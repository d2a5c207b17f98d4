"""Mitigation recommendations from an AuditResult (and the optional report context).

Each rule looks at the measured evidence and either stays silent or returns one `Recommendation` that
says what to do, the evidence line(s) that triggered it, the expected effect with a citation, and the
cost. No rule fires without evidence from this audit. This module is the rule registry; the rules live in
`defense_rule` (the measured step-7 trade-off), `mitigations` and `assurance`, registered in that order (the
report's order) by importing the package. The rules are grounded in the seed documents:

- Li, Li & Ribeiro 2021 (CODASPY'21): vulnerability tracks the generalization gap; reduce overfitting
  (regularization, mix-up, MMD + mix-up); hiding prediction information (top-k, temperature) has limited
  effect, and the label-only baseline attack keeps an advantage equal to the gap (§3, §4.1, Table 3).
- Azazoglu 2025 (Brown CSCI2980): label smoothing gave the best privacy/utility trade-off; top-3
  confidence masking barely moved attack accuracy (Table I).
- The membership-inference defenses taxonomy and Raizada's deployment checklist: DP-SGD when a formal
  guarantee is required (Abadi et al. 2016), output hardening as defense in depth, validate slices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mia_audit.context import ReportContext
from mia_audit.results import AuditResult


class Recommendation(BaseModel):
    """One recommended action with the evidence that triggered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["mitigation", "assurance"]
    title: str
    action: str
    evidence: list[str]
    effect: str
    references: list[str]
    cost: str


@dataclass(frozen=True)
class RuleInput:
    result: AuditResult
    context: ReportContext | None


Rule = Callable[[RuleInput], Recommendation | None]
_RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    """Register a recommendation rule; rules run in registration order (which is the report's order)."""
    _RULES.append(function)
    return function


def registered_rules() -> list[Rule]:
    return list(_RULES)


def recommend(*, result: AuditResult, context: ReportContext | None = None) -> list[Recommendation]:
    """Every recommendation whose trigger is met by this result, in a fixed order."""
    facts = RuleInput(result=result, context=context)
    return [item for item in (check(facts) for check in _RULES) if item is not None]


__all__ = ["Recommendation", "Rule", "RuleInput", "recommend", "registered_rules", "rule"]
