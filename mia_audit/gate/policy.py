"""The policy file: a YAML release gate for membership-inference leakage (DESIGN §6), and its loading.

A policy holds threshold rules (worst case over attacks, one named attack, or per-slice results),
regression rules against a baseline results.json, minimum evidence, `fail_on_warn`, and waivers with an
approver and an expiry date. It is validated by pydantic with unknown fields refused, and every problem is
reported with the line in the file and the field (``rules[1].fail``), so `mia-audit policy validate` can say
exactly what is wrong.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from mia_audit.errors import InputError
from mia_audit.gate.metric_catalog import METRICS, MetricSpec
from mia_audit.gate.starter import STARTER_POLICY
from mia_audit.files.yaml_source import YamlSource, YamlSourceError, format_location, parse_yaml

MetricName = Literal[
    "auc",
    "tpr_at_fpr_0.001",
    "tpr_at_fpr_0.01",
    "tpr_at_fpr_0.1",
    "advantage",
    "generalization_gap",
    "epsilon_lower_bound",
]
Judgement = Literal["ci", "point", "upper_ci", "lower_ci"]
RegressionJudgement = Literal["point", "upper_ci", "lower_ci"]
IfMissing = Literal["inconclusive", "skip"]
RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]

assert set(MetricName.__args__) == set(METRICS)  # the schema and the metric registry name the same metrics


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _metric(info: ValidationInfo) -> MetricSpec | None:
    return METRICS.get(info.data.get("metric"))  # None when the metric itself was invalid


def _check_finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _check_order(value: float, info: ValidationInfo) -> None:
    """`fail` may not be below `warn` (declared, and so validated, before it)."""
    warn = info.data.get("warn")
    if info.field_name == "fail" and warn is not None and value < warn:
        raise ValueError(f"fail ({value:g}) is below warn ({warn:g}); a rule warns before it fails")


class _RuleBase(_Strict):
    id: RuleId
    description: str | None = None
    attack: str | None = Field(default=None, min_length=1)
    metric: MetricName
    min_nonmembers: int | None = Field(default=None, ge=0)
    if_missing: IfMissing = "inconclusive"

    @model_validator(mode="after")
    def _model_level_attack(self):
        spec = METRICS[self.metric]
        if spec.model_level and self.attack is not None and getattr(self, "slice", None) is None:
            raise ValueError(f"{spec.name} is a property of the model, not of one attack; remove `attack`")
        return self

    @model_validator(mode="after")
    def _some_threshold(self):
        if self.warn is None and self.fail is None:  # type: ignore[attr-defined]
            raise ValueError("a rule needs `warn`, `fail` or both")
        return self


class ThresholdRule(_RuleBase):
    """Warn / fail when a metric (worst case, one attack, or slices) exceeds a threshold."""

    slice: str | None = Field(default=None, min_length=1)
    on: Judgement | None = None  # None: `ci` where the metric has a CI, else `point`
    warn: float | None = None
    fail: float | None = None

    @field_validator("on")
    @classmethod
    def _needs_ci(cls, value: str | None, info: ValidationInfo) -> str | None:
        spec = _metric(info)
        if value not in (None, "point") and spec is not None and not spec.has_ci:
            raise ValueError(f"{spec.name} has no confidence interval in results.json; use `on: point`")
        return value

    @field_validator("warn", "fail")
    @classmethod
    def _in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        _check_finite(value)
        spec = _metric(info)
        if value is None or spec is None:
            return value
        if not spec.low <= value <= spec.high:
            upper = "∞" if math.isinf(spec.high) else f"{spec.high:g}"
            raise ValueError(f"{value:g} is outside the range of {spec.name}, [{spec.low:g}, {upper}]")
        _check_order(value, info)
        return value

    @property
    def judgement(self) -> str:
        return self.on or ("ci" if METRICS[self.metric].has_ci else "point")

    @property
    def target(self) -> str:
        if self.slice is not None:
            return f"slice {self.slice}" + (f", attack {self.attack}" if self.attack else "")
        if self.attack is not None:
            return f"attack {self.attack}"
        return "model" if METRICS[self.metric].model_level else "worst case"


class RegressionRule(_RuleBase):
    """Warn / fail when a metric rises over the baseline results.json by more than an allowed increase."""

    on: RegressionJudgement = "point"
    warn: float | None = None  # allowed increase before a warning
    fail: float | None = None  # allowed increase before a failure

    @field_validator("warn", "fail")
    @classmethod
    def _increase_in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        _check_finite(value)
        spec = _metric(info)
        if value is None or spec is None:
            return value
        if value < 0 or value > spec.span:
            upper = "∞" if math.isinf(spec.span) else f"{spec.span:g}"
            raise ValueError(f"an allowed increase of {spec.name} must lie in [0, {upper}], not {value:g}")
        _check_order(value, info)
        return value

    @property
    def judgement(self) -> str:
        return self.on

    @property
    def target(self) -> str:
        if self.attack is not None:
            return f"attack {self.attack}"
        return "model" if METRICS[self.metric].model_level else "worst case"


class Waiver(_Strict):
    """An accepted exception: the rule's warn / fail / inconclusive outcome does not count until `expires`."""

    rule: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    expires: date  # valid up to and including this date


