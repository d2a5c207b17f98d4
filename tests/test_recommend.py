"""Recommendation rules: each fires only on its evidence, and quotes that evidence from the result."""

from __future__ import annotations

import pytest

from mia_audit.context import ReportContext
from mia_audit.recommend.findings import assess_leakage, beats_chance
from mia_audit.recommend.mitigations import LARGE_GAP, MATERIAL_ADVANTAGE
from mia_audit.recommend.rules import recommend, registered_rules


@pytest.fixture(scope="module")
def result(sample_audit_run):
    return sample_audit_run.result


def _ids(items):
    return [item.id for item in items]


def _with_attack(result, name, **changes):
    attacks = [a.model_copy(update=changes) if a.name == name else a for a in result.attacks]
    return result.model_copy(update={"attacks": attacks})


def test_every_recommendation_carries_evidence_effect_citation_and_cost(result):
    items = recommend(result=result)
    assert items, "the overfit sample must trigger recommendations"
    for item in items:
        assert item.evidence and all(line.strip() for line in item.evidence)
        assert item.action and item.effect and item.cost and item.references
    assert len(registered_rules()) >= 8


def test_sample_triggers_the_overfitting_rules_with_its_own_numbers(result):
    gap = result.utility.generalization_gap
    assert gap >= LARGE_GAP  # the committed sample is overfit on purpose (member acc 1.0)
    items = {item.id: item for item in recommend(result=result)}
    assert f"generalization gap {gap:+.3f}" in items["reduce-overfitting"].evidence[0]
    baseline = next(a for a in result.attacks if a.name == "baseline")
    assert f"advantage {baseline.advantage:+.3f}" in items["masking-is-not-enough"].evidence[0]
    assert "Li et al. §4.1" in items["masking-is-not-enough"].effect
    assert {"label-smoothing", "harden-outputs", "more-nonmembers"} <= set(items)
    step5 = next(step for step in result.workflow if step.step == 5)
    assert ("shadow-attacks" in items) == (step5.status != "done")
    worst = result.slice_summary.worst
    if worst is not None and worst.significant:  # a significantly more exposed slice is named with its numbers
        evidence = items["protect-exposed-slice"].evidence[0]
        assert f"slice {worst.name}" in evidence and f"{worst.auc:.3f}" in evidence
    else:  # slices ran (classes, correctness, loss) but no metadata column: still asks for group slices
        assert "only classes and slices cut by the model's own output" in items["validate-slices"].evidence[0]
    # the sample has 1,497 non-members: the 0.1% FPR point is low evidence
    assert "1,497 non-members" in items["more-nonmembers"].evidence[0]


def test_small_gap_does_not_trigger_overfitting_rules(result):
    quiet = result.model_copy(
        update={"utility": result.utility.model_copy(update={"generalization_gap": LARGE_GAP / 2})}
    )
    quiet = _with_attack(quiet, "baseline", advantage=MATERIAL_ADVANTAGE / 2)
    ids = _ids(recommend(result=quiet))
    assert "reduce-overfitting" not in ids and "masking-is-not-enough" not in ids


def test_baseline_interval_touching_zero_does_not_trigger_masking_rule(result):
    uncertain = _with_attack(result, "baseline", advantage_ci=(0.0, 0.12))
    assert "masking-is-not-enough" not in _ids(recommend(result=uncertain))


def test_label_exposure_drops_output_hardening(result):
    labels = result.model_copy(update={"config": {**result.config, "exposure": "labels"}})
    assert "harden-outputs" not in _ids(recommend(result=labels))


def test_dp_sgd_becomes_a_requirement_with_special_category_data(result):
    plain = {item.id: item for item in recommend(result=result)}["dp-sgd"]
    assert plain.title.startswith("Use DP-SGD if")
    required = {item.id: item for item in recommend(result=result, context=ReportContext(special_category=True))}
    assert required["dp-sgd"].title == "Train with DP-SGD"
    assert any("special-category" in line for line in required["dp-sgd"].evidence)


def test_no_leakage_and_no_requirement_means_no_dp_recommendation(result):
    chance = result.model_copy(
        update={
            "attacks": [
                a.model_copy(
                    update={
                        "auc_ci": (0.45, 0.55),
                        "advantage_ci": (-0.01, 0.05),
                        "epsilon_lower_bound": 0.0,
                        "tpr_at_fpr": {k: p.model_copy(update={"ci": (0.0, float(k))}) for k, p in a.tpr_at_fpr.items()},
                    }
                )
                for a in result.attacks
            ]
        }
    )
    assert not assess_leakage(chance).detected
    ids = _ids(recommend(result=chance))
    assert "dp-sgd" not in ids and "label-smoothing" not in ids and "harden-outputs" not in ids


def test_beats_chance_reads_the_intervals(result):
    loss = next(a for a in result.attacks if a.name == "loss")
    reasons = beats_chance(loss)
    assert any(f"AUC {loss.auc:.3f}" in reason for reason in reasons)
    assert beats_chance(loss.model_copy(update={"auc_ci": (0.49, 0.6), "advantage_ci": (-0.1, 0.2),
                                                "tpr_at_fpr": {}})) == []
