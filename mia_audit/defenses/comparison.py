"""Step 7's comparison: one row per variant, utility drop, effectiveness, the Pareto front, the recommendation."""

from __future__ import annotations

from mia_audit.defenses.base import DefenseVariant
from mia_audit.defenses.choice import ACCEPTABLE_UTILITY_DROP, best_tradeoff
from mia_audit.evaluation.measure import select_worst_case
from mia_audit.results import AttackResult, DefenseApplied, DefenseRow

__all__ = ["applied", "finish_rows", "make_row", "pareto_front", "recommendation_text"]


def pareto_front(*, accuracy: list[float], auc: list[float]) -> list[bool]:
    """True where no other point has accuracy ≥ and AUC ≤ with one strictly better."""
    flags = []
    for i, (acc_i, auc_i) in enumerate(zip(accuracy, auc)):
        dominated = any(
            acc_j >= acc_i and auc_j <= auc_i and (acc_j > acc_i or auc_j < auc_i)
            for j, (acc_j, auc_j) in enumerate(zip(accuracy, auc))
            if j != i
        )
        flags.append(not dominated)
    return flags


def applied(variant: DefenseVariant) -> list[DefenseApplied]:
    return [
        DefenseApplied(name=d.name, title=d.title, kind=d.kind, parameters=d.parameters.model_dump(), reference=d.reference)
        for d in variant.defenses
    ]


def make_row(
    *, label: str, role: str, variant: DefenseVariant | None, attacks: list[AttackResult], test_acc: float | None,
    member_acc: float, training: dict | None = None, dp: tuple[float, float] | None = None, n_shadows: int = 0,
) -> DefenseRow:
    worst = select_worst_case(attacks=attacks)
    baseline = next((a for a in attacks if a.name == "baseline"), None)
    worst_attack = next((a for a in attacks if worst and a.name == worst.attack), None)
    return DefenseRow(
        label=label,
        role=role,
        defenses=applied(variant) if variant else [],
        test_accuracy=test_acc,
        member_accuracy=member_acc,
        generalization_gap=None if test_acc is None else member_acc - test_acc,
        worst_attack=worst.attack if worst else None,
        worst_auc=worst.auc if worst else None,
        worst_auc_ci=worst.auc_ci if worst else None,
        balanced_accuracy=worst_attack.balanced_accuracy if worst_attack else None,
        baseline_attack_advantage=baseline.advantage if baseline else None,
        baseline_attack_advantage_ci=baseline.advantage_ci if baseline else None,
        dp_epsilon=None if dp is None else dp[0],
        dp_delta=None if dp is None else dp[1],
        n_shadow_models=n_shadows,
        training=training or {},
        attacks=attacks,
        **({"worst_tpr_at_fpr_0.001": worst.tpr_at_fpr_0_001} if worst else {}),
    )


def finish_rows(rows: list[DefenseRow]) -> None:
    """Utility drop and effectiveness against the retrained baseline (or the original), and the Pareto front."""
    reference = next((r for r in rows if r.role == "retrained_baseline"), rows[0])
    for row in rows:
        if row.status != "done" or row.test_accuracy is None:
            continue
        row.utility_drop = reference.test_accuracy - row.test_accuracy
        if row.worst_auc is not None and reference.worst_auc is not None and reference.worst_auc > 0.5:
            row.effectiveness = (reference.worst_auc - row.worst_auc) / (reference.worst_auc - 0.5)
    candidates = [r for r in rows if r.status == "done" and r.role != "original" and r.worst_auc is not None]
    flags = pareto_front(accuracy=[r.test_accuracy for r in candidates], auc=[r.worst_auc for r in candidates])
    for row, flag in zip(candidates, flags):
        row.pareto_optimal = flag


def _ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def recommendation_text(rows: list[DefenseRow]) -> str:
    reference = next((r for r in rows if r.role == "retrained_baseline"), None)
    variants = [r for r in rows if r.role == "variant" and r.status == "done" and r.pareto_optimal]
    best = best_tradeoff(rows=rows)
    if reference is None or best is None:
        return "No defended variant could be compared with a retrained baseline."
    acceptable = [r for r in variants if (r.utility_drop or 0) <= ACCEPTABLE_UTILITY_DROP]
    if best.worst_auc >= reference.worst_auc:
        return (
            f"No measured defense lowered the worst-case AUC below the retrained baseline's {reference.worst_auc:.3f} "
            f"{_ci(reference.worst_auc_ci)} at acceptable utility."
        )
    established = (
        best.worst_auc_ci is not None
        and reference.worst_auc_ci is not None
        and best.worst_auc_ci[1] < reference.worst_auc_ci[0]
    )
    return (
        f"Measured best trade-off: {best.label} — worst-case AUC {best.worst_auc:.3f} {_ci(best.worst_auc_ci)} vs "
        f"{reference.worst_auc:.3f} {_ci(reference.worst_auc_ci)} for the retrained baseline, test accuracy "
        f"{best.test_accuracy:.3f} (utility drop {best.utility_drop:+.3f})"
        + ("" if acceptable else "; every Pareto-optimal defense costs more than 2 points of accuracy")
        + (
            ""
            if established
            else "; its 95% interval overlaps the baseline's, so the reduction is not established at this sample size"
        )
        + "."
    )
