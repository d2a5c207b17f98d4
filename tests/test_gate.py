"""Policy evaluation on the real sample's results and edited copies: every rule type, evidence, waivers.

Expected outcomes are re-derived in each test from the numbers in the document (plain comparisons), never
taken from an earlier run of the gate.
"""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from mia_audit.errors import InputError
from mia_audit.clock import utc_today
from mia_audit.gate.inputs import load_baseline, read_gate_input
from mia_audit.gate.judge import evaluate
from mia_audit.gate.policy import LoadedPolicy, parse_policy
from mia_audit.results import AuditResult
from tests.gate_support import attacks_by_name, hand_written_slices, sample_run, with_nonmembers, write_json

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    document, _, _ = sample_run(tmp_path_factory)
    return document


@pytest.fixture()
def doc(sample):
    return copy.deepcopy(sample)


def policy(text: str) -> LoadedPolicy:
    return LoadedPolicy(policy=parse_policy(text=text, source="test"), source="test", sha256=None, directory=None)


def judge(tmp_path, document, text, *, today=TODAY, baseline=None):
    current, _ = read_gate_input(path=write_json(tmp_path / "current.json", document))
    base = None
    if baseline is not None:
        base, _ = read_gate_input(path=write_json(tmp_path / "baseline.json", baseline))
    return evaluate(loaded=policy(text), current=current, today=today, baseline=base,
                    baseline_source=None if baseline is None else "baseline.json")


def rule_line(verdict, rule_id):
    return next(line for line in verdict.rules if line.id == rule_id)


def expected(value, *, warn=None, fail=None):
    return "fail" if fail is not None and value > fail else "warn" if warn is not None and value > warn else "pass"


# --- threshold rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("on", ["point", "upper_ci", "lower_ci"])
def test_worst_case_rule_judges_every_attack_and_reports_the_worst(tmp_path, doc, on):
    pick = {"point": lambda a: a["auc"], "upper_ci": lambda a: a["auc_ci"][1], "lower_ci": lambda a: a["auc_ci"][0]}
    worst = max(doc["attacks"], key=pick[on])
    top = pick[on](worst)
    for warn, fail in ((top - 0.02, top - 0.01), (top - 0.01, top + 0.01), (top + 0.01, top + 0.02)):
        verdict = judge(tmp_path, doc, f"rules:\n  - id: r\n    metric: auc\n    on: {on}\n    warn: {warn}\n"
                                       f"    fail: {fail}\n")
        line = rule_line(verdict, "r")
        assert line.outcome == expected(top, warn=warn, fail=fail)
        assert line.subject == f"attack {worst['name']}" and line.judged == pytest.approx(top)
        assert line.value == pytest.approx(worst["auc"]) and line.ci == pytest.approx(tuple(worst["auc_ci"]))
        assert f"worst of {len(doc['attacks'])} attacks" in line.reason


def test_ci_judgement_decides_only_what_the_interval_supports(tmp_path, doc):
    loss = attacks_by_name(doc)["loss"]
    low, high = loss["auc_ci"]
    mid = (low + high) / 2
    cases = {
        "fail": (low - 0.02, low - 0.01),  # the whole CI above fail
        "inconclusive": (low - 0.01, mid),  # the CI straddles fail
        "warn": (mid, high + 0.01),  # reaches above warn, all of it at or below fail
        "pass": (high + 0.01, high + 0.02),  # all of it at or below warn
    }
    for outcome, (warn, fail) in cases.items():
        verdict = judge(tmp_path, doc, f"rules:\n  - id: r\n    attack: loss\n    metric: auc\n    on: ci\n"
                                       f"    warn: {warn}\n    fail: {fail}\n")
        line = rule_line(verdict, "r")
        assert line.outcome == outcome, (outcome, line.reason)
        assert line.target == "attack loss" and line.subject == "attack loss"
        assert verdict.verdict == outcome and verdict.exit_code == {"fail": 1, "inconclusive": 3}.get(outcome, 0)
    # `ci` is the default judgement for a metric with a CI
    implicit = judge(tmp_path, doc, f"rules:\n  - id: r\n    attack: loss\n    metric: auc\n    fail: {mid}\n")
    assert rule_line(implicit, "r").on == "ci" and rule_line(implicit, "r").outcome == "inconclusive"


