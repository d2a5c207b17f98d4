"""The gate through the real CLI: every exit code of `run` and `check`, JUnit, the step summary, NO_COLOR."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

import mia_audit.gate.judge
from mia_audit.cli import app
from mia_audit.gate.policy import default_policy
from tests.gate_support import CLEAN_ENV, attacks_by_name, sample_run, with_nonmembers, write_json, write_policy

runner = CliRunner()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return sample_run(tmp_path_factory)


def env(**values):
    return {**CLEAN_ENV, **values}


def check(*args, environ=None):
    return runner.invoke(app, ["check", *map(str, args)], env=env(**(environ or {})))


def run_small(small_audit, *args, environ=None):
    out = small_audit["dir"] / "out"
    result = runner.invoke(
        app,
        ["run", str(small_audit["model"]), "--members", str(small_audit["members"]), "--nonmembers",
         str(small_audit["nonmembers"]), "--out", str(out), "--bootstrap", "50", "--attacks", "baseline,loss",
         "--quiet", *map(str, args)],
        env=env(**(environ or {})),
    )
    return result, out


def epoch(day: str) -> str:
    return str(int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()))


# --- the sample under the default policy ---------------------------------------------------------------


def test_sample_run_applies_the_default_policy_and_stores_the_verdict(sample):
    document, path, result = sample
    verdict = document["verdict"]
    assert verdict["policy"] == "built-in default policy"
    assert [line["id"] for line in verdict["rules"]] == [rule.id for rule in default_policy().policy.rules]
    assert result.exit_code == verdict["exit_code"] == {"pass": 0, "warn": 0, "fail": 1, "inconclusive": 3}[
        verdict["verdict"]]
    assert json.loads(path.read_text())["verdict"] == verdict
    # The overfit sample: every attack's AUC CI reaches above 0.55 and none lies above 0.65 → warn;
    # TPR@0.1%FPR's CIs all stay at or below 2% → at most warn. So the default verdict is warn (exit 0).
    aucs = [a["auc_ci"] for a in document["attacks"]]
    assert max(high for _, high in aucs) > 0.55 and max(low for low, _ in aucs) <= 0.65
    assert max(high for _, high in aucs) <= 0.65
    assert max(a["tpr_at_fpr"]["0.001"]["ci"][1] for a in document["attacks"]) <= 0.02
    assert verdict["verdict"] == "warn" and result.exit_code == 0
    assert "Policy gate" in result.stderr  # with --json the tables go to stderr, stdout is the document


# --- exit codes of `check` -----------------------------------------------------------------------------


def test_check_exit_codes_0_1_3(tmp_path, sample):
    document, path, _ = sample
    top = max(a["auc"] for a in document["attacks"])
    passing = write_policy(tmp_path / "pass.yaml", f"rules:\n  - id: auc\n    metric: auc\n    on: point\n"
                                                   f"    fail: {top + 0.01}\n")
    failing = write_policy(tmp_path / "fail.yaml", f"rules:\n  - id: auc\n    metric: auc\n    on: point\n"
                                                   f"    fail: {top - 0.01}\n")
    assert check(path, "--policy", passing).exit_code == 0
    result = check(path, "--policy", failing)
    assert result.exit_code == 1 and "FAIL" in result.stdout
    small = write_json(tmp_path / "small.json", with_nonmembers(document, 800))
    result = check(small, "--json")  # default policy: TPR@0.1%FPR not estimable with 800 non-members
    assert result.exit_code == 3 and "INCONCLUSIVE" in result.stderr
    line = json.loads(result.stdout)["verdict"]["rules"][0]
    assert line["outcome"] == "inconclusive" and "not estimable with 800 non-members" in line["reason"]
    # check never modifies the results it judges
    assert json.loads(path.read_text()) == document


def test_check_exit_code_2_on_bad_input(tmp_path, sample):
    _, path, _ = sample
    bad = write_policy(tmp_path / "bad.yaml", "rules:\n  - id: auc\n    metric: auc\n    warn: 0.6\n    fail: 7\n")
    result = check(path, "--policy", bad)
    assert result.exit_code == 2
    assert result.stderr == f"mia-audit: error: {bad}: line 5: rules[0].fail: 7 is outside the range of auc, [0, 1]\n"
    (tmp_path / "broken.json").write_text("{")
    assert check(tmp_path / "broken.json").exit_code == 2
    assert check(tmp_path / "nothing.json").exit_code == 2
    epoch_error = check(path, environ={"SOURCE_DATE_EPOCH": "soon"})
    assert epoch_error.exit_code == 2 and "SOURCE_DATE_EPOCH" in epoch_error.stderr
    assert runner.invoke(app, ["check"], env=CLEAN_ENV).exit_code == 2  # usage error


def test_check_exit_code_4_on_internal_error(sample, monkeypatch):
    _, path, _ = sample

    def broken(*args, **kwargs):
        raise RuntimeError("simulated defect")

    monkeypatch.setattr(mia_audit.gate.judge, "evaluate", broken)
    result = check(path)
    assert result.exit_code == 4
    assert "internal error: RuntimeError: simulated defect" in result.stderr and "Traceback" not in result.stderr


def test_json_never_changes_the_exit_code(tmp_path, sample):
    _, path, _ = sample
    failing = write_policy(tmp_path / "fail.yaml", "rules:\n  - id: auc\n    metric: auc\n    on: point\n    fail: 0.5\n")
    plain = check(path, "--policy", failing)
    as_json = check(path, "--policy", failing, "--json")
    assert plain.exit_code == as_json.exit_code == 1
    printed = json.loads(as_json.stdout)  # stdout is the document alone
    assert printed["verdict"]["verdict"] == "fail" and printed["verdict"]["policy"] == str(failing)
    assert "Policy gate" in as_json.stderr and "Policy gate" in plain.stdout


# --- exit codes of `run` -------------------------------------------------------------------------------


def test_run_with_too_few_nonmembers_is_inconclusive(small_audit):
    """150 non-members cannot resolve an FPR of 0.1%: the default policy cannot pass, exit code 3."""
    result, out = run_small(small_audit)
    assert result.exit_code == 3, result.stderr
    verdict = json.loads((out / "results.json").read_text())["verdict"]
    line = next(line for line in verdict["rules"] if line["id"] == "low-fpr-tpr")
    assert verdict["verdict"] == "inconclusive" and line["outcome"] == "inconclusive"
    assert "not estimable with 150 non-members (needs at least 1000)" in line["reason"]


def test_run_exit_1_on_policy_failure_with_and_without_json(small_audit):
    policy = write_policy(small_audit["dir"] / "p.yaml",
                          "rules:\n  - id: auc\n    attack: loss\n    metric: auc\n    on: point\n    fail: 0.5\n")
    plain, out = run_small(small_audit, "--policy", policy)
    as_json, _ = run_small(small_audit, "--policy", policy, "--json")
    assert plain.exit_code == as_json.exit_code == 1, plain.stderr
    loss_auc = attacks_by_name(json.loads(as_json.stdout))["loss"]["auc"]
    assert loss_auc > 0.5  # the sample model leaks even on this subset; the rule fails on the real number
    assert json.loads((out / "results.json").read_text())["verdict"]["verdict"] == "fail"


def test_run_exit_2_on_a_bad_policy_before_anything_runs(small_audit):
    policy = write_policy(small_audit["dir"] / "p.yaml", "rules:\n  - id: auc\n    metric: auc\n    wran: 0.6\n")
    result, out = run_small(small_audit, "--policy", policy)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("line 4: rules[0].wran: unknown field (did you mean 'warn'?)")
    assert not out.exists()
    missing, out = run_small(small_audit, "--policy", small_audit["dir"] / "absent.yaml")
    assert missing.exit_code == 2 and "policy file not found" in missing.stderr and not out.exists()


def test_run_exit_4_on_an_internal_error(small_audit, monkeypatch):
    def broken(self, *, current):
        raise RuntimeError("simulated defect")

    monkeypatch.setattr(mia_audit.gate.judge.GateSetup, "judge", broken)
    result, out = run_small(small_audit)
    assert result.exit_code == 4 and "simulated defect" in result.stderr
    assert not (out / "results.json").exists()


def test_run_passes_with_exit_0_and_regression_against_a_baseline(small_audit, tmp_path):
    """A policy the small audit can decide (AUC with its CI) passes; a baseline with lower AUC trips the regression."""
    policy = write_policy(small_audit["dir"] / "p.yaml", """
        rules:
          - id: auc
            metric: auc
            fail: 0.99
        regressions:
          - id: auc-rise
            attack: loss
            metric: auc
            fail: 0.03
        """)
    first, out = run_small(small_audit, "--policy", policy, "--baseline", tmp_path / "none" / "results.json")
    assert first.exit_code == 3, first.stderr  # the regression rule has no baseline yet: inconclusive
    document = json.loads((out / "results.json").read_text())
    baseline = copy.deepcopy(document)
    attacks_by_name(baseline)["loss"]["auc"] -= 0.05
    baseline_path = write_json(tmp_path / "baseline.json", baseline)
    same = write_json(tmp_path / "same.json", document)
    assert check(out / "results.json", "--policy", policy, "--baseline", same).exit_code == 0
    result = check(out / "results.json", "--policy", policy, "--baseline", baseline_path)
    assert result.exit_code == 1 and "+0.050" in result.stdout


# --- waivers through the CLI ---------------------------------------------------------------------------


def test_waiver_valid_then_expired_by_source_date_epoch(tmp_path, sample):
    _, path, _ = sample
    policy = write_policy(tmp_path / "w.yaml", """
        rules:
          - id: auc
            metric: auc
            on: point
            fail: 0.5
        waivers:
          - rule: auc
            reason: accepted until the retrained model ships
            approver: J. Doe (DPO)
            expires: 2030-01-01
        """)
    valid = check(path, "--policy", policy, "--json", environ={"SOURCE_DATE_EPOCH": epoch("2030-01-01T12:00:00")})
    assert valid.exit_code == 0, valid.stderr
    verdict = json.loads(valid.stdout)["verdict"]
    assert verdict["evaluated_on"] == "2030-01-01" and verdict["verdict"] == "pass"
    assert verdict["rules"][0]["outcome"] == "fail" and verdict["rules"][0]["waiver"]["status"] == "active"
    expired = check(path, "--policy", policy, "--json", environ={"SOURCE_DATE_EPOCH": epoch("2030-01-02T00:00:00")})
    assert expired.exit_code == 1
    verdict = json.loads(expired.stdout)["verdict"]
    assert verdict["verdict"] == "fail" and verdict["rules"][0]["waiver"]["status"] == "expired"
    assert "expired on 2030-01-01 and no longer waives" in verdict["rules"][0]["reason"]


# --- CI artifacts --------------------------------------------------------------------------------------


MIXED = """
fail_on_warn: false
rules:
  - id: passes
    metric: auc
    on: point
    fail: 0.99
  - id: warns
    metric: auc
    on: point
    warn: 0.5
  - id: fails
    attack: loss
    metric: advantage
    on: point
    fail: 0.05
  - id: inconclusive
    slice: any
    metric: auc
    fail: 0.9
  - id: skipped
    attack: lira_online
    metric: auc
    fail: 0.9
    if_missing: skip
  - id: waived
    metric: generalization_gap
    fail: 0.01
