"""results.json: the one result object every consumer (report, policy check, CI) reads.

Versioned; later versions only add fields. Nothing in here is a raw record, a record id or a
per-record score: ROC curves are kept as (FPR, TPR) points without their thresholds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

StepStatus = Literal["done", "skipped", "failed"]
EvidenceFlag = Literal["ok", "low_evidence", "not_estimable"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FileRef(_Model):
    path: str
    sha256: str
    n: int


class ModelInfo(_Model):
    path: str
    sha256: str
    format: str
    n_classes: int
    output_kind: Literal["logits", "probabilities"]
    output_kind_source: Literal["detected", "declared_by_model", "user"]
    input_shape: list[int | None] | None = None
    runtime: dict[str, str] = Field(default_factory=dict)


class DataInfo(_Model):
    members: FileRef
    nonmembers: FileRef
    n_overlap: int
    n_dropped_overlap: int = 0
    label_column: str
    feature_columns: list[str] = Field(default_factory=list)
    input_column: str | None = None
    meta_columns: list[str] = Field(default_factory=list)
    member_class_counts: dict[str, int] = Field(default_factory=dict)
    nonmember_class_counts: dict[str, int] = Field(default_factory=dict)
    population: FileRef | None = None


class Utility(_Model):
    member_accuracy: float
    nonmember_accuracy: float
    generalization_gap: float = Field(description="member accuracy − non-member accuracy")


class TprAtFpr(_Model):
    tpr: float
    ci: tuple[float, float]
    achieved_fpr: float
    achieved_fpr_ci: tuple[float, float]
    n_nonmembers: int
    flag: EvidenceFlag


class RocPoints(_Model):
    """A down-sampled ROC (log-spaced in FPR) for charts; exact metrics are computed on the full curve."""

    fpr: list[float]
    tpr: list[float]


class AttackResult(_Model):
    name: str
    family: str
    threat_model: str
    description: str
    reference: str
    auc: float
    auc_ci: tuple[float, float]
    advantage: float
    advantage_ci: tuple[float, float]
    balanced_accuracy: float
    tpr_at_fpr: dict[str, TprAtFpr]
    epsilon_lower_bound: float
    n_members: int
    n_nonmembers: int
    parameters: dict[str, float | int | str] = Field(default_factory=dict)
    roc: RocPoints


class WorstCase(_Model):
    attack: str
    family: str
    auc: float
    auc_ci: tuple[float, float]
    advantage: float
    tpr_at_fpr_0_001: TprAtFpr = Field(alias="tpr_at_fpr_0.001")
    members_singled_out_at_0_001: int = Field(
        alias="members_singled_out_at_0.001",
        description="round(TPR@0.1%FPR × n_members): members an attacker flags at that operating point",
    )


class WorkflowStep(_Model):
    step: int
    name: str
    status: StepStatus
    detail: str


class ShadowModels(_Model):
    """How the shadow / reference models of step 5 were made (no per-record data)."""

    n_shadow_models: int
    source: str = Field(description="onnx_graph, torchscript_via_onnx, architecture_recipe or sklearn_recipe")
    description: str
    recipe: dict = Field(default_factory=dict, description="the recipe used, defaults resolved")
    recipe_file: str | None = None
    recipe_sha256: str | None = None
    epochs: int | None = None
    calibrated: bool | None = Field(default=None, description="reached the target's member fit before max_epochs")
    calibration_target: dict[str, float] = Field(default_factory=dict)
    n_pool: int
    n_population: int = 0
    keep_design: str
    shadow_train_accuracy: float = Field(description="mean over shadows, on the records each trained on")
    shadow_heldout_accuracy: float = Field(description="mean over shadows, on the records each did not see")
    attacks: list[str] = Field(default_factory=list)


class Environment(_Model):
    python: str
    platform: str
    cpu: str
    packages: dict[str, str]


class AuditResult(_Model):
    schema_version: str = SCHEMA_VERSION
    tool_version: str
    seed: int
    created_utc: str
    model: ModelInfo
    data: DataInfo
    utility: Utility
    attacks: list[AttackResult]
    worst_case: WorstCase | None
    workflow: list[WorkflowStep]
    warnings: list[str] = Field(default_factory=list)
    config: dict = Field(default_factory=dict)
    environment: Environment | None = None
    shadow_models: ShadowModels | None = None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
