"""The eight-step audit workflow (DESIGN §2). Computes; never prints. Returns one `AuditRun`.

1 audit sets · 2 model · 3 query · 4 metric attacks · 5 shadow/reference models · 6 measure · 7 defend ·
8 document. Each step is recorded with `done` / `skipped` and why. Steps 3–6 go through the one
evaluation core (`mia_audit.evaluation.core.evaluate`), which step 7 calls again for every defended
variant. Every random choice draws from a named stream of `SeedStreams(config.seed)`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mia_audit import __version__
from mia_audit.attacks import AttackScores, registered_attacks
from mia_audit.clock import utc_timestamp
from mia_audit.config import RunConfig
from mia_audit.data.audit_data import AuditData
from mia_audit.data.loading import bind_labels, evidence_warnings, read_audit_sets
from mia_audit.data.manifest import sha256_of
from mia_audit.defenses import parse_defenses
from mia_audit.environment import describe_environment
from mia_audit.errors import InputError
from mia_audit.evaluation.core import EvaluationOptions, TargetOutputs, evaluate, needs_shadows
from mia_audit.evaluation.distributions import signal_distributions
from mia_audit.evaluation.measure import select_worst_case
from mia_audit.evaluation.query import QueriedTarget, check_model_accepts, query_target, resolve_batch_size
from mia_audit.models import ModelAdapter, load_model
from mia_audit.results import AuditResult, DataInfo, FileRef, ModelInfo, Utility, WorkflowStep
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.recipe import load_recipe
from mia_audit.shadows.step import ReferenceStep, run_reference_step, skip_reason
from mia_audit.slices.dimensions import validate_slicing
from mia_audit.slices.step import measure_groups
from mia_audit.slices.subjects import check_subjects

__all__ = ["AuditRun", "ProgressSink", "STEP_NAMES", "run_audit", "utc_timestamp"]

STEP_NAMES = {
    1: "Audit sets",
    2: "Model",
    3: "Query",
    4: "Metric attacks",
    5: "Shadow / reference attacks",
    6: "Measure",
    7: "Defend",
    8: "Document",
}


class ProgressSink(Protocol):
    """Where the workflow reports progress (the CLI draws it on stderr; tests pass nothing)."""

    def begin(self, label: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def end(self) -> None: ...


class _Silent:
    def begin(self, label: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def end(self) -> None: ...


@dataclass
class AuditRun:
    """The result document plus what must never go into it (per-record scores, for a restricted export)."""

    result: AuditResult
    record_scores: dict[str, AttackScores] = field(default_factory=dict)
    # how to name each scored record in a restricted export: manifest data-row numbers and ids (if any)
    member_rows: np.ndarray | None = None
    nonmember_rows: np.ndarray | None = None
    member_ids: np.ndarray | None = None
    nonmember_ids: np.ndarray | None = None


@dataclass
class _Steps:
    records: dict[int, WorkflowStep] = field(default_factory=dict)

    def record(self, step: int, status: str, detail: str) -> None:
        self.records[step] = WorkflowStep(step=step, name=STEP_NAMES[step], status=status, detail=detail)

    def ordered(self) -> list[WorkflowStep]:
        return [self.records[step] for step in sorted(self.records)]


def selected_attacks(config: RunConfig) -> list[str]:
    """The attacks to run (`--attacks`, default all), in the registry's order."""
    available = registered_attacks()
    if config.attacks is None:
        return list(available)
    unknown = [name for name in config.attacks if name not in available]
    if unknown:
        raise InputError(f"--attacks: unknown attack '{unknown[0]}'; available: {', '.join(available)}")
    return [name for name in available if name in set(config.attacks)]


def _capabilities(config: RunConfig) -> frozenset[str]:
    return frozenset({"labels", "queries"} | ({"scores"} if config.exposure == "scores" else set()))


