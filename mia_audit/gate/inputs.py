"""What the policy gate judges: a results document and its slices, read leniently.

The result itself is validated strictly (by the one results reader, `mia_audit.files.results_file`); the
`slices` list is read here with only the fields the gate's rules use (`SliceEntry`), so that slices written by
another tool or version — bare numbers for a TPR, extra fields — can still be judged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from mia_audit.errors import InputError
from mia_audit.files.results_file import read_results
from mia_audit.files.yaml_source import format_location
from mia_audit.results import AuditResult

__all__ = ["GateInput", "SliceEntry", "SliceTpr", "gate_input", "load_baseline", "read_gate_input"]


class SliceTpr(BaseModel):
    """TPR at one FPR inside a slice entry, read leniently: the fields of `mia_audit.results.TprAtFpr`, most of
    them optional, or a bare number (what another tool may write). Only the gate reads this form."""

    model_config = ConfigDict(extra="allow")

    tpr: float
    ci: tuple[float, float] | None = None
    flag: str | None = None
    n_nonmembers: int | None = None


class SliceEntry(BaseModel):
    """One entry of results.json's optional `slices` list, read leniently: only what the gate uses."""

    model_config = ConfigDict(extra="allow")

    spec: str
    value: str | int | float | bool | list[str | int | float | bool] | None = None
    attack: str | None = None
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    advantage: float | None = None
    advantage_ci: tuple[float, float] | None = None
    epsilon_lower_bound: float | None = None
    generalization_gap: float | None = None
    tpr_at_fpr: dict[str, SliceTpr] = Field(default_factory=dict)
    flag: str | None = None
    n_members: int | None = None
    n_nonmembers: int | None = None

    @field_validator("tpr_at_fpr", mode="before")
    @classmethod
    def _bare_numbers(cls, value):
        if isinstance(value, dict):
            return {key: {"tpr": item} if isinstance(item, (int, float)) else item for key, item in value.items()}
        return value

    @property
    def label(self) -> str:
        """`spec=value` (list values joined by commas), the name a policy's `slice:` matches."""
        if self.value is None:
            return self.spec
        value = ",".join(str(v) for v in self.value) if isinstance(self.value, list) else str(self.value)
        return f"{self.spec}={value}"


_SLICES = TypeAdapter(list[SliceEntry])


@dataclass(frozen=True)
class GateInput:
    """A results document as the gate reads it: the validated result plus its slices, if any."""

    result: AuditResult
    slices: list[SliceEntry] | None  # None: the results contain no `slices` at all
    source: str


def _slices(raw: object, *, source: str) -> list[SliceEntry] | None:
    if raw is None:
        return None
    try:
        return _SLICES.validate_python(raw)
    except ValidationError as error:
        item = error.errors()[0]
        raise InputError(f"{source}: key '{format_location(('slices', *item['loc']))}': {item['msg']}") from None


def gate_input(*, result: AuditResult, source: str) -> GateInput:
    """Wrap a result this process just computed; slices come from its JSON form (whichever module wrote them).

    Slices the gate cannot read here are a defect between modules, not bad user input: RuntimeError.
    """
    document = json.loads(result.to_json())
    try:
        slices = _slices(document.get("slices"), source=source)
    except InputError as error:
        raise RuntimeError(f"the slice results do not have the shape the policy gate reads: {error}") from None
    return GateInput(result=result, slices=slices, source=source)


def read_gate_input(*, path: Path) -> tuple[GateInput, dict]:
    """A results.json for the gate (InputError, exit code 2, names what is wrong) and its parsed document."""
    read = read_results(path=path, lenient=("slices",))
    slices = _slices(read.document.get("slices"), source=str(path))
    return GateInput(result=read.result, slices=slices, source=str(path)), read.document


def load_baseline(*, path: Path | None) -> tuple[GateInput | None, str | None, str | None]:
    """(baseline, its source, why there is none). A missing file is the regression rules' `if_missing`
    case (the first run of a pipeline has no previous results); a broken one is an input error."""
    if path is None:
        return None, None, None
    if not path.exists():
        return None, str(path), f"baseline results file {path} not found"
    baseline, _ = read_gate_input(path=path)
    return baseline, str(path), None