@pytest.mark.parametrize("metric", ["tpr_at_fpr_0.01", "tpr_at_fpr_0.1", "advantage", "epsilon_lower_bound"])
def test_each_metric_is_read_from_its_place_in_results(tmp_path, doc, metric):
    def read(attack):
        if metric.startswith("tpr_at_fpr_"):
            return attack["tpr_at_fpr"][metric.removeprefix("tpr_at_fpr_")]["tpr"]
        return attack[metric]

    worst = max(doc["attacks"], key=read)
    value = read(worst)
    verdict = judge(tmp_path, doc, f"rules:\n  - id: r\n    metric: {metric}\n    on: point\n"
                                   f"    warn: {max(value - 0.005, 0)}\n")
    line = rule_line(verdict, "r")
    assert line.judged == pytest.approx(value) and line.outcome == expected(value, warn=max(value - 0.005, 0))


def test_generalization_gap_is_the_models_and_has_no_ci(tmp_path, doc):
    gap = doc["utility"]["member_accuracy"] - doc["utility"]["nonmember_accuracy"]
    verdict = judge(tmp_path, doc, f"rules:\n  - id: gap\n    metric: generalization_gap\n    warn: {gap / 2}\n"
                                   f"    fail: {gap * 2}\n")
    line = rule_line(verdict, "gap")
    assert line.on == "point" and line.ci is None and line.target == "model"
    assert line.value == pytest.approx(gap) and line.outcome == "warn"


def test_a_named_attack_that_was_not_run_is_inconclusive_or_skipped(tmp_path, doc):
    doc["attacks"] = [a for a in doc["attacks"] if a["name"] != "loss"]
    text = "rules:\n  - id: r\n    attack: loss\n    metric: auc\n    on: point\n    fail: 0.99\n"
    line = rule_line(judge(tmp_path, doc, text), "r")
    assert line.outcome == "inconclusive" and "attack loss is not in the results" in line.reason
    skipped = judge(tmp_path, doc, text + "    if_missing: skip\n")
    assert rule_line(skipped, "r").outcome == "skipped"
    # nothing was judged at all: never a pass
    assert skipped.verdict == "inconclusive" and "no rule could be judged" in skipped.summary


# --- minimum evidence ----------------------------------------------------------------------------------


def test_too_few_nonmembers_is_inconclusive_never_pass(tmp_path, doc):
    """With 500 non-members TPR@0.1%FPR is not estimable (N·α < 1): even a rule nothing could fail is inconclusive."""
    small = with_nonmembers(doc, 500)
    verdict = judge(tmp_path, small, "rules:\n  - id: r\n    metric: tpr_at_fpr_0.001\n    on: point\n    fail: 1.0\n")
    line = rule_line(verdict, "r")
    assert line.outcome == "inconclusive" and verdict.verdict == "inconclusive" and verdict.exit_code == 3
    assert "not estimable with 500 non-members (needs at least 1000)" in line.reason
    assert line.evidence == "not_estimable"


def test_the_policys_minimum_nonmembers_applies_per_metric_and_per_rule(tmp_path, doc):
    n = doc["data"]["nonmembers"]["n"]
    text = (f"min_nonmembers:\n  tpr_at_fpr_0.01: {n + 1}\nrules:\n"
            "  - id: one\n    metric: tpr_at_fpr_0.01\n    on: point\n    fail: 1.0\n"
            "  - id: ten\n    metric: tpr_at_fpr_0.1\n    on: point\n    fail: 1.0\n"
            f"  - id: own\n    metric: tpr_at_fpr_0.1\n    on: point\n    fail: 1.0\n    min_nonmembers: {n + 5}\n")
    verdict = judge(tmp_path, doc, text)
    assert rule_line(verdict, "one").outcome == "inconclusive"
    assert f"{n} non-members, below the policy's minimum of {n + 1}" in rule_line(verdict, "one").reason
    assert rule_line(verdict, "ten").outcome == "pass"
    assert rule_line(verdict, "own").outcome == "inconclusive"