def run_audit(*, config: RunConfig, progress: ProgressSink | None = None) -> AuditRun:
    """Walk the eight steps on the user's model and manifests and return the result document."""
    sink = progress or _Silent()
    seeds = SeedStreams(run_seed=config.seed)
    warnings: list[str] = []
    steps = _Steps()
    attacks = selected_attacks(config)
    variants = parse_defenses(config.defense.spec) if config.defense.spec else []  # a bad spec stops before any work
    data, model, model_sha, recipe, overlap = _load(config=config, warnings=warnings, sink=sink)
    shadow_attacks = [name for name in attacks if needs_shadows(name)]
    why_no_shadows = skip_reason(config=config, names=shadow_attacks, capabilities=_capabilities(config))
    queried = query_target(
        model=model, data=data, requested_kind=config.output_kind, capabilities=_capabilities(config),
        batch_size=resolve_batch_size(requested=config.batch_size, record_shape=data.record_shape,
                                      itemsize=np.dtype(model.input_dtype).itemsize),
        with_population=why_no_shadows is None, source=str(config.model_path), progress=sink,
    )
    target = queried.outputs
    _record_first_steps(steps=steps, data=data, model=model, queried=queried, overlap=overlap)

    source, unavailable = _shadow_source(config=config, model=model, data=data, target=target, recipe=recipe[0],
                                         queried=queried, needed=why_no_shadows is None or bool(variants))
    reference = _reference_step(config=config, names=shadow_attacks, why_not=why_no_shadows or unavailable,
                                source=source, data=data, model_sha=model_sha, queried=queried, recipe=recipe,
                                seeds=seeds.child("shadows"), sink=sink)
    options = EvaluationOptions(n_bootstrap=config.n_bootstrap, delta=config.delta,
                                attack_options=config.label_only.model_dump())
    evaluation = evaluate(outputs=target, data=data, attacks=attacks, seeds=seeds.child("audit"), options=options,
                          shadows=reference.references, progress=sink)
    metric_not_run = [f"{name} ({why})" for name, why in evaluation.not_run.items() if not needs_shadows(name)]
    ran = ", ".join(name for name in evaluation.scores if not needs_shadows(name)) or "none"
    steps.record(4, "done", f"ran {ran}" + (f"; not run: {'; '.join(metric_not_run)}" if metric_not_run else ""))
    steps.record(5, reference.status, reference.detail)
    groups = measure_groups(config=config, data=data, target=target, scores=evaluation.scores,
                            results=evaluation.results, seeds=seeds.child("groups"), progress=sink)
    steps.record(6, "done", _measure_detail(config=config, n_results=len(evaluation.results))
                 + groups.detail(n_attacks=len(evaluation.scores), fpr=config.slicing.subpopulation_fpr))
    defended = _defend(config=config, variants=variants, source=source, unavailable=unavailable, data=data,
                       model=model, queried=queried, reference=reference, attacks=attacks, options=options,
                       original=evaluation.results, seeds=seeds.child("defenses"), sink=sink)
    steps.record(7, defended.status, defended.detail)
    steps.record(8, "done", _documents_detail(config))
    result = _assemble(config=config, data=data, model=model, model_sha=model_sha, queried=queried, overlap=overlap,
                       evaluation=evaluation, groups=groups, reference=reference, defended=defended, steps=steps,
                       warnings=warnings)
    return AuditRun(
        result=result,
        record_scores=evaluation.scores,
        member_rows=data.members.rows(),
        nonmember_rows=data.nonmembers.rows(),
        member_ids=data.members.ids,
        nonmember_ids=data.nonmembers.ids,
    )


# --- steps 1 and 2 ------------------------------------------------------------------------------------


def _load(*, config: RunConfig, warnings: list[str], sink: ProgressSink):
    """Read and check every input, load the model, bind labels to its classes."""
    sink.begin("Reading manifests")
    sets = read_audit_sets(config=config, warnings=warnings)
    warnings.extend(evidence_warnings(n_nonmembers=sets.nonmembers.n))
    validate_slicing(spec=config.slicing, members=sets.members, nonmembers=sets.nonmembers)
    if config.manifest.group_column is not None:
        check_subjects(members=sets.members, nonmembers=sets.nonmembers, group_column=config.manifest.group_column)
    recipe = load_recipe(config.shadow.recipe_path) if config.shadow.recipe_path else (None, None)
    sink.end()
    sink.begin("Loading model")
    model = load_model(path=config.model_path, model_format=config.model_format)
    model_sha = sha256_of(config.model_path)
    for audit_set in (sets.members, sets.nonmembers, sets.population, sets.validation):
        if audit_set is not None:
            check_model_accepts(model=model, audit_set=audit_set)
    data = bind_labels(sets=sets, label_column=config.manifest.label_column, n_classes=model.n_classes,
                       class_labels=model.class_labels)
    sink.end()
    return data, model, model_sha, recipe, (sets.n_overlap, sets.n_dropped)


