"""What an AuditResult shows, stated once for the report's verdict line and the recommendation rules.

"Leakage detected" is a statistical statement, not a policy decision: at least one attack does better
than chance with 95% confidence — its AUC interval excludes 0.5, its advantage interval excludes 0, or
its TPR at an estimable FPR level α has a lower bound above α (a chance attacker has TPR = FPR).
Not detecting leakage is not evidence of its absence (DESIGN §4.3, §5 limitations).
"""

from __future__ import annotations

from dataclasses import dataclass

from mia_audit.results import AttackResult, AuditResult

HEADLINE_KEY = "0.001"


@dataclass(frozen=True)
class LeakageAssessment:
    detected: bool
    evidence: tuple[str, ...]  # one line per attack that beats chance, strongest first


def fmt_ci(low: float, high: float, *, digits: int = 3, percent: bool = False) -> str:
    if percent:
        return f"[{low * 100:.{max(digits - 1, 0)}f}%, {high * 100:.{max(digits - 1, 0)}f}%]"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def beats_chance(attack: AttackResult) -> list[str]:
    """Why this attack is better than chance with 95% confidence (empty if it is not)."""
    reasons = []
    if attack.auc_ci[0] > 0.5:
        reasons.append(f"AUC {attack.auc:.3f} {fmt_ci(*attack.auc_ci)} excludes 0.5")
    if attack.advantage_ci[0] > 0:
        reasons.append(f"advantage {attack.advantage:+.3f} {fmt_ci(*attack.advantage_ci)} excludes 0")
    for key, point in sorted(attack.tpr_at_fpr.items(), key=lambda item: float(item[0])):
        if point.flag != "not_estimable" and point.ci[0] > float(key):
            reasons.append(
                f"TPR at {float(key):.1%} FPR {point.tpr:.2%} {fmt_ci(*point.ci, percent=True)} is above {float(key):.1%}"
            )
    return reasons


def assess_leakage(result: AuditResult) -> LeakageAssessment:
    ranked = sorted(result.attacks, key=lambda attack: (-attack.auc, attack.name))
    lines = []
    for attack in ranked:
        reasons = beats_chance(attack)
        if reasons:
            lines.append(f"{attack.name}: " + "; ".join(reasons))
    return LeakageAssessment(detected=bool(lines), evidence=tuple(lines))


def attack_by_name(result: AuditResult, name: str) -> AttackResult | None:
    return next((attack for attack in result.attacks if attack.name == name), None)


def uses_scores(attack: AttackResult) -> bool:
    """Whether the attack reads the model's score vector (as opposed to predicted labels only)."""
    return attack.family != "label-only"


def strongest(attacks: list[AttackResult]) -> AttackResult | None:
    """Highest AUC, ties by name (deterministic)."""
    return min(attacks, key=lambda attack: (-attack.auc, attack.name), default=None)
