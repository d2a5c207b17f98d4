"""The report's defense-comparison section (workflow step 7), formatted from `results.defenses` alone.

Shaped like the "Defense Comparison" panel of seeds/004 (defense, attack accuracy, AUC, utility,
effectiveness), with what a DPIA reviewer needs on top: the data protocol, 95% intervals and evidence flags,
the label-only baseline attack, the Pareto-optimal choices, the DP accountant's (ε, δ), the papers behind
each defense, and the measured statement that confidence masking leaves the label-only baseline attack
untouched (Li, Li & Ribeiro 2021, CODASPY — seeds/003 §4.1).

Every number printed comes from a `DefenseRow` of results.json; nothing is recomputed from records. The rows are
formatted in `defense_rows`, the measured statements written in `defense_statements`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mia_audit.report.defense_rows import MASKING_DEFENSES, DefenseRowView, kind_text, row_title, row_view, value_text
from mia_audit.report.defense_statements import literature_comparison, masking_statements
from mia_audit.report.format import count
from mia_audit.results import DefenseComparison, DefenseRow

LI_2021 = "Li, Li & Ribeiro 2021, CODASPY (seeds/003 §4.1)"


@dataclass(frozen=True)
class ChartPoint:
    """One row of the privacy/utility chart (numbers straight from the row)."""

    index: int
    label: str
    role: str
    kind: str
    test_accuracy: float
    auc: float
    auc_ci: tuple[float, float]
    pareto: bool


@dataclass(frozen=True)
class DefenseSection:
    protocol: str
    facts: list[tuple[str, str]]
    rows: list[DefenseRowView]
    flags_used: list[str]
    recommendation: str
    pareto_criteria: str
    masking: list[str]
    literature: list[str]
    references: list[tuple[str, str]]  # (defense title, paper)
    notes: list[str]
    points: list[ChartPoint]
    reference_label: str  # what utility drop and effectiveness are relative to


def _facts(comparison: DefenseComparison, rows: list[DefenseRow]) -> list[tuple[str, str]]:
    recipe = comparison.recipe
    recipe_text = ", ".join(f"{key.replace('_', ' ')} {value_text(value)}" for key, value in recipe.items()) or "–"
    shadows = max((row.n_shadow_models for row in rows), default=0)
    holdout = (
        f"{count(comparison.n_holdout)} records from {comparison.holdout_source}"
        if comparison.n_holdout and comparison.holdout_source
        else "none needed by the defenses requested"
    )
    return [
        ("Training set of every retrained variant", f"{count(comparison.n_train)} members (the target's own training records)"),
        ("Utility test set", f"{count(comparison.n_test)} non-members"),
        ("Attack-evaluation non-members", f"{count(comparison.n_attack_nonmembers)}"),
        ("Hold-out for validation / reference data", holdout),
        ("Training recipe (every retrained model)", recipe_text),
        (
            "Adaptive attacker",
            f"{shadows} shadow models per training recipe, trained with the same defense" if shadows
            else "no shadow models (--defense-shadow-models 0): metric and label-only attacks only",
        ),
    ]


def _references(rows: list[DefenseRow]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for row in rows:
        for defense in row.defenses:
            seen.setdefault(defense.title, defense.reference)
    if any(d.name in MASKING_DEFENSES for row in rows for d in row.defenses):
        seen.setdefault("Masking vs the baseline attack", LI_2021)
    return list(seen.items())


def build_defense_section(comparison: DefenseComparison | None) -> DefenseSection | None:
    """The view of step 7's comparison, or None when step 7 did not run."""
    if comparison is None:
        return None
    rows = comparison.rows
    views = [row_view(index, row) for index, row in enumerate(rows, start=1)]
    flags = sorted({v.tpr.mark for v in views if v.tpr.mark})
    points = [
        ChartPoint(
            index=index, label=row_title(row), role=row.role,
            kind=kind_text(row), test_accuracy=row.test_accuracy, auc=row.worst_auc, auc_ci=row.worst_auc_ci,
            pareto=row.pareto_optimal,
        )
        for index, row in enumerate(rows, start=1)
        if row.status == "done" and row.test_accuracy is not None and row.worst_auc is not None and row.worst_auc_ci
    ]
    reference = "the retrained baseline" if any(r.role == "retrained_baseline" for r in rows) else "the original model"
    notes = list(comparison.notes)
    notes += [f"#{v.index} {v.label if v.role == 'variant' else v.title}: {v.notes}" for v in views if v.notes]
    return DefenseSection(
        protocol=comparison.protocol,
        facts=_facts(comparison, rows),
        rows=views,
        flags_used=flags,
        recommendation=comparison.recommendation,
        pareto_criteria=comparison.pareto_criteria,
        masking=masking_statements(rows),
        literature=literature_comparison(rows, n_test=comparison.n_test, n_train=comparison.n_train),
        references=_references(rows),
        notes=notes,
        points=points,
        reference_label=reference,
    )


__all__ = ["ChartPoint", "DefenseSection", "build_defense_section"]