def test_low_evidence_is_judged_but_said(tmp_path, doc):
    assert all(a["tpr_at_fpr"]["0.001"]["flag"] == "low_evidence" for a in doc["attacks"])  # 1497 non-members
    line = rule_line(judge(tmp_path, doc, "rules:\n  - id: r\n    metric: tpr_at_fpr_0.001\n    fail: 0.5\n"), "r")
    assert line.outcome == "pass" and "low evidence" in line.reason and line.evidence == "low_evidence"


# --- slices --------------------------------------------------------------------------------------------


def test_slice_rules_over_hand_written_slices(tmp_path, doc):
    doc["slices"] = hand_written_slices()
    text = """\
rules:
  - id: any-auc
    slice: any
    metric: auc
    on: point
    warn: 0.55
    fail: 0.6
  - id: label-7
    slice: label=7
    metric: auc
    on: upper_ci
    warn: 0.55
  - id: label-spec-loss
    slice: label
    attack: loss
    metric: tpr_at_fpr_0.1
    on: point
    fail: 0.2
  - id: bare-number-has-no-ci
    slice: label=7
    metric: tpr_at_fpr_0.1
    on: upper_ci
    fail: 0.5
  - id: site
    slice: site
    metric: auc
    on: point
    fail: 0.9
  - id: not-estimable-slice-tpr
    slice: label=3
    attack: loss
    metric: tpr_at_fpr_0.001
    on: point
    fail: 1.0
  - id: unknown-slice
    slice: label=42
    metric: auc
    fail: 0.9
"""
    verdict = judge(tmp_path, doc, text)
    any_auc = rule_line(verdict, "any-auc")
    # label=3/loss has AUC 0.62 > 0.6: fail; the site slice is not estimable, label=7 passes, entropy warns
    assert any_auc.outcome == "fail" and any_auc.subject == "slice label=3 (loss)" and any_auc.value == 0.62
    assert "worst of 4 slices: 1 fail, 1 inconclusive, 1 warn, 1 pass" in any_auc.reason
    label7 = rule_line(verdict, "label-7")
    assert label7.outcome == "warn" and label7.judged == 0.56  # upper CI 0.56 > 0.55
    spec_loss = rule_line(verdict, "label-spec-loss")
    assert spec_loss.outcome == "fail" and spec_loss.judged == 0.30 and "worst of 2 slices" in spec_loss.reason
    assert rule_line(verdict, "bare-number-has-no-ci").outcome == "inconclusive"
    assert "no confidence interval" in rule_line(verdict, "bare-number-has-no-ci").reason
    site = rule_line(verdict, "site")
    assert site.outcome == "inconclusive" and "not estimable" in site.reason
    tpr = rule_line(verdict, "not-estimable-slice-tpr")
    assert tpr.outcome == "inconclusive" and tpr.evidence == "not_estimable"
    unknown = rule_line(verdict, "unknown-slice")
    assert unknown.outcome == "inconclusive"
    assert "no slice matches 'label=42' (slices in the results: label=3, label=7, site=north)" in unknown.reason
    assert verdict.verdict == "fail"


def test_slice_rules_without_slices_in_the_results(tmp_path, doc):
    doc.pop("slices", None)  # a results file written without slices (older version or --no-slices)
    text = "rules:\n  - id: s\n    slice: any\n    metric: auc\n    fail: 0.9\n"
    line = rule_line(judge(tmp_path, doc, text), "s")
    assert line.outcome == "inconclusive" and "contain no slice measurements" in line.reason
    skipped = rule_line(judge(tmp_path, doc, text + "    if_missing: skip\n"), "s")
    assert skipped.outcome == "skipped" and "if_missing: skip" in skipped.reason


