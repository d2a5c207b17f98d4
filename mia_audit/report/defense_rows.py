"""One row of the defense comparison (workflow step 7) as the report prints it, and the names of defenses.

Every number printed comes from a `DefenseRow` of results.json; nothing is recomputed from records.
"""

from __future__ import annotations

from dataclasses import dataclass

from mia_audit.report.format import Cell, ci, num, signed, tpr_cell
from mia_audit.results import DefenseApplied, DefenseRow

__all__ = [
    "MASKING_DEFENSES", "DefenseRowView", "defense_title", "dp_text", "effectiveness", "kind_text", "row_title",
    "row_view", "value_text",
]

#: Output defenses that mask confidences but keep the predicted label (seeds/003 §4.1).
MASKING_DEFENSES = ("top_k", "label_only", "rounding", "temperature")
ROLE_TITLES = {"original": "Original model (as deployed)", "retrained_baseline": "Retrained baseline (no defense)"}


@dataclass(frozen=True)
class DefenseRowView:
    index: int
    label: str  # the variant's label as in results.json, e.g. "label_smoothing(epsilon=0.1)"
    title: str  # readable: "Label smoothing (epsilon = 0.1)"
    role: str
    kind: str  # "training", "output", "training + output" or "" (original / baseline)
    done: bool
    reason: str
    test_accuracy: str
    utility_drop: str
    generalization_gap: str
    worst_attack: str
    auc: Cell
    tpr: Cell
    balanced_accuracy: str
    baseline_advantage: Cell
    effectiveness: str
    pareto: bool
    dp: str  # the accountant's "ε = 3.98, δ = 1e-05", or ""
    notes: str  # compact training notes (epochs, dropout sites, early stopping, distillation, pruning, shadows)


def value_text(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def defense_title(defense: DefenseApplied) -> str:
    """'Label smoothing (epsilon = 0.1)'."""
    if not defense.parameters:
        return defense.title
    return f"{defense.title} (" + ", ".join(f"{k} = {value_text(v)}" for k, v in defense.parameters.items()) + ")"


def row_title(row: DefenseRow) -> str:
    if row.role in ROLE_TITLES:
        return ROLE_TITLES[row.role]
    return " + ".join(defense_title(d) for d in row.defenses) or row.label


def kind_text(row: DefenseRow) -> str:
    kinds = sorted({d.kind for d in row.defenses})
    return " + ".join(kinds)


def effectiveness(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def dp_text(row: DefenseRow) -> str:
    if row.dp_epsilon is None:
        return ""
    return f"ε = {row.dp_epsilon:.2f}" + ("" if row.dp_delta is None else f", δ = {row.dp_delta:g}")


def _training_notes(row: DefenseRow) -> str:
    """Epochs, where dropout went, DP noise, pruning, early stopping / distillation notes, adaptive shadows."""
    training = row.training
    parts: list[str] = []
    if "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    sites = training.get("dropout_sites")
    if sites:
        listed = list(sites) if isinstance(sites, list) else [str(sites)]
        parts.append("dropout " + "; ".join(str(site) for site in listed))
    if "dp_noise_multiplier" in training:
        accountant = training.get("dp_accountant")
        parts.append(
            f"DP-SGD noise multiplier {float(training['dp_noise_multiplier']):.3f}"
            + (f" ({accountant} accountant)" if accountant else "")
        )
    if "pruned_fraction" in training:
        parts.append(f"{float(training['pruned_fraction']) * 100:.1f}% of weights pruned")
    notes = training.get("notes")
    if notes:
        parts.extend(str(note) for note in (notes if isinstance(notes, list) else [notes]))
    for key, value in training.items():
        if key not in ("epochs", "dropout_sites", "dp_noise_multiplier", "dp_accountant", "pruned_fraction", "notes"):
            parts.append(f"{key.replace('_', ' ')}: {value}")
    if row.n_shadow_models:
        parts.append(f"attacked with {row.n_shadow_models} adaptive shadow models")
    return "; ".join(parts)


def row_view(index: int, row: DefenseRow) -> DefenseRowView:
    done = row.status == "done"
    return DefenseRowView(
        index=index,
        label=row.label,
        title=row_title(row),
        role=row.role,
        kind=kind_text(row),
        done=done,
        reason=row.reason or "",
        test_accuracy=num(row.test_accuracy),
        utility_drop=signed(row.utility_drop),
        generalization_gap=signed(row.generalization_gap),
        worst_attack=row.worst_attack or "–",
        auc=Cell(value=num(row.worst_auc), interval=ci(row.worst_auc_ci)),
        tpr=tpr_cell(row.worst_tpr_at_fpr_0_001),
        balanced_accuracy=num(row.balanced_accuracy),
        baseline_advantage=Cell(value=signed(row.baseline_attack_advantage), interval=ci(row.baseline_attack_advantage_ci)),
        effectiveness=effectiveness(row.effectiveness),
        pareto=row.pareto_optimal,
        dp=dp_text(row),
        notes=_training_notes(row) if done else "",
    )
