"""context.yaml: what only the controller knows, for the report's scope and processing section.

Every field is optional: the report prints a visible "to be completed" box for each one missing, so an
incomplete context still yields a usable evidence document. Unknown keys are refused (a typo would
otherwise silently leave a box empty).

Example::

    controller: Example Hospital NHS Trust
    system: 30-day readmission risk model v3
    purpose: Prioritise discharge follow-up calls
    data_subjects: Adult inpatients discharged 2019-2023
    data_categories: [diagnoses, length of stay, age band]
    special_category: true        # GDPR Art. 9 special category data or HIPAA PHI
    exposure: labels              # probabilities | top_k | labels: what the deployment returns
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mia_audit.errors import InputError

ContextExposure = Literal["probabilities", "top_k", "labels"]


class Signatory(BaseModel):
    """A person who signs the report (name and role; the signature and date are written by hand)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    role: str | None = None


class ReportContext(BaseModel):
    """Controller-supplied facts about the processing. Everything optional; missing → "to be completed"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    controller: str | None = Field(default=None, description="Controller (GDPR) or covered entity (HIPAA)")
    processor: str | None = Field(default=None, description="Processor / business associate, if any")
    dpo_contact: str | None = Field(default=None, description="Data protection officer or privacy officer")
    system: str | None = Field(default=None, description="Name and version of the system the model is part of")
    purpose: str | None = Field(default=None, description="Purpose of the processing")
    lawful_basis: str | None = Field(default=None, description="Lawful basis (GDPR Art. 6, Art. 9(2))")
    data_subjects: str | None = Field(default=None, description="Categories of data subjects in the training data")
    data_categories: list[str] | None = Field(default=None, description="Categories of personal data")
    special_category: bool | None = Field(
        default=None, description="Special-category data (GDPR Art. 9) or protected health information (HIPAA)"
    )
    training_records: str | None = Field(default=None, description="Source and size of the training data")
    exposure: ContextExposure | None = Field(
        default=None, description="What the deployed model returns: probabilities, top-k scores or labels only"
    )
    access: str | None = Field(default=None, description="Who can query the model, and how often")
    recipients: str | None = Field(default=None, description="Recipients of the model or its outputs")
    retention: str | None = Field(default=None, description="Retention of the model and training data")
    formal_guarantee_required: bool | None = Field(
        default=None, description="Whether a formal (differential-privacy) guarantee is required"
    )
    notes: str | None = None
    prepared_by: Signatory | None = None
    reviewed_by: Signatory | None = None
    approved_by: Signatory | None = None


# What the scope section prints, in order: (field, label).
SCOPE_FIELDS: tuple[tuple[str, str], ...] = (
    ("controller", "Controller / covered entity"),
    ("processor", "Processor / business associate"),
    ("dpo_contact", "DPO / privacy officer"),
    ("system", "System"),
    ("purpose", "Purpose of the processing"),
    ("lawful_basis", "Lawful basis"),
    ("data_subjects", "Data subjects"),
    ("data_categories", "Categories of personal data"),
    ("special_category", "Special-category data (GDPR Art. 9) / PHI (HIPAA)"),
    ("training_records", "Training data (source, size)"),
    ("exposure", "Model exposure in deployment"),
    ("access", "Who can query the model"),
    ("recipients", "Recipients"),
    ("retention", "Retention"),
    ("formal_guarantee_required", "Formal (DP) guarantee required"),
)


def load_context(*, path: Path) -> tuple[ReportContext, bytes]:
    """Read and validate a context file; returns the model and the file's exact bytes (for attaching)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read the context file ({error.strerror or error})") from None
    try:
        document = yaml.safe_load(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        raise InputError(f"{path}: not valid UTF-8 YAML{where}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InputError(f"{path}: the context must be a mapping of keys to values, not a {type(document).__name__}")
    try:
        return ReportContext.model_validate(document), raw
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise InputError(f"{path}: key '{key}': {message}") from None