waivers:
  - rule: waived
    reason: known gap
    approver: DPO
    expires: 2099-01-01
"""


def test_junit_has_one_test_case_per_rule_mapped_to_the_outcome(tmp_path, sample, monkeypatch):
    document, _, _ = sample
    # a results file without slice measurements (written with --no-slices): the slice rule is inconclusive
    path = tmp_path / "no-slices.json"
    path.write_text(json.dumps({k: v for k, v in document.items() if k != "slices"}))
    # `lira_online` is not implemented in this version; let the schema accept it as a known attack name.
    monkeypatch.setattr("mia_audit.gate.policy._known_attacks", lambda: {"loss", "lira_online"})
    policy = write_policy(tmp_path / "mixed.yaml", MIXED)
    junit = tmp_path / "reports" / "junit.xml"
    result = check(path, "--policy", policy, "--junit", junit)
    assert result.exit_code == 1, result.stdout + result.stderr

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["passes", "warns", "fails", "inconclusive", "skipped", "waived"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("6", "1", "1", "2")
    assert [child.tag for child in cases["passes"]] == ["system-out"]
    assert [child.tag for child in cases["warns"]] == ["system-out"]
    assert "outcome: warn" in cases["warns"].find("system-out").text
    assert cases["fails"].find("failure").get("type") == "fail"
    assert "attack loss" in cases["fails"].find("failure").get("message")
    assert cases["inconclusive"].find("error").get("type") == "inconclusive"
    assert "no slice measurements" in cases["inconclusive"].find("error").get("message")
    assert cases["skipped"].find("skipped") is not None
    waived = cases["waived"].find("skipped").get("message")
    assert waived.startswith("fail, waived: waived until 2099-01-01 by DPO")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["verdict"] == "fail" and properties["policy"] == str(policy)

    # fail_on_warn turns the warning into a JUnit failure too
    strict = write_policy(tmp_path / "strict.yaml", MIXED.replace("fail_on_warn: false", "fail_on_warn: true"))
    check(path, "--policy", strict, "--junit", junit)
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert cases["warns"].find("failure").get("type") == "warn"


def test_step_summary_is_appended_when_github_sets_the_variable(tmp_path, sample):
    document, path, _ = sample
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step\n")
    result = check(path, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, not replaced
    assert "## mia-audit privacy gate: ⚠️ WARN" in text
    assert f"{document['data']['members']['n']} members, {document['data']['nonmembers']['n']} non-members" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rule")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == ["low-fpr-tpr", "auc"]
    assert all(row.count(" | ") == 7 for row in rows)  # 8 cells, pipes inside cells escaped
    # without the variable nothing is written anywhere
    before = summary.read_text()
    assert check(path).exit_code == 0 and summary.read_text() == before


def test_no_color_turns_off_escape_sequences(sample):
    _, path, _ = sample
    coloured = check(path, environ={"FORCE_COLOR": "1"})
    assert "\x1b[" in coloured.stdout  # the check below means something
    plain = check(path, environ={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.exit_code == coloured.exit_code == 0
    assert "\x1b[" not in plain.stdout and "WARN" in plain.stdout


def test_free_text_in_the_verdict_table_is_not_read_as_markup(tmp_path, sample):
    from rich.console import Console

    from mia_audit.cli.console import verdict_table
    from mia_audit.gate.verdict import Verdict

    _, path, _ = sample
    policy = write_policy(tmp_path / "[red]policy.yaml", """
        rules:
          - id: auc
            metric: auc
            on: point
            fail: 0.5
        waivers:
          - rule: auc
            reason: "[bold]approved[/bold] in [ticket 42]"
            approver: "[i]DPO[/i]"
            expires: 2099-01-01
        """)
    result = check(path, "--policy", policy, "--json")
    verdict = Verdict.model_validate(json.loads(result.stdout)["verdict"])
    console = Console(width=1000, color_system=None, record=True)
    console.print(verdict_table(verdict))
    text = console.export_text()
    assert "[bold]approved[/bold] in [ticket 42]" in text and "[i]DPO[/i]" in text and "[red]policy.yaml" in text
