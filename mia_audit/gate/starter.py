"""The starter policy written by `mia-audit policy init`; its uncommented part IS the default policy.

The text is assembled from YAML pieces so tests can check both the active part (the default policy) and
the commented examples (uncommented, they must validate too). README "Policy gate" explains the numbers.
"""

from __future__ import annotations

HEADER = """\
# mia-audit policy: the release gate for membership-inference leakage.
#   check it:  mia-audit policy validate mia-policy.yaml
#   use it:    mia-audit run MODEL --members M.csv --nonmembers N.csv --policy mia-policy.yaml
#              mia-audit check mia-report/results.json --policy mia-policy.yaml
# Exit codes: 0 pass or warn, 1 fail, 2 bad input or policy, 3 inconclusive, 4 internal error.
#
# Metrics (all oriented so that higher = more leakage): auc, tpr_at_fpr_0.001, tpr_at_fpr_0.01,
#   tpr_at_fpr_0.1, advantage (Yeom et al.: max TPR - FPR), generalization_gap (the model's member minus
#   non-member accuracy; no CI), epsilon_lower_bound (heuristic, no CI).
# What a threshold is compared with (`on:`):
#   ci        the default where a metric has a 95% CI: decide only what the CI supports. Fail when the
#             whole CI lies above `fail`; inconclusive when it straddles `fail`; warn when it reaches above
#             `warn`; pass when all of it is at or below `warn`.
#   point     the point estimate (the default for metrics without a CI).
#   upper_ci  the upper 95% bound: anything that cannot be shown to be low fails.
#   lower_ci  the lower 95% bound: only what is shown to be high fails.
# Target: no `attack`/`slice` = the worst case (the rule is judged on every attack; the worst outcome
#   counts); `attack: NAME` = one attack; `slice: any | SPEC | SPEC=VALUE` = per-slice results (add
#   `attack:` to use only that attack's slice results).
# if_missing: what a rule says when its target is absent from the results (attack not run, no slices,
#   no baseline): inconclusive (the default) or skip.
"""

ACTIVE_TOP = """\
version: 1

# Treat a warning as a failure (exit code 1).
fail_on_warn: false

# Minimum evidence: a rule on a metric measured with fewer non-members than this is inconclusive, never
# pass. TPR at FPR a is never judged when it is not estimable (fewer than 1/a non-members).
min_nonmembers:
  tpr_at_fpr_0.001: 1000
  tpr_at_fpr_0.01: 100

"""

ACTIVE_RULES = """\
rules:
  - id: low-fpr-tpr
    description: Can an attacker single out members at 0.1% FPR? (chance is 0.1%)
    metric: tpr_at_fpr_0.001
    on: ci
    warn: 0.005   # 5 x chance: flagged records are members 5 times as often as non-members
    fail: 0.02    # 20 x chance, shown by the whole 95% CI
  - id: auc
    description: Can an attacker tell members from non-members on average? (chance is 0.5)
    metric: auc
    on: ci
    warn: 0.55
    fail: 0.65
"""

EXAMPLE_RULES = """\
  - id: loss-advantage
    attack: loss
    metric: advantage
    on: point
    warn: 0.1
    fail: 0.25
  - id: worst-slice
    slice: any
    metric: tpr_at_fpr_0.01
    warn: 0.03
    fail: 0.1
    min_nonmembers: 300
    if_missing: skip
  - id: gap
    metric: generalization_gap
    warn: 0.05
"""

EXAMPLE_TOP = """\
regressions:
  - id: low-fpr-no-regression
    metric: tpr_at_fpr_0.001
    on: point
    fail: 0.005   # may not rise by more than 0.5 percentage points over the baseline
    if_missing: skip
baseline: previous-release/results.json   # relative to this file; --baseline overrides it

waivers:
  - rule: gap
    reason: Accepted for the pilot, see DPIA section 4.2
    approver: Jane Doe (DPO)
    expires: 2030-12-31   # waives up to and including this date, then stops and says so
"""


def _comment(block: str, *, indent: str) -> str:
    return "".join(f"{indent}# {line[len(indent):]}" if line.strip() else "\n" for line in block.splitlines(True))


STARTER_POLICY = (
    HEADER
    + "\n"
    + ACTIVE_TOP
    + ACTIVE_RULES
    + "\n  # More rules: remove the leading '# ' to use them.\n"
    + _comment(EXAMPLE_RULES, indent="  ")
    + "\n# Regression against a previous results.json, and waivers:\n"
    + _comment(EXAMPLE_TOP, indent="")
)

EXAMPLE_POLICY = ACTIVE_TOP + ACTIVE_RULES + EXAMPLE_RULES + "\n" + EXAMPLE_TOP

__all__ = ["EXAMPLE_POLICY", "STARTER_POLICY"]
