"""The policy file: schema, YAML pitfalls, errors with line and field, `policy init` and `policy validate`."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.gate.policy import PolicyError, default_policy, parse_policy
from mia_audit.gate.starter import EXAMPLE_POLICY, STARTER_POLICY
from tests.gate_support import CLEAN_ENV, write_policy

runner = CliRunner()


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text=text, source="p.yaml")
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def test_starter_policy_is_the_default_and_its_commented_examples_validate_too():
    default = default_policy().policy
    assert parse_policy(text=STARTER_POLICY, source="starter") == default
    assert [(r.id, r.metric, r.judgement, r.warn, r.fail) for r in default.rules] == [
        ("low-fpr-tpr", "tpr_at_fpr_0.001", "ci", 0.005, 0.02),
        ("auc", "auc", "ci", 0.55, 0.65),
    ]
    assert default.min_nonmembers == {"tpr_at_fpr_0.001": 1000, "tpr_at_fpr_0.01": 100}
    assert not default.fail_on_warn and not default.waivers
    # Every example in the starter, uncommented, is a valid policy with every rule type.
    full = parse_policy(text=EXAMPLE_POLICY, source="examples")
    assert {r.id for r in full.rules} == {"low-fpr-tpr", "auc", "loss-advantage", "worst-slice", "gap"}
    assert [r.id for r in full.regressions] == ["low-fpr-no-regression"]
    assert full.waivers[0].rule == "gap" and full.baseline == "previous-release/results.json"
    for example in ("loss-advantage", "worst-slice", "gap", "low-fpr-no-regression"):
        assert re.search(rf"^ *#  *- id: {example}$", STARTER_POLICY, re.M)  # shipped commented out


def test_yaml_1_1_booleans_do_not_eat_the_on_key():
    """PyYAML alone reads an unquoted `on:` key as True; the policy's `on: upper_ci` must survive."""
    policy = parse_policy(text="rules:\n  - id: a\n    metric: auc\n    on: upper_ci\n    warn: 0.6\n", source="p")
    assert policy.rules[0].judgement == "upper_ci"


def test_a_typo_in_a_field_name_names_line_field_and_the_likely_intent():
    found = problems("""\
fail_on_warn: false
rules:
  - id: auc
    metrik: auc
    warn: 0.6
""")
    assert found == [(4, "rules[0].metrik", "unknown field (did you mean 'metric'?)")]


def test_a_threshold_out_of_range_names_line_and_field():
    found = problems("""\
rules:
  - id: tpr
    metric: tpr_at_fpr_0.001
    warn: 0.5
    fail: 5
""")
    assert found == [(5, "rules[0].fail", "5 is outside the range of tpr_at_fpr_0.001, [0, 1]")]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("rules:\n  - id: a\n    metric: auc\n    warn: 0.7\n    fail: 0.6\n", 5, "rules[0].fail", "below warn"),
        ("rules:\n  - id: a\n    metric: generalization_gap\n    on: upper_ci\n    warn: 0.1\n", 4, "rules[0].on",
         "generalization_gap has no confidence interval"),
        ("rules:\n  - id: a\n    metric: epsilon_lower_bound\n    on: ci\n    warn: 1\n", 4, "rules[0].on",
         "no confidence interval"),
        ("rules:\n  - id: a\n    metric: generalization_gap\n    attack: loss\n    warn: 0.1\n", 2, "rules[0]",
         "property of the model"),
        ("rules:\n  - id: a\n    metric: auc\n", 2, "rules[0]", "needs `warn`, `fail` or both"),
        ("rules:\n  - id: a\n    metric: aucc\n    warn: 0.6\n", 3, "rules[0].metric", "did you mean 'auc'"),
        ("rules:\n  - id: a\n    metric: auc\n    on: upper\n    warn: 0.6\n", 4, "rules[0].on", "'upper_ci'"),
        ("rules:\n  - id: a\n    metric: auc\n    attack: lira\n    warn: 0.6\n", 4, "rules[0].attack",
         "unknown attack 'lira'"),
        ("rules:\n  - id: a\n    metric: auc\n    warn: 0.6\n  - id: a\n    metric: auc\n    fail: 0.9\n", 5,
         "rules[1].id", "already used"),
        ("rules:\n  - id: a b\n    metric: auc\n    warn: 0.6\n", 2, "rules[0].id", "letters, digits"),
        ("rules:\n  - id: a\n    metric: auc\n    warn: high\n", 4, "rules[0].warn", "valid number"),
        ("rules:\n  - id: a\n    metric: advantage\n    warn: -1.5\n", 4, "rules[0].warn", "[-1, 1]"),
        ("rules:\n  - id: a\n    metric: epsilon_lower_bound\n    fail: -0.5\n", 4, "rules[0].fail", "[0, ∞]"),
        ("regressions:\n  - id: a\n    metric: auc\n    on: ci\n    fail: 0.1\n", 4, "regressions[0].on",
         "'point', 'upper_ci' or 'lower_ci'"),
        ("regressions:\n  - id: a\n    metric: auc\n    fail: -0.1\n", 4, "regressions[0].fail", "[0, 1]"),
        ("regressions:\n  - id: a\n    metric: auc\n    slice: any\n    fail: 0.1\n", 4, "regressions[0].slice",
         "unknown field"),
        ("min_nonmembers:\n  tpr_at_fpr_0.001: 500\nrules:\n  - id: a\n    metric: auc\n    warn: 0.6\n", 2,
         "min_nonmembers.tpr_at_fpr_0.001", "below 1000"),
        ("min_nonmembers:\n  tpr_at_fpr_0.0001: 5\nrules:\n  - id: a\n    metric: auc\n    warn: 0.6\n", 2,
         "min_nonmembers.tpr_at_fpr_0.0001", "did you mean 'tpr_at_fpr_0.001'"),
        ("rules:\n  - id: gap\n    metric: generalization_gap\n    warn: 0.05\nwaivers:\n  - rule: gapp\n"
         "    reason: r\n    approver: a\n    expires: 2030-01-01\n", 6, "waivers[0].rule", "did you mean 'gap'"),
        ("rules:\n  - id: gap\n    metric: generalization_gap\n    warn: 0.05\nwaivers:\n  - rule: gap\n"
         "    reason: r\n    approver: a\n    expires: 2030-13-01\n", 9, "waivers[0].expires", "valid date"),
        ("rules:\n  - id: gap\n    metric: generalization_gap\n    warn: 0.05\nwaivers:\n  - rule: gap\n"
         "    reason: r\n    expires: 2030-01-01\n", 6, "waivers[0].approver", "required field missing"),
        ("fail_on_warn: false\n", 1, "", "no rules"),
        ("rule:\n  - id: a\n", 1, "rule", "did you mean 'rules'"),
        ("rules:\n  - id: a\n    metric: auc\n    warn: 0.6\n    warn: 0.7\n", 5, "", "rules[0].warn: given twice"),
        ("rules:\n  - id: a\n    metric: [auc\n", 4, "", "not valid YAML"),
        ("- just\n- a list\n", 1, "", "must be a YAML mapping"),
    ],
)
def test_bad_policies_are_explained_with_line_and_field(text, line, field, words):
    first = problems(text)[0]
    assert first[0] == line and first[1] == field, first
    assert words in first[2], first


