"""Slice construction and evaluation against brute-force references (sklearn, scipy, explicit loops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mia_audit.attacks import AttackScores
from mia_audit.errors import InputError
from mia_audit.data.manifest import AuditSet
from mia_audit.data.signals import compute_signals
from mia_audit.slices.spec import SlicingSpec, parse_intersections
from mia_audit.slices.dimensions import Slice, build_slices, validate_slicing
from mia_audit.slices.evaluate import evaluate_slices
from mia_audit.slices.subpopulation import Folds, subpopulation_attack


def _audit_set(*, n: int, seed: int, name: str) -> AuditSet:
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["F", "M", ""], dtype=object), n, p=[0.48, 0.48, 0.04])
    age = rng.integers(18, 91, n).astype(str).astype(object)
    features = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n), rng.normal(size=n)])
    return AuditSet(
        path=Path(f"{name}.csv"),
        sha256="0" * 64,
        columns=["f0", "f1", "f2", "sex", "age", "label"],
        feature_columns=["f0", "f1", "f2"],
        features=features,
        raw_labels=rng.integers(0, 3, n).astype(str).astype(object),
        meta={"sex": sex, "age": age},
    )


def _signals(audit_set: AuditSet, seed: int):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(audit_set.n, 3)) * 2.0
    return compute_signals(outputs=logits, output_kind="logits", labels=audit_set.raw_labels.astype(np.int64))


@pytest.fixture(scope="module")
def sets():
    members, nonmembers = _audit_set(n=400, seed=1, name="members"), _audit_set(n=500, seed=2, name="nonmembers")
    return members, nonmembers, _signals(members, 3), _signals(nonmembers, 4)


def _build(sets, **spec):
    members, nonmembers, member_signals, nonmember_signals = sets
    return build_slices(
        spec=SlicingSpec(**spec),
        members=members,
        nonmembers=nonmembers,
        member_signals=member_signals,
        nonmember_signals=nonmember_signals,
        class_labels=["cat", "dog", "eel"],
    )


def test_every_dimension_partitions_the_records(sets):
    members, nonmembers, member_signals, _ = sets
    slices = _build(sets, columns=("sex", "age", "f0", "f1"), intersections=(("sex", "@class"),))
    by_spec: dict[str, list[Slice]] = {}
    for piece in slices:
        by_spec.setdefault(piece.spec, []).append(piece)
    assert list(by_spec) == ["true_class", "correctness", "loss_percentile", "sex", "age", "f0", "f1", "sex*true_class"]
    for spec, pieces in by_spec.items():
        member_rows = np.sort(np.concatenate([p.member_index for p in pieces]))
        nonmember_rows = np.sort(np.concatenate([p.nonmember_index for p in pieces]))
        assert member_rows.tolist() == list(range(members.n)), spec
        assert nonmember_rows.tolist() == list(range(nonmembers.n)), spec
    assert [p.value for p in by_spec["true_class"]] == ["cat", "dog", "eel"]
    assert [p.value for p in by_spec["sex"]] == ["F", "M", "(missing)"]
    assert [p.value for p in by_spec["f0"]] == ["0", "1"]  # two distinct numbers ≤ bins: categorical
    correct = next(p for p in by_spec["correctness"] if p.value == "correct")
    assert correct.member_index.tolist() == np.flatnonzero(member_signals.correct).tolist()
    assert correct.by_model_output and not by_spec["sex"][0].by_model_output


def test_numeric_columns_get_open_ended_quantile_bins(sets):
    members, nonmembers, *_ = sets
    pieces = [p for p in _build(sets, columns=("age", "f1")) if p.spec in ("age", "f1")]
    ages = np.r_[members.meta["age"], nonmembers.meta["age"]].astype(float)
    age_bins = [p for p in pieces if p.spec == "age"]
    assert len(age_bins) == 4
    assert age_bins[0].value.startswith("< ") and age_bins[-1].value.startswith("≥ ")
    edges = np.quantile(ages, [0.25, 0.5, 0.75])
    expected = np.bincount(np.searchsorted(edges, ages, side="right"), minlength=4)
    assert [p.member_index.size + p.nonmember_index.size for p in age_bins] == expected.tolist()
    for p in pieces:  # no bin shows a record's minimum or maximum
        assert f"{ages.min():.4g}," not in p.value and f"{ages.max():.4g})" not in p.value


def test_intersections_match_a_brute_force_count(sets):
    members, _, member_signals, _ = sets
    pieces = [p for p in _build(sets, intersections=(("sex", "@class"),)) if p.kind == "intersection"]
    for piece in pieces:
        sex, animal = piece.value.split(" & ")
        label = ["cat", "dog", "eel"].index(animal)
        sex_value = "" if sex == "(missing)" else sex
        expected = np.flatnonzero((members.meta["sex"] == sex_value) & (member_signals.labels == label))
        assert piece.member_index.tolist() == expected.tolist()
        assert piece.name == f"sex*true_class={piece.value}"


def test_bad_columns_are_input_errors(sets):
    members, nonmembers, *_ = sets
    with pytest.raises(InputError, match="column 'zip'.*not a feature or meta column"):
        validate_slicing(spec=SlicingSpec(columns=("zip",)), members=members, nonmembers=nonmembers)
    with pytest.raises(InputError, match="column 'label'.*--meta-columns"):
        validate_slicing(spec=SlicingSpec(intersections=(("label", "@class"),)), members=members, nonmembers=nonmembers)
    many = AuditSet(**{**members.__dict__, "meta": {"code": np.array([f"c{i % 60}" for i in range(members.n)], dtype=object)}})
    many_n = AuditSet(**{**nonmembers.__dict__, "meta": {"code": np.array(["c0"] * nonmembers.n, dtype=object)}})
    with pytest.raises(InputError, match="column 'code'.*60 distinct"):
        validate_slicing(spec=SlicingSpec(columns=("code",)), members=many, nonmembers=many_n)
    validate_slicing(spec=SlicingSpec(enabled=False, columns=("zip",)), members=members, nonmembers=nonmembers)


def test_parse_intersections():
    assert parse_intersections("sex*age, sex*@class") == (("sex", "age"), ("sex", "@class"))
    assert parse_intersections(None) == ()
    for bad in ("sex", "a*b*c", "a*", "a*a"):
        with pytest.raises(ValueError):
            parse_intersections(bad)


def _random_scores(seed: int, n1: int, n0: int) -> dict[str, AttackScores]:
    rng = np.random.default_rng(seed)
    return {
        "continuous": AttackScores(member_scores=rng.normal(0.3, 1, n1), nonmember_scores=rng.normal(0, 1, n0)),
        "tied": AttackScores(
            member_scores=rng.integers(0, 5, n1).astype(float), nonmember_scores=rng.integers(0, 4, n0).astype(float)
        ),
        "binary": AttackScores(
            member_scores=(rng.uniform(size=n1) < 0.9).astype(float),
            nonmember_scores=(rng.uniform(size=n0) < 0.8).astype(float),
        ),
    }


def test_evaluation_matches_sklearn_scipy_and_bh_over_all_tested(sets):
    members, nonmembers, member_signals, nonmember_signals = sets
    slices = _build(sets, columns=("sex", "age"), min_records=20, intersections=(("sex", "age"),))
    scores = _random_scores(0, members.n, nonmembers.n)
    evaluation = evaluate_slices(
        spec=SlicingSpec(min_records=20),
        slices=slices,
        record_scores=scores,
        member_correct=member_signals.correct,
        nonmember_correct=nonmember_signals.correct,
        seed=0,
    )
    by_name = {piece.name: piece for piece in slices}
    tested = [entry for entry in evaluation.slices if entry.flag == "ok"]
    insufficient = [entry for entry in evaluation.slices if entry.flag == "insufficient_evidence"]
    assert len(tested) + len(insufficient) == len(slices) * len(scores)
    assert insufficient, "the sex × age intersection has small cells"
    for entry in insufficient:
        piece = by_name[entry.name]
        assert min(piece.member_index.size, piece.nonmember_index.size) < 20
        assert entry.rank is None and entry.auc is None and entry.p_value_adjusted is None and not entry.significant
    for entry in tested:
        piece = by_name[entry.name]
        m = scores[entry.attack].member_scores[piece.member_index]
        n = scores[entry.attack].nonmember_scores[piece.nonmember_index]
        assert entry.auc == pytest.approx(roc_auc_score(np.r_[np.ones(m.size), np.zeros(n.size)], np.r_[m, n]), abs=1e-12)
        expected_p = stats.mannwhitneyu(m, n, alternative="greater", method="asymptotic").pvalue
        assert entry.p_value == pytest.approx(expected_p, rel=1e-9)
        assert entry.member_accuracy == pytest.approx(member_signals.correct[piece.member_index].mean())
        assert entry.n_members == m.size and entry.n_nonmembers == n.size
        assert entry.auc_ci[0] <= entry.auc <= entry.auc_ci[1]
    adjusted = stats.false_discovery_control([entry.p_value for entry in tested], method="bh")
    assert [entry.p_value_adjusted for entry in tested] == pytest.approx(adjusted.tolist(), abs=1e-15)
    assert [entry.rank for entry in tested] == list(range(1, len(tested) + 1))
    lower = [entry.auc_ci[0] for entry in tested]
    assert lower == sorted(lower, reverse=True)
    summary = evaluation.summary
    assert summary.n_tested == len(tested) and summary.n_slices == len(slices)
    assert summary.n_significant == sum(entry.significant for entry in tested)
    assert summary.worst is not None and not summary.worst.name.startswith(("loss_percentile", "correctness"))


def _reference_threshold(members: np.ndarray, nonmembers: np.ndarray, alpha: float) -> float:
    """Brute force: among fit-member scores t with #(non-members ≥ t) ≤ ⌊α n0⌋ the one flagging the most
    members, ties → the highest t; +inf when none flags a member."""
    allowed = int(np.floor(alpha * nonmembers.size + 1e-9))
    best_tp, best_t = 0, np.inf
    for t in sorted(set(members.tolist()), reverse=True):
        fp, tp = int(np.sum(nonmembers >= t)), int(np.sum(members >= t))
        if fp <= allowed and tp > best_tp:
            best_tp, best_t = tp, t
    return best_t


def test_subpopulation_attack_matches_a_brute_force_cross_fit(sets):
    members, nonmembers, *_ = sets
    scores = _random_scores(5, members.n, nonmembers.n)["continuous"]
    folds = Folds.split(n_members=members.n, n_nonmembers=nonmembers.n, seed=9)
    pooled = np.r_[scores.member_scores, scores.nonmember_scores]
    ascending, inverse = np.unique(pooled, return_inverse=True)
    level = ascending.size - 1 - inverse
    ml, nl = level[: members.n], level[members.n :]
    alpha = 0.05
    ref_global = [
        _reference_threshold(scores.member_scores[folds.members_a == a], scores.nonmember_scores[folds.nonmembers_a == a], alpha)
        for a in (True, False)
    ]
    global_levels = tuple(int(np.sum(ascending >= t)) - 1 for t in ref_global)  # level of threshold t
    for piece in _build(sets, columns=("sex",)):
        m_scores, n_scores = scores.member_scores[piece.member_index], scores.nonmember_scores[piece.nonmember_index]
        m_a, n_a = folds.members_a[piece.member_index], folds.nonmembers_a[piece.nonmember_index]
        outcome = subpopulation_attack(
            member_levels=ml[piece.member_index],
            nonmember_levels=nl[piece.nonmember_index],
            member_in_a=m_a,
            nonmember_in_a=n_a,
            n_levels=ascending.size,
            global_levels=global_levels,
            alpha=alpha,
        )
        tp_g = fp_g = tp_s = fp_s = 0
        for fit, t_global in zip((True, False), ref_global):
            t_slice = _reference_threshold(m_scores[m_a == fit], n_scores[n_a == fit], alpha)
            held_m, held_n = m_scores[m_a != fit], n_scores[n_a != fit]
            tp_g += np.sum(held_m >= t_global)
            fp_g += np.sum(held_n >= t_global)
            tp_s += np.sum(held_m >= t_slice)
            fp_s += np.sum(held_n >= t_slice)
        assert outcome.tpr_global == pytest.approx(tp_g / m_scores.size)
        assert outcome.fpr_global == pytest.approx(fp_g / n_scores.size)
        assert outcome.tpr_slice == pytest.approx(tp_s / m_scores.size)
        assert outcome.fpr_slice == pytest.approx(fp_s / n_scores.size)


def test_per_group_calibration_gain_is_reported():
    """Group G's non-members score far lower than everyone else's: the global 1%-FPR threshold, set by the
    other groups' non-members, misses most of G's members; a threshold calibrated on G finds them."""
    rng = np.random.default_rng(2)
    n = 10_000  # about 1,250 of G's non-members per fold: 1% FPR is resolvable (flag ok)
    group_m, group_n = rng.uniform(size=n) < 0.25, rng.uniform(size=n) < 0.25
    member_scores = np.where(group_m, rng.normal(0.0, 1.0, n), rng.normal(0.3, 1.0, n))
    nonmember_scores = np.where(group_n, rng.normal(-3.0, 1.0, n), rng.normal(0.0, 1.0, n))
    slices = [
        Slice(kind="column", spec="group", value=value, member_index=np.flatnonzero(gm), nonmember_index=np.flatnonzero(gn))
        for value, gm, gn in (("G", group_m, group_n), ("rest", ~group_m, ~group_n))
    ]
    evaluation = evaluate_slices(
        spec=SlicingSpec(),
        slices=slices,
        record_scores={"score": AttackScores(member_scores=member_scores, nonmember_scores=nonmember_scores)},
        member_correct=np.ones(n, dtype=bool),
        nonmember_correct=np.ones(n, dtype=bool),
        seed=1,
    )
    by_name = {entry.name: entry for entry in evaluation.slices}
    gain = by_name["group=G"].subpopulation
    assert gain.flag == "ok" and gain.raises_tpr
    assert gain.tpr_slice > gain.tpr_global + 0.2 and gain.fpr_slice <= 0.02
    assert gain.fpr_global < 0.002  # the global threshold is far too cautious inside G
    assert not by_name["group=rest"].subpopulation.raises_tpr or by_name["group=rest"].subpopulation.gain < 0.05
    assert evaluation.summary.subpopulation_gains[0].name == "group=G"
