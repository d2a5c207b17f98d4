"""results.json: the one result object every consumer (report, policy check, CI) reads.

Versioned; later versions only add fields. Nothing in here is a raw record, a record id or a
per-record score: ROC curves are kept as (FPR, TPR) points without their thresholds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mia_audit.gate.verdict import Verdict

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


class Histogram(_Model):
    """Member vs non-member counts of one per-record signal over fixed, data-independent bins.

    Only aggregated counts: bin edges are fixed in advance (never taken from the data), so no single
    record's value can be read back. Values outside the edges are counted in the first or last bin.
    """

    signal: str
    label: str
    scale: Literal["linear", "log"]
    edges: list[float]
    members: list[int]
    nonmembers: list[int]


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


class DefenseApplied(_Model):
    name: str
    title: str
    kind: Literal["training", "output"]
    parameters: dict[str, float | int | str] = Field(default_factory=dict)
    reference: str


class DefenseRow(_Model):
    """One row of the defense comparison (step 7): a model variant attacked like the original (steps 3–6)."""

    label: str
    role: Literal["original", "retrained_baseline", "variant"]
    defenses: list[DefenseApplied] = Field(default_factory=list)
    status: Literal["done", "skipped"] = "done"
    reason: str | None = None
    test_accuracy: float | None = None
    member_accuracy: float | None = None
    utility_drop: float | None = Field(default=None, description="retrained baseline test accuracy − this test accuracy")
    generalization_gap: float | None = Field(default=None, description="member accuracy − test accuracy")
    worst_attack: str | None = None
    worst_auc: float | None = None
    worst_auc_ci: tuple[float, float] | None = None
    worst_tpr_at_fpr_0_001: TprAtFpr | None = Field(default=None, alias="worst_tpr_at_fpr_0.001")
    balanced_accuracy: float | None = Field(default=None, description="the worst attack's cross-fitted balanced accuracy")
    baseline_attack_advantage: float | None = None
    baseline_attack_advantage_ci: tuple[float, float] | None = None
    effectiveness: float | None = Field(
        default=None, description="(AUC_retrained_baseline − AUC) / (AUC_retrained_baseline − 0.5) of the worst case"
    )
    pareto_optimal: bool = False
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    n_shadow_models: int = 0
    training: dict[str, str | int | float | list[str]] = Field(default_factory=dict)
    attacks: list[AttackResult] = Field(default_factory=list)


class DefenseComparison(_Model):
    """Step 7: the privacy/utility comparison of defended variants (adaptive attacker)."""

    protocol: str
    n_train: int
    n_test: int
    n_attack_nonmembers: int
    n_holdout: int = 0
    holdout_source: str | None = None
    recipe: dict = Field(default_factory=dict)
    rows: list[DefenseRow]
    pareto_criteria: str
    recommendation: str
    notes: list[str] = Field(default_factory=list)


class Environment(_Model):
    python: str
    platform: str
    cpu: str
    packages: dict[str, str]


SliceFlag = Literal["ok", "insufficient_evidence"]


class SubpopulationResult(_Model):
    """Subpopulation attack on one slice: a threshold calibrated on the slice vs the global threshold.

    Both thresholds aim at FPR = `fpr` and are fitted and evaluated by 2-fold cross-fitting
    (see `mia_audit.slices.subpopulation`): every number here is measured on records the threshold was NOT fitted
    on. `raises_tpr` is True when the per-slice threshold finds more of the slice's members
    (`tpr_slice > tpr_global`) while its held-out FPR stays within the 97.5% binomial quantile of `fpr`,
    and each fold holds at least 10/`fpr` of the slice's non-members (`flag` = "ok"); otherwise the numbers
    are reported but no gain is claimed.
    """

    fpr: float
    tpr_global: float = Field(description="held-out TPR in the slice with the threshold calibrated on everyone")
    fpr_global: float = Field(description="held-out FPR in the slice with that global threshold")
    tpr_slice: float = Field(description="held-out TPR with the threshold calibrated on the slice alone")
    fpr_slice: float = Field(description="held-out FPR with the per-slice threshold")
    gain: float = Field(description="tpr_slice − tpr_global")
    raises_tpr: bool
    flag: EvidenceFlag = Field(description="evidence for calibrating `fpr` on one fold of the slice's non-members")


class SliceResult(_Model):
    """One slice × one attack. Slices with fewer than `min_records` members or non-members are reported
    with `flag = "insufficient_evidence"`, their counts and accuracies only, and are neither tested nor
    ranked. AUC CI: DeLong; TPR@FPR CI: threshold band (Clopper–Pearson at both ends); p-values: one-sided
    Mann–Whitney of "slice AUC > 0.5", Benjamini–Hochberg-adjusted over every slice × attack tested
    (see `mia_audit.stats.level_counts`). `rank` 1 = the highest lower CI bound of the AUC.
    """

    name: str = Field(description="'<spec>=<value>', e.g. 'sex=F', 'true_class=3', 'sex*age_band=F & [18, 35)'")
    kind: Literal["class", "correctness", "loss_percentile", "column", "intersection"]
    spec: str = Field(description="the slicing dimension: true_class, correctness, loss_percentile, a column, A*B")
    value: str
    attack: str
    by_model_output: bool = Field(
        default=False,
        description="defined by the model's output on the record (correctness, loss percentile): tested and ranked, "
        "but not chosen as the worst slice in slice_summary",
    )
    n_members: int
    n_nonmembers: int
    member_accuracy: float | None = None
    nonmember_accuracy: float | None = None
    accuracy_gap: float | None = Field(default=None, description="member accuracy − non-member accuracy in the slice")
    flag: SliceFlag
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    advantage: float | None = None
    tpr_at_fpr: dict[str, TprAtFpr] = Field(default_factory=dict)
    p_value: float | None = None
    p_value_adjusted: float | None = None
    significant: bool = False
    rank: int | None = None
    subpopulation: SubpopulationResult | None = None


class WorstSlice(_Model):
    """The top-ranked slice × attack (among classes, columns and intersections when any was tested: slices cut
    by the model's own output are excluded, see `SliceResult.by_model_output`) vs the same attack on everyone."""

    name: str
    attack: str
    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: tuple[float, float]
    p_value_adjusted: float
    significant: bool
    global_auc: float | None = None
    global_auc_ci: tuple[float, float] | None = None
    auc_difference: float | None = Field(default=None, description="slice AUC − global AUC of the same attack")


class ExposedSlice(_Model):
    """One of the worst slices (each slice once, with its worst attack) and the members singled out in it."""

    name: str
    attack: str
    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: tuple[float, float]
    p_value_adjusted: float
    significant: bool
    tpr_at_fpr_0_001: TprAtFpr = Field(alias="tpr_at_fpr_0.001")
    members_singled_out_at_0_001: int = Field(
        alias="members_singled_out_at_0.001",
        description="members of the slice above the slice's own 0.1%-FPR threshold (TPR@0.1%FPR × n_members)",
    )


class SubpopulationGain(_Model):
    name: str
    attack: str
    tpr_global: float
    tpr_slice: float
    gain: float


class SliceSummary(_Model):
    """Disparity summary over `slices`: evidence rules applied, the worst slice vs global, exposed members."""

    n_slices: int = Field(description="distinct slices (each evaluated once per attack)")
    n_tested: int = Field(description="slice × attack pairs with enough records, the Benjamini–Hochberg family")
    n_insufficient: int = Field(description="distinct slices with fewer than min_records members or non-members")
    n_significant: int = Field(description="slice × attack pairs with p_value_adjusted ≤ fdr")
    min_records: int
    fdr: float
    methods: dict[str, str] = Field(default_factory=dict)
    worst: WorstSlice | None = None
    worst_slices: list[ExposedSlice] = Field(default_factory=list)
    members_singled_out_at_0_001: int = Field(
        default=0,
        alias="members_singled_out_at_0.001",
        description="distinct members singled out at 0.1% FPR across `worst_slices` (a member in two counts once)",
    )
    members_singled_out_flag: EvidenceFlag = Field(
        default="ok", description="the weakest evidence flag of TPR@0.1%FPR among `worst_slices`"
    )
    n_subpopulation_gains: int = 0
    subpopulation_gains: list[SubpopulationGain] = Field(
        default_factory=list, description="slice × attack pairs where per-slice calibration raises TPR, largest gain first"
    )


class SubjectAttackResult(AttackResult):
    """An attack evaluated over data subjects: each subject's record scores aggregated into one score."""

    aggregation: Literal["mean", "max"]


class SubjectAudit(_Model):
    """Data-subject-level audit (`--group-column`): is a person's presence in the training data detectable?

    Each subject's record scores (per attack, oriented higher = member) are aggregated by `mean` (the
    average evidence over the person's records) and by `max` (the person's most exposed record, what an
    attacker who needs one hit uses). AUC, TPR@FPR (bootstrap CIs over subjects) and the rest are
    computed over subjects exactly as over records. A subject with records on both sides is refused.
    """

    group_column: str
    n_member_subjects: int
    n_nonmember_subjects: int
    records_per_subject: dict[str, float] = Field(default_factory=dict, description="min, median, mean, max")
    aggregations: dict[str, str] = Field(default_factory=dict)
    attacks: list[SubjectAttackResult] = Field(default_factory=list)
    worst_case: WorstCase | None = None


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
    verdict: Verdict | None = None  # the policy gate's decision (absent in files written before the gate)
    # since 1.0 (issue 3): aggregated signal histograms for the report's distribution charts
    distributions: dict[str, Histogram] = Field(default_factory=dict)
    slices: list[SliceResult] = Field(default_factory=list)
    slice_summary: SliceSummary | None = None
    subjects: SubjectAudit | None = None
    shadow_models: ShadowModels | None = None
    defenses: DefenseComparison | None = None  # step 7 (--defenses)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