def test_malformed_slices_are_an_input_error_naming_the_entry(tmp_path, doc):
    doc["slices"] = hand_written_slices()
    doc["slices"][2]["auc"] = "high"
    with pytest.raises(InputError, match=r"slices\[2\]\.auc"):
        read_gate_input(path=write_json(tmp_path / "r.json", doc))


# --- regression ----------------------------------------------------------------------------------------


def test_regression_rule_against_a_baseline(tmp_path, doc):
    """The baseline is the same document with every TPR@1%FPR lowered by 0.02 (0.01 for one policy)."""
    baseline = copy.deepcopy(doc)
    for attack in baseline["attacks"]:
        point = attack["tpr_at_fpr"]["0.01"]
        point["tpr"] = max(point["tpr"] - 0.02, 0.0)
    now = max(a["tpr_at_fpr"]["0.01"]["tpr"] for a in doc["attacks"])
    before = max(a["tpr_at_fpr"]["0.01"]["tpr"] for a in baseline["attacks"])
    change = now - before
    assert change > 0
    for warn, fail in ((change / 2, change * 2), (change / 4, change / 2), (change * 2, change * 4)):
        text = f"regressions:\n  - id: reg\n    metric: tpr_at_fpr_0.01\n    warn: {warn}\n    fail: {fail}\n"
        line = rule_line(judge(tmp_path, doc, text, baseline=baseline), "reg")
        assert line.kind == "regression" and line.outcome == expected(change, warn=warn, fail=fail)
        assert line.judged == pytest.approx(change) and line.baseline_value == pytest.approx(before)
    # an improvement is never a regression
    improved = judge(tmp_path, baseline, "regressions:\n  - id: reg\n    metric: tpr_at_fpr_0.01\n    fail: 0\n",
                     baseline=doc)
    assert rule_line(improved, "reg").outcome == "pass"


def test_regression_on_a_named_attack_and_evidence(tmp_path, doc):
    baseline = copy.deepcopy(doc)
    attacks_by_name(baseline)["loss"]["auc"] -= 0.05
    line = rule_line(judge(tmp_path, doc, "regressions:\n  - id: reg\n    attack: loss\n    metric: auc\n"
                                          "    fail: 0.04\n", baseline=baseline), "reg")
    assert line.outcome == "fail" and line.judged == pytest.approx(0.05)
    # a baseline whose number is not estimable cannot support a comparison
    small = with_nonmembers(baseline, 300)
    line = rule_line(judge(tmp_path, doc, "regressions:\n  - id: reg\n    metric: tpr_at_fpr_0.001\n    fail: 0.5\n",
                           baseline=small), "reg")
    assert line.outcome == "inconclusive" and line.reason.startswith("baseline")


def test_regression_without_a_baseline(tmp_path, doc):
    text = "regressions:\n  - id: reg\n    metric: auc\n    fail: 0.01\n"
    line = rule_line(judge(tmp_path, doc, text), "reg")
    assert line.outcome == "inconclusive" and "no baseline" in line.reason
    base, source, problem = load_baseline(path=tmp_path / "first-release" / "results.json")
    assert base is None and "not found" in problem  # a pipeline's first run: the rule's if_missing decides
    current, _ = read_gate_input(path=write_json(tmp_path / "c.json", doc))
    skipped = evaluate(loaded=policy(text + "    if_missing: skip\n"), current=current, today=TODAY,
                       baseline_problem=problem)
    assert rule_line(skipped, "reg").outcome == "skipped" and "not found" in rule_line(skipped, "reg").reason


# --- waivers, fail_on_warn and the verdict -------------------------------------------------------------

FAILING = "rules:\n  - id: auc\n    metric: auc\n    on: point\n    fail: 0.5\n"
WAIVER = "waivers:\n  - rule: auc\n    reason: accepted for the pilot\n    approver: J. Doe (DPO)\n    expires: 2026-06-30\n"