def _utility(target: TargetOutputs) -> Utility:
    return Utility(
        member_accuracy=target.members.accuracy,
        nonmember_accuracy=target.nonmembers.accuracy,
        generalization_gap=target.members.accuracy - target.nonmembers.accuracy,
    )


def _record_first_steps(*, steps: _Steps, data: AuditData, model: ModelAdapter, queried: QueriedTarget, overlap) -> None:
    n_overlap, n_dropped = overlap
    classes = set(data.members.labels.tolist()) | set(data.nonmembers.labels.tolist())
    steps.record(1, "done", f"{data.members.n} members, {data.nonmembers.n} non-members; {n_overlap} overlapping "
                 f"record(s)" + (f", {n_dropped} dropped" if n_dropped else "") + f"; {len(classes)} classes present")
    utility = _utility(queried.outputs)
    steps.record(2, "done", f"{model.format_name} model, {model.n_classes} classes, {queried.output_kind} "
                 f"({queried.kind_source}); member accuracy {utility.member_accuracy:.3f}, non-member accuracy "
                 f"{utility.nonmember_accuracy:.3f}, gap {utility.generalization_gap:+.3f}")
    steps.record(3, "done", f"{data.members.n + data.nonmembers.n} records queried in batches of "
                 f"{queried.batch_size}; signals in float64")


# --- step 5 -------------------------------------------------------------------------------------------


def _calibration(target: TargetOutputs):
    from mia_audit.shadows.torch_trainer import CalibrationTarget

    return CalibrationTarget(member_accuracy=target.members.accuracy,
                             median_member_loss=float(np.median(target.members.loss)))


def _shadow_source(*, config, model, data, target, recipe, queried, needed: bool) -> tuple[Any, str | None]:
    """The one trainable copy of the model (shadows of step 5 and retraining in step 7), or why there is none."""
    if not needed:
        return None, None
    from mia_audit.shadows.clone import ShadowUnavailable, make_shadow_source

    try:
        return make_shadow_source(
            model=model, model_path=config.model_path, recipe=recipe, output_kind=queried.output_kind,
            x_check=data.members.features, n_classes=model.n_classes, pool_x=data.pool_features,
            calibration=_calibration(target),
        ), None
    except ShadowUnavailable as reason:
        return None, f"shadow models cannot be trained: {reason}"


def _reference_step(*, config, names, why_not, source, data, model_sha, queried, recipe, seeds, sink) -> ReferenceStep:
    if why_not is not None:
        return ReferenceStep(status="skipped", detail=why_not)
    return run_reference_step(
        config=config, names=names, source=source, data=data, model_sha256=model_sha,
        output_kind=queried.output_kind, calibration=_calibration(queried.outputs), recipe_sha256=recipe[1],
        seeds=seeds, progress=sink,
    )


# --- steps 6 to 8 -------------------------------------------------------------------------------------


def _measure_detail(*, config: RunConfig, n_results: int) -> str:
    return (
        f"AUC, TPR at 0.1%/1%/10% FPR, advantage, cross-fitted balanced accuracy and ε lower bound for "
        f"{n_results} attacks, {config.n_bootstrap} stratified bootstrap resamples; "
    )


