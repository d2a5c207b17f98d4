"""Which measured defense is the best privacy/utility trade-off (no torch: the report imports this too)."""

from __future__ import annotations

from mia_audit.results import DefenseRow

#: At most this much test accuracy (retrained baseline − variant) counts as an acceptable utility cost.
ACCEPTABLE_UTILITY_DROP = 0.02


def best_tradeoff(*, rows: list[DefenseRow]) -> DefenseRow | None:
    """The Pareto-optimal variant with the lowest worst-case AUC among those losing at most
    `ACCEPTABLE_UTILITY_DROP` of test accuracy (among all Pareto-optimal variants if none does), or None when
    no variant can be compared with a retrained baseline. It is the measured best trade-off only when it also
    has a lower worst-case AUC than that baseline."""
    reference = next((r for r in rows if r.role == "retrained_baseline"), None)
    variants = [r for r in rows if r.role == "variant" and r.status == "done" and r.pareto_optimal]
    if reference is None or not variants:
        return None
    acceptable = [r for r in variants if (r.utility_drop or 0) <= ACCEPTABLE_UTILITY_DROP]
    return min(acceptable or variants, key=lambda r: (r.worst_auc, -(r.test_accuracy or 0)))


__all__ = ["ACCEPTABLE_UTILITY_DROP", "best_tradeoff"]