def test_a_valid_waiver_waives_up_to_and_including_its_expiry_date(tmp_path, doc):
    for today in (date(2026, 6, 1), date(2026, 6, 30)):
        verdict = judge(tmp_path, doc, FAILING + WAIVER, today=today)
        line = rule_line(verdict, "auc")
        assert line.outcome == "fail" and line.waiver.status == "active" and line.waiver.applied
        assert verdict.verdict == "pass" and verdict.exit_code == 0 and "1 waived" in verdict.summary
        assert "WAIVED by J. Doe (DPO) until 2026-06-30" in line.reason


def test_an_expired_waiver_stops_waiving_and_says_so(tmp_path, doc):
    verdict = judge(tmp_path, doc, FAILING + WAIVER, today=date(2026, 7, 1))
    line = rule_line(verdict, "auc")
    assert line.waiver.status == "expired" and not line.waiver.applied
    assert verdict.verdict == "fail" and verdict.exit_code == 1
    assert "expired on 2026-06-30 and no longer waives" in line.reason and "1 waiver(s) expired" in verdict.summary


def test_a_waiver_on_a_passing_rule_is_not_needed(tmp_path, doc):
    text = FAILING.replace("fail: 0.5", "fail: 0.99") + WAIVER
    line = rule_line(judge(tmp_path, doc, text), "auc")
    assert line.outcome == "pass" and line.waiver.status == "not_needed" and not line.waiver.applied


def test_fail_on_warn_and_verdict_precedence(tmp_path, doc):
    warn_only = "rules:\n  - id: w\n    metric: auc\n    on: point\n    warn: 0.5\n"
    assert judge(tmp_path, doc, warn_only).verdict == "warn"
    strict = judge(tmp_path, doc, "fail_on_warn: true\n" + warn_only)
    assert strict.verdict == "fail" and strict.exit_code == 1 and "fail_on_warn" in strict.summary
    small = with_nonmembers(doc, 500)
    inconclusive = "  - id: i\n    metric: tpr_at_fpr_0.001\n    fail: 1.0\n"
    assert judge(tmp_path, small, warn_only + inconclusive).verdict == "inconclusive"  # inconclusive beats warn
    failing = "  - id: f\n    metric: auc\n    on: point\n    fail: 0.5\n"
    assert judge(tmp_path, small, warn_only + inconclusive + failing).verdict == "fail"  # fail beats inconclusive


# --- dates and documents -------------------------------------------------------------------------------


def test_evaluation_date_honours_source_date_epoch():
    assert utc_today(environ={"SOURCE_DATE_EPOCH": "1767225600"}) == date(2026, 1, 1)
    assert utc_today(environ={"SOURCE_DATE_EPOCH": "1767225599"}) == date(2025, 12, 31)
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        utc_today(environ={"SOURCE_DATE_EPOCH": "yesterday"})


def test_results_with_and_without_a_verdict_validate(doc):
    assert doc["verdict"] is not None and AuditResult.model_validate(doc).verdict.verdict == doc["verdict"]["verdict"]
    older = {key: value for key, value in doc.items() if key != "verdict"}
    assert AuditResult.model_validate(older).verdict is None


def test_unreadable_results_are_input_errors(tmp_path, doc):
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_gate_input(path=tmp_path / "bad.json")
    doc["schema_version"] = "2.0"
    with pytest.raises(InputError, match="schema version '2.0'"):
        read_gate_input(path=write_json(tmp_path / "v2.json", doc))
    del doc["schema_version"]
    doc.pop("attacks")
    with pytest.raises(InputError):
        read_gate_input(path=write_json(tmp_path / "partial.json", {**doc, "schema_version": "1.0"}))
    with pytest.raises(InputError, match="not found"):
        read_gate_input(path=tmp_path / "missing.json")
    assert json.loads((tmp_path / "partial.json").read_text())["schema_version"] == "1.0"