def _defend(*, config, variants, source, unavailable, data, model, queried, reference, attacks, options, original,
            seeds, sink):
    """Step 7 (optional): retrain the architecture of step 5 with each defense and re-audit every variant."""
    from mia_audit.defenses.step import DefenseSetup, DefenseStepResult, run_defense_step

    if not variants:
        return DefenseStepResult(status="skipped", detail="no defenses requested (--defenses)")
    if config.exposure != "scores":
        return DefenseStepResult(status="skipped", detail="defense comparison needs score exposure (--exposure scores)")
    from mia_audit.defenses.trainer import TrainRecipe
    from mia_audit.shadows.recipe import ShadowRecipe

    graph = getattr(source, "graph", None)
    if source is not None and graph is None:
        unavailable = "the shadow recipe names a scikit-learn estimator, which the torch defenses cannot train"
    training = (load_recipe(config.shadow.recipe_path)[0] if config.shadow.recipe_path else ShadowRecipe()).training
    epochs = reference.info.epochs if reference.info is not None and reference.info.epochs else (
        int(training.epochs) if training.epochs != "auto" else 100)  # the epochs that matched the target in step 5
    setup = DefenseSetup(
        variants=variants, data=data, original=queried.probabilities, graph=graph,
        graph_unavailable=unavailable,
        recipe=TrainRecipe(epochs=int(epochs), batch_size=training.batch_size, learning_rate=training.lr,
                           optimizer="sgd" if training.optimizer == "sgd" else "adam",
                           weight_decay=training.weight_decay),
        attacks=attacks, options=options, n_shadow_models=config.defense.n_shadow_models, seeds=seeds,
        export_dir=config.defense.export_dir,
    )
    return run_defense_step(setup=setup, original_attacks=original, progress=sink)


def _documents_detail(config: RunConfig) -> str:
    names = {"json": "results.json", "html": "report.html", "pdf": "report.pdf (PDF/A-3u, results.json attached)"}
    written = ", ".join(names[kind] for kind in config.formats)
    detail = f"{written}; no raw records, record ids or per-record scores in any of them"
    if config.export_record_scores:
        detail += "; per-record scores exported on request to a separate RESTRICTED file"
    return detail


def _class_counts(labels: np.ndarray, class_labels: list | None) -> dict[str, int]:
    counts = Counter(int(label) for label in labels)
    name = (lambda index: str(class_labels[index])) if class_labels else str
    return {name(index): counts[index] for index in sorted(counts)}


def _file_ref(side) -> FileRef | None:
    return None if side is None else FileRef(path=str(side.path), sha256=side.records.sha256, n=side.n)


def _assemble(*, config, data, model, model_sha, queried, overlap, evaluation, groups, reference, defended, steps,
              warnings) -> AuditResult:
    """The one result object every consumer (report, gate, CI) reads."""
    return AuditResult(
        tool_version=__version__,
        seed=config.seed,
        created_utc=utc_timestamp(),
        model=ModelInfo(
            path=str(config.model_path), sha256=model_sha, format=model.format_name, n_classes=model.n_classes,
            output_kind=queried.output_kind, output_kind_source=queried.kind_source,
            input_shape=None if model.input_shape is None else list(model.input_shape),
            runtime={key: str(value) for key, value in model.runtime_info().items()},
        ),
        data=DataInfo(
            members=_file_ref(data.members), nonmembers=_file_ref(data.nonmembers),
            n_overlap=overlap[0], n_dropped_overlap=overlap[1], label_column=config.manifest.label_column,
            feature_columns=data.members.records.feature_columns, input_column=config.manifest.input_column,
            meta_columns=list(config.manifest.meta_columns),
            member_class_counts=_class_counts(data.members.labels, data.class_labels),
            nonmember_class_counts=_class_counts(data.nonmembers.labels, data.class_labels),
            population=_file_ref(data.population),
        ),
        utility=_utility(queried.outputs),
        attacks=evaluation.results,
        worst_case=select_worst_case(attacks=evaluation.results),
        workflow=steps.ordered(),
        warnings=warnings,
        config=config.model_dump(mode="json"),
        environment=describe_environment(),
        distributions=signal_distributions(members=queried.outputs.members, nonmembers=queried.outputs.nonmembers),
        slices=groups.slices.slices if groups.slices else [],
        slice_summary=groups.slices.summary if groups.slices else None,
        subjects=groups.subjects,
        shadow_models=reference.info,
        defenses=defended.comparison,
    )
