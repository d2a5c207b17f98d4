"""The report's defense-comparison section (workflow step 7), formatted from `results.defenses` alone.

Shaped like the "Defense Comparison" panel of seeds/004 (defense, attack accuracy, AUC, utility,
effectiveness), with what a DPIA reviewer needs on top: the data protocol, 95% intervals and evidence flags,
the label-only baseline attack, the Pareto-optimal choices, the DP accountant's (ε, δ), the papers behind
each defense, and the measured statement that confidence masking leaves the label-only baseline attack
untouched (Li, Li & Ribeiro 2021, CODASPY — seeds/003 §4.1).

Every number printed comes from a `DefenseRow` of results.json; nothing is recomputed from records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mia_audit.report.view import FLAG_MARK, Cell, ci, count, num, pct, pct_ci, signed
from mia_audit.results import DefenseApplied, DefenseComparison, DefenseRow, TprAtFpr

#: Output defenses that mask confidences but keep the predicted label (seeds/003 §4.1).
MASKING_DEFENSES = ("top_k", "label_only", "rounding", "temperature")
ROLE_TITLES = {"original": "Original model (as deployed)", "retrained_baseline": "Retrained baseline (no defense)"}
LI_2021 = "Li, Li & Ribeiro 2021, CODASPY (seeds/003 §4.1)"


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


# --- formatting helpers ---------------------------------------------------------------------------------


def _value(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def defense_title(defense: DefenseApplied) -> str:
    """'Label smoothing (epsilon = 0.1)'."""
    if not defense.parameters:
        return defense.title
    return f"{defense.title} (" + ", ".join(f"{k} = {_value(v)}" for k, v in defense.parameters.items()) + ")"


def row_title(row: DefenseRow) -> str:
    if row.role in ROLE_TITLES:
        return ROLE_TITLES[row.role]
    return " + ".join(defense_title(d) for d in row.defenses) or row.label


def _kind(row: DefenseRow) -> str:
    kinds = sorted({d.kind for d in row.defenses})
    return " + ".join(kinds)


def _tpr_cell(point: TprAtFpr | None) -> Cell:
    if point is None:
        return Cell(value="–")
    if point.flag == "not_estimable":
        return Cell(value="n/e", mark=FLAG_MARK["not_estimable"])
    return Cell(value=pct(point.tpr), interval=pct_ci(point.ci), mark=FLAG_MARK[point.flag])


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


def _row_view(index: int, row: DefenseRow) -> DefenseRowView:
    done = row.status == "done"
    return DefenseRowView(
        index=index,
        label=row.label,
        title=row_title(row),
        role=row.role,
        kind=_kind(row),
        done=done,
        reason=row.reason or "",
        test_accuracy=num(row.test_accuracy),
        utility_drop=signed(row.utility_drop),
        generalization_gap=signed(row.generalization_gap),
        worst_attack=row.worst_attack or "–",
        auc=Cell(value=num(row.worst_auc), interval=ci(row.worst_auc_ci)),
        tpr=_tpr_cell(row.worst_tpr_at_fpr_0_001),
        balanced_accuracy=num(row.balanced_accuracy),
        baseline_advantage=Cell(value=signed(row.baseline_attack_advantage), interval=ci(row.baseline_attack_advantage_ci)),
        effectiveness=effectiveness(row.effectiveness),
        pareto=row.pareto_optimal,
        dp=dp_text(row),
        notes=_training_notes(row) if done else "",
    )


# --- measured statements ------------------------------------------------------------------------------


def _baseline_n_nonmembers(row: DefenseRow) -> int | None:
    attack = next((a for a in row.attacks if a.name == "baseline"), None)
    return None if attack is None else attack.n_nonmembers


def _same_training(row: DefenseRow, other: DefenseRow) -> bool:
    mine = [(d.name, d.parameters) for d in row.defenses if d.kind == "training"]
    theirs = [(d.name, d.parameters) for d in other.defenses if d.kind == "training"]
    return mine == theirs and all(d.kind == "training" for d in other.defenses)


def _unmasked_counterpart(row: DefenseRow, rows: list[DefenseRow]) -> DefenseRow | None:
    """The same model without the output defenses: the original for pure masking, else the same training."""
    if all(d.kind == "output" for d in row.defenses):
        return next((r for r in rows if r.role == "original" and r.status == "done"), None)
    return next(
        (r for r in rows if r is not row and r.role == "variant" and r.status == "done" and _same_training(row, r)),
        None,
    )


def _advantage(row: DefenseRow) -> str:
    return f"{row.baseline_attack_advantage:+.3f} {ci(row.baseline_attack_advantage_ci)}".strip()


def masking_statements(rows: list[DefenseRow]) -> list[str]:
    """For every row with an output-masking defense: the baseline attack's advantage with and without it."""
    statements = []
    for row in rows:
        masking = [d for d in row.defenses if d.name in MASKING_DEFENSES]
        if row.status != "done" or not masking:
            continue
        names = " + ".join(defense_title(d) for d in masking)
        measured = f"the label-only baseline attack's advantage is {_advantage(row)} with {row.label}"
        if row.baseline_attack_advantage is None:
            statements.append(f"{names}: the baseline attack was not run on {row.label}, so its effect on it is not measured.")
            continue
        other = _unmasked_counterpart(row, rows)
        if other is None or other.baseline_attack_advantage is None:
            missing = "no unmasked counterpart of this variant" if other is None else "no baseline attack on the unmasked model"
            statements.append(
                f"{names} hides confidences, not the predicted label: {measured}; the table has {missing} to compare with "
                "(Li, Li & Ribeiro 2021, §4.1: masking that keeps the label cannot reduce this attack)."
            )
            continue
        unmasked = "the original model" if other.role == "original" else other.label
        same_labels = all(
            a is not None and b is not None and abs(a - b) < 1e-12
            for a, b in ((row.test_accuracy, other.test_accuracy), (row.member_accuracy, other.member_accuracy))
        )
        if same_labels:
            text = (
                f"{names} leaves the label-only baseline attack untouched, as Li, Li & Ribeiro (2021, §4.1) show: "
                f"{measured} vs {_advantage(other)} for {unmasked}. The masked model predicts the same labels "
                f"(member and test accuracy {row.member_accuracy:.3f} and {row.test_accuracy:.3f} in both rows), and the "
                "baseline attack reads nothing else"
            )
        else:
            text = (
                f"{names} hides confidences, but the baseline attack reads only the predicted label (Li, Li & Ribeiro "
                f"2021, §4.1): {measured} vs {_advantage(other)} for {unmasked}. Here the masking also changed some "
                f"predicted labels (test accuracy {num(row.test_accuracy)} vs {num(other.test_accuracy)}, member accuracy "
                f"{num(row.member_accuracy)} vs {num(other.member_accuracy)}), so the two advantages need not agree"
            )
        n_row, n_other = _baseline_n_nonmembers(row), _baseline_n_nonmembers(other)
        if n_row is not None and n_other is not None and n_row != n_other:
            text += (
                f"; the two values differ only through the non-members they are measured on ({count(n_row)} "
                f"attack-evaluation vs {count(n_other)})" if same_labels else
                f"; they are also measured on different non-members ({count(n_row)} attack-evaluation vs {count(n_other)})"
            )
        statements.append(text + ".")
    return statements


