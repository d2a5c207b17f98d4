"""Recommendation from step 7: the defense measured to give the best privacy/utility trade-off on this model
(or that no tested defense helped at an acceptable cost)."""

from __future__ import annotations

from mia_audit.defenses.choice import ACCEPTABLE_UTILITY_DROP, best_tradeoff
from mia_audit.recommend.findings import fmt_ci
from mia_audit.recommend.rules import Recommendation, RuleInput, rule

__all__ = ["comparison_source", "measured_defense"]


def _defense_auc(row) -> str:
    return f"worst-case AUC {row.worst_auc:.3f} {fmt_ci(*row.worst_auc_ci)} ({row.worst_attack})"


def _defense_evidence(row, reference) -> list[str]:
    """The measured lines of one step-7 row against the retrained baseline (report section 8)."""
    lines = [
        f"{row.label}: {_defense_auc(row)} vs {_defense_auc(reference)} for the retrained baseline",
        f"{row.label}: test accuracy {row.test_accuracy:.3f} vs {reference.test_accuracy:.3f} (utility drop "
        f"{row.utility_drop:+.3f}); generalization gap {row.generalization_gap:+.3f} vs {reference.generalization_gap:+.3f}",
    ]
    if row.baseline_attack_advantage is not None and row.baseline_attack_advantage_ci is not None:
        lines.append(
            f"{row.label}: label-only baseline attack advantage {row.baseline_attack_advantage:+.3f} "
            f"{fmt_ci(*row.baseline_attack_advantage_ci)}"
        )
    if row.dp_epsilon is not None:
        lines.append(f"{row.label}: DP accountant ε = {row.dp_epsilon:.2f} at δ = {row.dp_delta:g}")
    if row.worst_auc_ci[1] >= reference.worst_auc_ci[0]:
        lines.append("the two AUC intervals overlap: the improvement is within this audit's measurement uncertainty")
    return lines


@rule
def measured_defense(facts: RuleInput) -> Recommendation | None:
    """Step 7 ran: name the measured best trade-off (or say that no tested defense helped at acceptable cost)."""
    comparison = facts.result.defenses
    if comparison is None:
        return None
    reference = next((r for r in comparison.rows if r.role == "retrained_baseline" and r.status == "done"), None)
    best = best_tradeoff(rows=comparison.rows)
    if reference is None or best is None or reference.worst_auc is None or best.worst_auc is None:
        return None
    references = list(dict.fromkeys(d.reference for d in best.defenses))
    trained = any(d.kind == "training" for d in best.defenses)
    masking_only = all(d.kind == "output" for d in best.defenses)
    if best.worst_auc < reference.worst_auc:
        return Recommendation(
            id="measured-best-defense",
            kind="mitigation",
            title=f"Adopt the measured best trade-off: {best.label}",
            action=(
                f"Deploy {best.label}"
                + (" (retrain with the same recipe; --export-defended DIR writes the variant measured here as ONNX)"
                   if trained else " on the deployed model's outputs")
                + ", then re-audit the model actually shipped with this tool."
                + (" It hides confidences only: the label-only baseline attack keeps its advantage (section 8)."
                   if masking_only else "")
            ),
            evidence=_defense_evidence(best, reference),
            effect=(
                f"Measured on this model by an adaptive attacker: the worst-case AUC falls by "
                f"{reference.worst_auc - best.worst_auc:.3f}, i.e. {best.effectiveness:+.1%} of the retrained "
                "baseline's excess over chance (section 8, effectiveness)."
            ),
            references=references + [comparison_source()],
            cost=(
                f"Measured utility drop {best.utility_drop:+.3f} in test accuracy"
                + ("; one retraining run with the same recipe" if trained else "; no retraining")
                + "."
            ),
        )
    cheapest_gain = min(
        (r for r in comparison.rows if r.role == "variant" and r.status == "done" and r.worst_auc is not None
         and r.worst_auc < reference.worst_auc),
        key=lambda r: (r.utility_drop if r.utility_drop is not None else 1.0, r.worst_auc),
        default=None,
    )
    if cheapest_gain is not None:
        evidence = _defense_evidence(cheapest_gain, reference)
    else:
        evidence = [
            f"retrained baseline: {_defense_auc(reference)}, test accuracy {reference.test_accuracy:.3f}; no tested "
            "variant has a lower worst-case AUC"
        ]
    return Recommendation(
        id="no-measured-defense",
        kind="mitigation",
        title="No tested defense lowered the attack at an acceptable utility cost",
        action=(
            "Weigh the measured costs in section 8"
            + (f" ({cheapest_gain.label} lowers the attack at a utility drop of {cheapest_gain.utility_drop:+.3f})"
               if cheapest_gain is not None else "")
            + "; or test further defenses or parameters with --defenses and re-audit."
        ),
        evidence=evidence,
        effect=(
            f"None of the Pareto-optimal variants losing at most {ACCEPTABLE_UTILITY_DROP:.2f} of test accuracy beat "
            "the retrained baseline's worst-case AUC in this audit."
        ),
        references=[comparison_source()],
        cost="A decision on the utility the deployment can give up, or further retraining runs.",
    )


def comparison_source() -> str:
    return "this audit, section 8 (defense comparison, workflow step 7)"