class Policy(_Strict):
    """A release gate. See `mia-audit policy init` for a commented example."""

    version: Literal[1] = 1
    description: str | None = None
    fail_on_warn: bool = False
    min_nonmembers: dict[MetricName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    baseline: str | None = Field(default=None, min_length=1)
    rules: list[ThresholdRule] = Field(default_factory=list)
    regressions: list[RegressionRule] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_rules(self):
        if not self.rules and not self.regressions:
            raise ValueError("the policy has no rules: give `rules`, `regressions` or both")
        return self

    def all_rules(self) -> list[ThresholdRule | RegressionRule]:
        return [*self.rules, *self.regressions]


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and where it came from (recorded in the verdict)."""

    policy: Policy
    source: str  # the file path, or "built-in default policy"
    sha256: str | None
    directory: Path | None  # relative `baseline` paths resolve from here

    @property
    def is_default(self) -> bool:
        return self.directory is None


@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    field: str
    message: str

    def describe(self, source: str) -> str:
        where = f"{source}: line {self.line}" if self.line else source
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class PolicyError(InputError):
    """A policy file that cannot be used; every problem names its line and field. Exit code 2."""

    def __init__(self, *, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s); run `mia-audit policy validate {source}`)"
        super().__init__(problems[0].describe(source) + (more if len(problems) > 1 else ""))


_FIELDS_AT = {
    (): Policy,
    ("rules",): ThresholdRule,
    ("regressions",): RegressionRule,
    ("waivers",): Waiver,
}


def _allowed_fields(location: tuple) -> list[str]:
    """The fields allowed beside an unknown key at `location` (for a 'did you mean' hint)."""
    parents = tuple(part for part in location[:-1] if isinstance(part, str))
    model = _FIELDS_AT.get(parents)
    if model is None:
        return []
    return list(model.model_fields)


def _message(error: dict) -> str:
    kind = error["type"]
    location = error["loc"]
    if kind == "extra_forbidden":
        name = str(location[-1])
        hint = difflib.get_close_matches(name, _allowed_fields(location), n=1)
        return "unknown field" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    if kind == "missing":
        return "required field missing"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        given = location[-2] if "[key]" in location else error.get("input")
        hint = difflib.get_close_matches(str(given), re.findall(r"'([^']*)'", expected), n=1)
        message = f"'{given}' is not allowed; use {expected}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    if kind == "string_pattern_mismatch" and location[-1] == "id":
        message = "a rule id is letters, digits, '.', '_' and '-', starting with a letter or digit"
    return message


def _problems(error: ValidationError, source: YamlSource) -> list[PolicyProblem]:
    """One problem per pydantic error, unknown fields first (a misspelt field is the usual root cause).

    A "required field missing" that an unknown field beside it was probably meant to be (`metrik` for
    `metric`) is left out: the unknown-field message already says it.
    """
    items = error.errors()
    meant = set()
    for item in items:
        if item["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(item["loc"][-1]), _allowed_fields(item["loc"]), n=1)
            if hint:
                meant.add((*item["loc"][:-1], hint[0]))
    problems = []
    for item in items:
        location = item["loc"]
        if item["type"] == "missing" and tuple(location) in meant:
            continue
        is_key = item["type"] == "extra_forbidden" or "[key]" in location
        location = tuple(part for part in location if part != "[key]")
        line = source.line_of(location, key=is_key)
        problem = PolicyProblem(line=line, field=format_location(location), message=_message(item))
        problems.append((item["type"] != "extra_forbidden", line or 0, problem))
    return [problem for *_, problem in sorted(problems, key=lambda entry: entry[:2])]


def _cross_checks(policy: Policy, source: YamlSource, known_attacks: set[str] | None) -> list[PolicyProblem]:
    """What one field cannot check alone: unique ids, waivers naming real rules, attack names, evidence."""
    problems: list[PolicyProblem] = []

    def add(location: tuple, message: str, *, key: bool = False) -> None:
        problems.append(PolicyProblem(line=source.line_of(location, key=key), field=format_location(location),
                                      message=message))

    seen: dict[str, str] = {}
    for group in ("rules", "regressions"):
        for index, rule in enumerate(getattr(policy, group)):
            if rule.id in seen:
                add((group, index, "id"), f"rule id '{rule.id}' is already used by {seen[rule.id]}")
            seen.setdefault(rule.id, f"{group}[{index}]")
            if known_attacks is not None and rule.attack is not None and rule.attack not in known_attacks:
                add((group, index, "attack"),
                    f"unknown attack '{rule.attack}'; known attacks: {', '.join(sorted(known_attacks))}")
    waived: set[str] = set()
    for index, waiver in enumerate(policy.waivers):
        if waiver.rule not in seen:
            hint = difflib.get_close_matches(waiver.rule, list(seen), n=1)
            add(("waivers", index, "rule"), f"no rule has the id '{waiver.rule}'"
                + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        elif waiver.rule in waived:
            add(("waivers", index, "rule"), f"rule '{waiver.rule}' already has a waiver")
        waived.add(waiver.rule)
    for name, minimum in policy.min_nonmembers.items():
        spec = METRICS[name]
        if spec.fpr is not None and minimum * spec.fpr < 1:
            needed = math.ceil(1 / spec.fpr - 1e-9)
            add(("min_nonmembers", name),
                f"{minimum} is below {needed}, the fewest non-members that can resolve an FPR of {spec.fpr:g} "
                "at all; use at least that")
    return sorted(problems, key=lambda p: (p.line or 0))


def _known_attacks() -> set[str]:
    from mia_audit.attacks import registered_attacks

    return set(registered_attacks())


def parse_policy(*, text: str, source: str, check_attacks: bool = True) -> Policy:
    """Validate policy YAML text; raise PolicyError listing every problem with its line and field."""
    try:
        parsed = parse_yaml(text=text)
    except YamlSourceError as error:
        raise PolicyError(source=source, problems=[PolicyProblem(line=error.line, field="", message=str(error))])
    if not isinstance(parsed.data, dict):
        shape = "empty" if parsed.data is None else f"a {type(parsed.data).__name__}, not a mapping"
        raise PolicyError(source=source, problems=[PolicyProblem(
            line=parsed.line_of(()) if parsed.data is not None else None, field="",
            message=f"the policy is {shape}; it must be a YAML mapping with `rules:` (see `mia-audit policy init`)",
        )])
    try:
        policy = Policy.model_validate(parsed.data)
    except ValidationError as error:
        raise PolicyError(source=source, problems=_problems(error, parsed)) from None
    problems = _cross_checks(policy, parsed, _known_attacks() if check_attacks else None)
    if problems:
        raise PolicyError(source=source, problems=problems)
    return policy


def load_policy(*, path: Path) -> LoadedPolicy:
    """Read and validate a policy file (InputError / PolicyError → exit code 2)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: policy file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the policy file ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: the policy file is not UTF-8 text") from None
    policy = parse_policy(text=text, source=str(path))
    return LoadedPolicy(policy=policy, source=str(path), sha256=hashlib.sha256(raw).hexdigest(),
                        directory=path.resolve().parent)


DEFAULT_POLICY_SOURCE = "built-in default policy"


def default_policy() -> LoadedPolicy:
    """The policy applied when no --policy is given: the uncommented part of `mia-audit policy init`."""
    return LoadedPolicy(
        policy=parse_policy(text=STARTER_POLICY, source=DEFAULT_POLICY_SOURCE),
        source=DEFAULT_POLICY_SOURCE,
        sha256=hashlib.sha256(STARTER_POLICY.encode("utf-8")).hexdigest(),
        directory=None,
    )


def resolve_baseline(*, loaded: LoadedPolicy, override: Path | None) -> Path | None:
    """--baseline wins; otherwise the policy's `baseline`, relative to the policy file's folder."""
    if override is not None:
        return override
    if loaded.policy.baseline is None:
        return None
    candidate = Path(loaded.policy.baseline)
    if not candidate.is_absolute() and loaded.directory is not None:
        candidate = loaded.directory / candidate
    return candidate


SLICE_ANY = "any"


def slice_matches(*, selector: str, spec: str, label: str) -> bool:
    """`any` matches every slice; `SPEC` every value of that spec; `SPEC=VALUE` exactly one slice."""
    if selector == SLICE_ANY:
        return True
    if "=" in selector:
        return re.sub(r"\s*=\s*", "=", selector.strip()) == label
    return selector.strip() == spec


__all__ = [
    "DEFAULT_POLICY_SOURCE",
    "LoadedPolicy",
    "Policy",
    "PolicyError",
    "PolicyProblem",
    "RegressionRule",
    "ThresholdRule",
    "Waiver",
    "default_policy",
    "load_policy",
    "parse_policy",
    "resolve_baseline",
    "slice_matches",
]