def test_an_empty_policy_is_refused():
    assert "empty" in problems("")[0][2]


def test_policy_validate_through_the_cli(tmp_path):
    good = write_policy(tmp_path / "good.yaml", """
        rules:
          - id: auc
            metric: auc
            warn: 0.6
        waivers:
          - rule: auc
            reason: pilot
            approver: DPO
            expires: 2020-01-01
        """)
    result = runner.invoke(app, ["policy", "validate", str(good)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.stderr
    assert "valid policy: 1 rule(s)" in result.stdout
    assert "expired on 2020-01-01" in result.stdout

    bad = write_policy(tmp_path / "bad.yaml", """
        rules:
          - id: auc
            metrik: auc
            warn: 0.6
          - id: tpr
            metric: tpr_at_fpr_0.01
            fail: 1.5
        """)
    result = runner.invoke(app, ["policy", "validate", str(bad)], env=CLEAN_ENV)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"mia-audit: error: {bad}: line 3: rules[0].metrik: unknown field (did you mean 'metric'?)",
        f"mia-audit: error: {bad}: line 7: rules[1].fail: 1.5 is outside the range of tpr_at_fpr_0.01, [0, 1]",
    ]
    assert "Traceback" not in result.stderr and result.stdout == ""

    missing = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")], env=CLEAN_ENV)
    assert missing.exit_code == 2 and "policy file not found" in missing.stderr


def test_policy_init_writes_a_starter_that_validates_and_never_overwrites(tmp_path):
    target = tmp_path / "mia-policy.yaml"
    result = runner.invoke(app, ["policy", "init", str(target)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.stderr
    assert target.read_text() == STARTER_POLICY
    assert runner.invoke(app, ["policy", "validate", str(target)], env=CLEAN_ENV).exit_code == 0

    target.write_text("# my edited policy\n")
    again = runner.invoke(app, ["policy", "init", str(target)], env=CLEAN_ENV)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert target.read_text() == "# my edited policy\n"
    forced = runner.invoke(app, ["policy", "init", str(target), "--force"], env=CLEAN_ENV)
    assert forced.exit_code == 0 and target.read_text() == STARTER_POLICY

    printed = runner.invoke(app, ["policy", "init", "-"], env=CLEAN_ENV)
    assert printed.exit_code == 0 and printed.stdout == STARTER_POLICY


def test_readme_policy_example_validates_and_ci_jobs_are_short():
    """README must stay true: its policy example is a valid policy; the CI gate jobs are under 15 lines."""
    import yaml

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    gate = readme[readme.index("## Policy gate"):readme.index("## Exit codes")]
    blocks = re.findall(r"```yaml\n(.*?)```", gate, re.S)
    assert len(blocks) == 3
    example = parse_policy(text=blocks[0], source="README")
    assert {r.id for r in example.rules} == {"low-fpr-tpr", "loss-auc", "slices"} and example.regressions
    for job in blocks[1:]:
        assert len(job.strip().splitlines()) < 15
        assert "--policy mia-policy.yaml" in job and "--junit" in job
        assert isinstance(yaml.safe_load(job), dict)
    for rule in default_policy().policy.rules:
        assert f"`{rule.id}`" in gate