def _single(rows: list[DefenseRow], name: str) -> DefenseRow | None:
    return next(
        (r for r in rows if r.role == "variant" and r.status == "done" and [d.name for d in r.defenses] == [name]), None
    )


def _auc(row: DefenseRow) -> str:
    return f"worst-case AUC {row.worst_auc:.3f} {ci(row.worst_auc_ci)}".strip()


def _sampling_error(accuracy: float, n: int) -> float:
    """Half-width of a normal-approximation 95% interval of one accuracy measured on n records."""
    return 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(n, 1))


def literature_comparison(rows: list[DefenseRow], *, n_test: int | None = None, n_train: int | None = None) -> list[str]:
    """What the seed documents led us to expect, against what this audit measured (point estimates; the
    intervals are in the table). A disagreement is stated as such, with the numbers."""
    base = next((r for r in rows if r.role == "retrained_baseline" and r.status == "done"), None)
    if base is None or base.worst_auc is None:
        return []
    lines = []
    reference = f"the retrained baseline's {base.worst_auc:.3f} {ci(base.worst_auc_ci)}"
    smoothing, dropout = _single(rows, "label_smoothing"), _single(rows, "dropout")
    if smoothing is not None and smoothing.worst_auc is not None:
        lowered = smoothing.worst_auc < base.worst_auc
        line = (
            f"Label smoothing — seeds/002 (Azazoglu 2025, Table I) found it lowers the attack with less utility loss "
            f"than dropout. Measured: {smoothing.label} {_auc(smoothing)} vs {reference}, utility drop "
            f"{smoothing.utility_drop:+.3f}"
        )
        agrees = lowered
        if dropout is not None and dropout.worst_auc is not None:
            line += f"; {dropout.label} {_auc(dropout)}, utility drop {dropout.utility_drop:+.3f}"
            agrees = lowered and smoothing.utility_drop < dropout.utility_drop
        lines.append(line + (". Consistent in direction with the seed." if agrees else ". This audit does not reproduce the seed's finding."))
    dp = next(
        (r for r in rows if r.role == "variant" and r.status == "done" and any(d.name == "dp_sgd" for d in r.defenses)
         and all(d.kind == "training" for d in r.defenses) and r.worst_auc_ci is not None),
        None,
    )
    if dp is not None:
        near = dp.worst_auc_ci[0] <= 0.5
        cost = (dp.utility_drop or 0) > 0
        verdict = (
            "Consistent in direction with the literature." if near and cost
            else "Not reproduced here: " + ("the interval lies above 0.5" if not near else "no utility cost was measured") + "."
        )
        magnitude = ""
        if dp.utility_drop is not None and dp.utility_drop > 0.10:
            magnitude = (
                f" The utility cost is far above the 2–10% that seeds/004 quotes for ε = 1"
                + (f": the accountant needed noise multiplier {float(dp.training['dp_noise_multiplier']):.2f}"
                   if "dp_noise_multiplier" in dp.training else "")
                + (f" to reach this ε with {count(n_train)} training records" if n_train else "")
                + "."
            )
        lines.append(
            f"DP-SGD — seeds/000, seeds/004 and Abadi et al. 2016: a small ε brings the attack close to chance at a "
            f"utility cost. Measured: {dp.label} ({dp_text(dp) or 'ε not reported'}) {_auc(dp)} vs {reference}, "
            f"utility drop {dp.utility_drop:+.3f}. {verdict}{magnitude}"
        )
    for name, seed in (("mmd_mixup", "MMD + mix-up"), ("mixup", "Mix-up")):
        row = _single(rows, name)
        if row is None or row.generalization_gap is None or base.generalization_gap is None:
            continue
        difference = base.generalization_gap - row.generalization_gap
        line = (
            f"{seed} — seeds/003 (Li, Li & Ribeiro 2021, §4) reports a narrower generalization gap. Measured: gap "
            f"{row.generalization_gap:+.3f} for {row.label} vs {base.generalization_gap:+.3f} for the retrained "
            f"baseline ({difference:+.3f} narrower), {_auc(row)} vs {reference}. "
            + ("Consistent in direction with the seed" if difference > 0 else "This audit does not reproduce it")
        )
        if n_test and row.test_accuracy is not None:
            error = _sampling_error(row.test_accuracy, n_test)
            if abs(difference) < error:
                line += (
                    f", but the difference is smaller than the sampling error of one test accuracy on {count(n_test)} "
                    f"records (±{error:.3f}), so it is not established"
                )
        lines.append(line + ".")
    return lines


# --- the section ----------------------------------------------------------------------------------------


def _facts(comparison: DefenseComparison, rows: list[DefenseRow]) -> list[tuple[str, str]]:
    recipe = comparison.recipe
    recipe_text = ", ".join(f"{key.replace('_', ' ')} {_value(value)}" for key, value in recipe.items()) or "–"
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
    views = [_row_view(index, row) for index, row in enumerate(rows, start=1)]
    flags = sorted({v.tpr.mark for v in views if v.tpr.mark})
    points = [
        ChartPoint(
            index=index, label=row_title(row), role=row.role,
            kind=_kind(row), test_accuracy=row.test_accuracy, auc=row.worst_auc, auc_ci=row.worst_auc_ci,
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


__all__ = [
    "ChartPoint", "DefenseRowView", "DefenseSection", "MASKING_DEFENSES", "build_defense_section", "defense_title",
    "literature_comparison", "masking_statements",
]
