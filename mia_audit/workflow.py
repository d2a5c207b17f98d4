"""The eight-step audit workflow (DESIGN §2). Computes; never prints. Returns one `AuditRun`.

1 audit sets · 2 model · 3 query · 4 metric attacks · 5 shadow/reference attacks · 6 measure ·
7 defend · 8 document. Each step is recorded with `done` / `skipped` and why.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from mia_audit import __version__
from mia_audit.attacks import AttackContext, AttackScores, registered_attacks
from mia_audit.config import RunConfig
from mia_audit.defenses import parse_defenses
from mia_audit.evaluation.distributions import signal_distributions
from mia_audit.environment import describe_environment
from mia_audit.errors import InputError
from mia_audit.data.manifest import (
    AuditSet,
    check_same_layout,
    encode_labels,
    find_overlap,
    read_manifest,
    sha256_of,
)
from mia_audit.evaluation.measure import attack_result, select_worst_case
from mia_audit.models import ModelAdapter, load_model, normalize_outputs
from mia_audit.results import (
    AuditResult,
    DataInfo,
    FileRef,
    ModelInfo,
    SubjectAudit,
    Utility,
    WorkflowStep,
)
from mia_audit.shadows.recipe import load_recipe
from mia_audit.shadows.step import Population, is_shadow_attack, run_shadow_step
from mia_audit.data.signals import Signals, compute_signals, log_probabilities
from mia_audit.slices.dimensions import build_slices, validate_slicing
from mia_audit.slices.evaluate import SliceEvaluation, evaluate_slices
from mia_audit.slices.subjects import audit_subjects, check_subjects

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
    def begin(self, label: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def end(self) -> None:
        pass


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

    def done(self, step: int, detail: str) -> None:
        self.records[step] = WorkflowStep(step=step, name=STEP_NAMES[step], status="done", detail=detail)

    def skipped(self, step: int, detail: str) -> None:
        self.records[step] = WorkflowStep(step=step, name=STEP_NAMES[step], status="skipped", detail=detail)

    def ordered(self) -> list[WorkflowStep]:
        return [self.records[step] for step in sorted(self.records)]


def utc_timestamp() -> str:
    """UTC time of the run, honouring SOURCE_DATE_EPOCH for reproducible documents."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.fromtimestamp(int(epoch), tz=timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    )
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- step 1 -------------------------------------------------------------------------------------------


MIN_RECORDS_PER_SIDE = 2  # cross-fitting splits each side in two halves


def load_audit_sets(*, config: RunConfig, warnings: list[str]) -> tuple[AuditSet, AuditSet, int, int]:
    """Read both manifests, check they agree, and apply the overlap policy. Returns sets and overlap counts."""
    members = read_manifest(path=config.members_path, options=config.manifest)
    nonmembers = read_manifest(path=config.nonmembers_path, options=config.manifest)
    check_same_layout(members=members, nonmembers=nonmembers)
    for audit_set in (members, nonmembers):
        if audit_set.n < MIN_RECORDS_PER_SIDE:
            raise InputError(
                f"{audit_set.path}: {audit_set.n} record(s); an audit needs at least {MIN_RECORDS_PER_SIDE} "
                "members and non-members (and thousands of non-members to resolve low FPRs)"
            )
    overlap = find_overlap(members=members, nonmembers=nonmembers)
    n_overlap = int(overlap.sum())
    n_dropped = 0
    if n_overlap:
        first = int(np.argmax(overlap)) + 1
        what = f"{n_overlap} non-member record(s) also appear among the members (first: {nonmembers.path} row {first})"
        if config.overlap == "refuse":
            raise InputError(
                f"{what}; an overlapping record is not a non-member. Pass --drop-overlap to drop them from the "
                "non-members, or --allow-overlap to audit as is"
            )
        if config.overlap == "drop":
            nonmembers = nonmembers.subset(~overlap)
            n_dropped = n_overlap
            warnings.append(f"{what}; dropped from the non-members (--drop-overlap)")
            if nonmembers.n < MIN_RECORDS_PER_SIDE:
                raise InputError(f"{nonmembers.path}: fewer than {MIN_RECORDS_PER_SIDE} non-members left after dropping the overlap")
        else:
            warnings.append(f"{what}; kept (--allow-overlap): attack metrics are biased towards 'no leakage'")
    return members, nonmembers, n_overlap, n_dropped


def _evidence_warnings(*, n_nonmembers: int, warnings: list[str]) -> None:
    for alpha in (0.001, 0.01):
        if n_nonmembers * alpha < 1:
            warnings.append(
                f"{n_nonmembers} non-members cannot resolve an FPR of {alpha:g} (needs at least {int(round(1 / alpha))}): "
                f"TPR at {alpha:.1%} FPR is not estimable"
            )
            return
        if n_nonmembers * alpha < 10:
            warnings.append(
                f"{n_nonmembers} non-members give fewer than 10 expected false positives at FPR {alpha:g}: "
                f"TPR at {alpha:.1%} FPR is low-evidence"
            )
            return


# --- steps 2 and 3 ------------------------------------------------------------------------------------


def _check_model_accepts(*, model: ModelAdapter, audit_set: AuditSet) -> None:
    """Shape (by the adapter, with a trial run on two records) and integer-valued inputs for integer models."""
    model.check_input(audit_set.features[:2], data_name=str(audit_set.path))
    if np.issubdtype(model.input_dtype, np.integer):
        flat = audit_set.features.reshape(audit_set.n, -1)
        fractional = np.nonzero(flat != np.round(flat))
        if fractional[0].size:
            row, column = int(fractional[0][0]), int(fractional[1][0])
            name = audit_set.feature_columns[column] if len(audit_set.feature_columns) > column else "input"
            raise InputError(
                f"{audit_set.path}: column '{name}', row {row + 1} (line {row + 2}): the model takes integer "
                f"inputs ({model.input_dtype}) but the value is not an integer"
            )


AUTO_BATCH_BYTES = 32 * 2**20


def resolve_batch_size(*, requested: int | None, record_shape: tuple[int, ...], itemsize: int) -> int:
    """The user's batch size, or as many records as fit in about 32 MiB of model input (256..65,536).

    Few large batches keep onnxruntime's per-call and threading overhead small on tabular data; the
    byte cap keeps image batches from taking gigabytes.
    """
    if requested is not None:
        return requested
    record_bytes = max(1, int(np.prod(record_shape, dtype=np.int64)) * itemsize)
    return int(np.clip(AUTO_BATCH_BYTES // record_bytes, 256, 65_536))


def _query(*, model: ModelAdapter, audit_set: AuditSet, batch_size: int) -> np.ndarray:
    return model.predict_raw(audit_set.features, batch_size=batch_size)


def _class_counts(labels: np.ndarray, class_labels: list | None) -> dict[str, int]:
    counts = Counter(int(label) for label in labels)
    name = (lambda index: str(class_labels[index])) if class_labels else str
    return {name(index): counts[index] for index in sorted(counts)}


# --- steps 4 and 6 ------------------------------------------------------------------------------------


def _capabilities(config: RunConfig) -> frozenset[str]:
    offered = {"labels", "queries"}
    if config.exposure == "scores":
        offered.add("scores")
    return frozenset(offered)


def _selected_attacks(config: RunConfig) -> list[str]:
    available = registered_attacks()
    if config.attacks is None:
        return list(available)
    unknown = [name for name in config.attacks if name not in available]
    if unknown:
        raise InputError(f"--attacks: unknown attack '{unknown[0]}'; available: {', '.join(available)}")
    return list(config.attacks)


def _defend(
    *, config, variants, model, output_kind, batch_size, members, nonmembers, member_y, nonmember_y, member_signals,
    nonmember_signals, population_set, population_y, recipe, shadow_info, original_attacks, sink,
):
    """Step 7 (optional): set up the retrained variants from the same architecture as step 5 and compare."""
    from mia_audit.defenses.step import DefenseSetup, DefenseStepResult, run_defense_step

    if not variants:
        return DefenseStepResult(status="skipped", detail="no defenses requested (--defenses)")
    if config.exposure != "scores":
        return DefenseStepResult(status="skipped", detail="defense comparison needs score exposure (--exposure scores)")
    from mia_audit.defenses.trainer import TrainRecipe
    from mia_audit.shadows.clone import ShadowUnavailable, make_shadow_source
    from mia_audit.shadows.recipe import ShadowRecipe
    from mia_audit.shadows.torch_trainer import CalibrationTarget

    shadow_recipe = recipe or ShadowRecipe()
    graph, unavailable = None, None
    try:
        source = make_shadow_source(
            model=model, model_path=config.model_path, recipe=shadow_recipe, output_kind=output_kind,
            x_check=members.features, n_classes=model.n_classes, pool_x=members.features,
            calibration=CalibrationTarget(member_accuracy=member_signals.accuracy,
                                          median_member_loss=float(np.median(member_signals.loss))),
        )
        graph = getattr(source, "graph", None)
        if graph is None:
            unavailable = "the shadow recipe names a scikit-learn estimator, which the torch defenses cannot train"
    except ShadowUnavailable as reason:
        unavailable = str(reason)
    training = shadow_recipe.training
    if shadow_info is not None and shadow_info.epochs:
        epochs = int(shadow_info.epochs)  # the epochs that matched the target's fit in step 5
    else:
        epochs = int(training.epochs) if training.epochs != "auto" else 100
    validation_x = validation_y = None
    if config.defense.validation_path is not None:
        validation = read_manifest(path=config.defense.validation_path, options=config.manifest)
        check_same_layout(members=members, nonmembers=validation)
        validation_x = validation.features
        validation_y = encode_labels(audit_set=validation, label_column=config.manifest.label_column,
                                     n_classes=model.n_classes, class_labels=model.class_labels)

    def original_probabilities(x: np.ndarray) -> np.ndarray:
        outputs, kind = normalize_outputs(raw=model.predict_raw(x, batch_size=batch_size), output_kind=output_kind,
                                          native_kind=model.native_output_kind, source=str(config.model_path))
        return np.exp(log_probabilities(outputs=outputs, output_kind=kind))

    setup = DefenseSetup(
        variants=variants,
        member_x=members.features,
        member_y=member_y,
        nonmember_x=nonmembers.features,
        nonmember_y=nonmember_y,
        n_classes=model.n_classes,
        original_probabilities=original_probabilities,
        original_member_probs=member_signals.probabilities,
        original_nonmember_probs=nonmember_signals.probabilities,
        graph=graph,
        graph_unavailable=unavailable,
        recipe=TrainRecipe(epochs=epochs, batch_size=training.batch_size, learning_rate=training.lr,
                           optimizer="sgd" if training.optimizer == "sgd" else "adam",
                           weight_decay=training.weight_decay),
        seed=config.seed,
        n_bootstrap=config.n_bootstrap,
        delta=config.delta,
        n_shadow_models=config.defense.n_shadow_models,
        label_only_options=config.label_only.model_dump(),
        population_x=None if population_set is None else population_set.features,
        population_y=population_y,
        validation_x=validation_x,
        validation_y=validation_y,
        export_dir=config.defense.export_dir,
    )
    return run_defense_step(setup=setup, original_attacks=original_attacks, sink=sink)


def run_audit(*, config: RunConfig, progress: ProgressSink | None = None) -> AuditRun:
    """Walk the eight steps on the user's model and manifests and return the result document."""
    sink = progress or _Silent()
    warnings: list[str] = []
    steps = _Steps()
    attack_names = _selected_attacks(config)
    variants = parse_defenses(config.defense.spec) if config.defense.spec else []  # a bad spec stops before any work

    # 1. Audit sets
    sink.begin("Reading manifests")
    members, nonmembers, n_overlap, n_dropped = load_audit_sets(config=config, warnings=warnings)
    _evidence_warnings(n_nonmembers=nonmembers.n, warnings=warnings)
    validate_slicing(spec=config.slicing, members=members, nonmembers=nonmembers)
    if config.manifest.group_column is not None:
        check_subjects(members=members, nonmembers=nonmembers, group_column=config.manifest.group_column)
    population_set: AuditSet | None = None
    if config.shadow.population_path is not None:
        population_set = read_manifest(path=config.shadow.population_path, options=config.manifest)
        check_same_layout(members=members, nonmembers=population_set)
    recipe, recipe_sha = load_recipe(config.shadow.recipe_path) if config.shadow.recipe_path else (None, None)
    sink.end()

    # 2. Model
    sink.begin("Loading model")
    model = load_model(path=config.model_path, model_format=config.model_format)
    model_sha = sha256_of(config.model_path)
    for audit_set in (members, nonmembers) + ((population_set,) if population_set is not None else ()):
        _check_model_accepts(model=model, audit_set=audit_set)
    class_labels = model.class_labels
    member_y = encode_labels(
        audit_set=members, label_column=config.manifest.label_column, n_classes=model.n_classes, class_labels=class_labels
    )
    nonmember_y = encode_labels(
        audit_set=nonmembers,
        label_column=config.manifest.label_column,
        n_classes=model.n_classes,
        class_labels=class_labels,
    )
    population_y = (
        None
        if population_set is None
        else encode_labels(
            audit_set=population_set,
            label_column=config.manifest.label_column,
            n_classes=model.n_classes,
            class_labels=class_labels,
        )
    )
    sink.end()

    # 3. Query
    batch_size = resolve_batch_size(
        requested=config.batch_size,
        record_shape=tuple(members.features.shape[1:]),
        itemsize=np.dtype(model.input_dtype).itemsize,
    )
    sink.begin("Querying the model", total=members.n + nonmembers.n)
    raw_members = _query(model=model, audit_set=members, batch_size=batch_size)
    sink.advance(members.n)
    raw_nonmembers = _query(model=model, audit_set=nonmembers, batch_size=batch_size)
    sink.advance(nonmembers.n)
    sink.end()
    both, output_kind = normalize_outputs(
        raw=np.concatenate([raw_members, raw_nonmembers]),
        output_kind=config.output_kind,
        native_kind=model.native_output_kind,
        source=str(config.model_path),
    )
    member_signals = compute_signals(outputs=both[: members.n], output_kind=output_kind, labels=member_y)
    nonmember_signals = compute_signals(outputs=both[members.n :], output_kind=output_kind, labels=nonmember_y)
    kind_source = (
        "user" if config.output_kind != "auto" else "declared_by_model" if model.native_output_kind else "detected"
    )
    utility = Utility(
        member_accuracy=member_signals.accuracy,
        nonmember_accuracy=nonmember_signals.accuracy,
        generalization_gap=member_signals.accuracy - nonmember_signals.accuracy,
    )
    steps.done(
        1,
        f"{members.n} members, {nonmembers.n} non-members; {n_overlap} overlapping record(s)"
        + (f", {n_dropped} dropped" if n_dropped else "")
        + f"; {len(set(member_y.tolist()) | set(nonmember_y.tolist()))} classes present",
    )
    steps.done(
        2,
        f"{model.format_name} model, {model.n_classes} classes, {output_kind} ({kind_source}); "
        f"member accuracy {utility.member_accuracy:.3f}, non-member accuracy {utility.nonmember_accuracy:.3f}, "
        f"gap {utility.generalization_gap:+.3f}",
    )
    steps.done(3, f"{members.n + nonmembers.n} records queried in batches of {batch_size}; signals in float64")

    # 4. Metric attacks
    capabilities = _capabilities(config)

    def predict_labels(x: np.ndarray) -> np.ndarray:
        outputs, _ = normalize_outputs(
            raw=model.predict_raw(x, batch_size=batch_size),
            output_kind=output_kind,
            native_kind=model.native_output_kind,
            source=str(config.model_path),
        )
        return np.argmax(outputs, axis=1)

    context = AttackContext(
        members=member_signals,
        nonmembers=nonmember_signals,
        member_features=members.features,
        nonmember_features=nonmembers.features,
        capabilities=capabilities,
        seed=config.seed,
        predict_labels=predict_labels,
        options=config.label_only.model_dump(),
    )
    shadow_names = [name for name in attack_names if is_shadow_attack(name)]
    metric_names = [name for name in attack_names if not is_shadow_attack(name)]
    scores, not_run = _run_attacks(names=metric_names, context=context, sink=sink)
    ran = ", ".join(scores) or "none"
    steps.done(4, f"ran {ran}" + (f"; not run: {'; '.join(not_run)}" if not_run else ""))

    # 5. Shadow / reference attacks
    population = None
    if population_set is not None and population_y is not None and shadow_names and config.shadow.n_models:
        sink.begin("Querying the model on the population", total=population_set.n)
        raw_population, _ = normalize_outputs(
            raw=_query(model=model, audit_set=population_set, batch_size=batch_size),
            output_kind=output_kind,
            native_kind=model.native_output_kind,
            source=str(config.model_path),
        )
        sink.end()
        population = Population(
            audit_set=population_set,
            labels=population_y,
            signals=compute_signals(outputs=raw_population, output_kind=output_kind, labels=population_y),
        )
    shadow_step = run_shadow_step(
        config=config,
        names=shadow_names,
        model=model,
        model_sha256=model_sha,
        output_kind=output_kind,
        members=members,
        nonmembers=nonmembers,
        member_y=member_y,
        nonmember_y=nonmember_y,
        member_signals=member_signals,
        nonmember_signals=nonmember_signals,
        population=population,
        recipe=recipe,
        recipe_sha256=recipe_sha,
        context=context,
        sink=sink,
    )
    scores.update(shadow_step.scores)
    (steps.done if shadow_step.status == "done" else steps.skipped)(5, shadow_step.detail)

    # 6. Measure
    results = []
    sink.begin("Measuring (bootstrap CIs)", total=len(scores))
    for index, (name, attack_scores) in enumerate(scores.items()):
        results.append(
            attack_result(
                attack=registered_attacks()[name],
                scores=attack_scores,
                seed=config.seed + 7919 * (index + 1),
                n_bootstrap=config.n_bootstrap,
                delta=config.delta,
            )
        )
        sink.advance()
    sink.end()
    worst = select_worst_case(attacks=results)
    slice_evaluation, subjects = _measure_groups(
        config=config,
        members=members,
        nonmembers=nonmembers,
        member_signals=member_signals,
        nonmember_signals=nonmember_signals,
        class_labels=class_labels,
        scores=scores,
        results=results,
        sink=sink,
    )
    steps.done(
        6,
        f"AUC, TPR at 0.1%/1%/10% FPR, advantage, cross-fitted balanced accuracy and ε lower bound for "
        f"{len(results)} attacks, {config.n_bootstrap} stratified bootstrap resamples; "
        + _groups_detail(
            slice_evaluation=slice_evaluation,
            subjects=subjects,
            n_attacks=len(scores),
            fpr=config.slicing.subpopulation_fpr,
        ),
    )
    defense_step = _defend(
        config=config, variants=variants, model=model, output_kind=output_kind, batch_size=batch_size,
        members=members, nonmembers=nonmembers, member_y=member_y, nonmember_y=nonmember_y,
        member_signals=member_signals, nonmember_signals=nonmember_signals, population_set=population_set,
        population_y=population_y, recipe=recipe, shadow_info=shadow_step.info, original_attacks=results, sink=sink,
    )
    (steps.done if defense_step.status == "done" else steps.skipped)(7, defense_step.detail)
    steps.done(8, _documents_detail(config))

    result = AuditResult(
        tool_version=__version__,
        seed=config.seed,
        created_utc=utc_timestamp(),
        model=ModelInfo(
            path=str(config.model_path),
            sha256=model_sha,
            format=model.format_name,
            n_classes=model.n_classes,
            output_kind=output_kind,
            output_kind_source=kind_source,
            input_shape=None if model.input_shape is None else list(model.input_shape),
            runtime={key: str(value) for key, value in model.runtime_info().items()},
        ),
        data=DataInfo(
            members=FileRef(path=str(members.path), sha256=members.sha256, n=members.n),
            nonmembers=FileRef(path=str(nonmembers.path), sha256=nonmembers.sha256, n=nonmembers.n),
            n_overlap=n_overlap,
            n_dropped_overlap=n_dropped,
            label_column=config.manifest.label_column,
            feature_columns=members.feature_columns,
            input_column=config.manifest.input_column,
            meta_columns=list(config.manifest.meta_columns),
            member_class_counts=_class_counts(member_y, class_labels),
            nonmember_class_counts=_class_counts(nonmember_y, class_labels),
            population=(
                None
                if population_set is None
                else FileRef(path=str(population_set.path), sha256=population_set.sha256, n=population_set.n)
            ),
        ),
        utility=utility,
        attacks=results,
        worst_case=worst,
        workflow=steps.ordered(),
        warnings=warnings,
        config=config.model_dump(mode="json"),
        environment=describe_environment(),
        distributions=signal_distributions(members=member_signals, nonmembers=nonmember_signals),
        slices=slice_evaluation.slices if slice_evaluation else [],
        slice_summary=slice_evaluation.summary if slice_evaluation else None,
        subjects=subjects,
        shadow_models=shadow_step.info,
        defenses=defense_step.comparison,
    )
    return AuditRun(
        result=result,
        record_scores=scores,
        member_rows=members.rows(),
        nonmember_rows=nonmembers.rows(),
        member_ids=members.ids,
        nonmember_ids=nonmembers.ids,
    )


def _documents_detail(config: RunConfig) -> str:
    names = {"json": "results.json", "html": "report.html", "pdf": "report.pdf (PDF/A-3u, results.json attached)"}
    written = ", ".join(names[kind] for kind in config.formats)
    detail = f"{written}; no raw records, record ids or per-record scores in any of them"
    if config.export_record_scores:
        detail += "; per-record scores exported on request to a separate RESTRICTED file"
    return detail


def _measure_groups(
    *,
    config: RunConfig,
    members: AuditSet,
    nonmembers: AuditSet,
    member_signals: Signals,
    nonmember_signals: Signals,
    class_labels: list | None,
    scores: dict[str, AttackScores],
    results: list,
    sink: ProgressSink,
) -> tuple[SliceEvaluation | None, SubjectAudit | None]:
    """Step 6 on subpopulations: slices × attacks (mia_audit.slices.evaluate) and data subjects (mia_audit.slices.subjects)."""
    evaluation = None
    if config.slicing.enabled and scores:
        sink.begin("Measuring slices")
        slices = build_slices(
            spec=config.slicing,
            members=members,
            nonmembers=nonmembers,
            member_signals=member_signals,
            nonmember_signals=nonmember_signals,
            class_labels=class_labels,
        )
        evaluation = evaluate_slices(
            spec=config.slicing,
            slices=slices,
            record_scores=scores,
            member_correct=member_signals.correct,
            nonmember_correct=nonmember_signals.correct,
            global_results=results,
            seed=config.seed,
        )
        sink.end()
    subjects = None
    if config.manifest.group_column is not None and scores:
        sink.begin("Measuring data subjects (bootstrap CIs)")
        subjects = audit_subjects(
            members=members,
            nonmembers=nonmembers,
            group_column=config.manifest.group_column,
            record_scores=scores,
            seed=config.seed,
            n_bootstrap=config.n_bootstrap,
            delta=config.delta,
        )
        sink.end()
    return evaluation, subjects


def _groups_detail(
    *, slice_evaluation: SliceEvaluation | None, subjects: SubjectAudit | None, n_attacks: int, fpr: float
) -> str:
    if slice_evaluation is None:
        text = "slices not evaluated (" + ("no attack ran)" if n_attacks == 0 else "--no-slices)")
    else:
        summary = slice_evaluation.summary
        text = (
            f"{summary.n_slices} slices × {n_attacks} attacks: {summary.n_tested} pairs tested (DeLong CIs, one-sided "
            f"Mann–Whitney, Benjamini–Hochberg at FDR {summary.fdr:g}), {summary.n_significant} significant, "
            f"{summary.n_insufficient} slices with fewer than {summary.min_records} members or non-members; per-slice "
            f"threshold calibration raises TPR@{fpr:.0%}FPR in {summary.n_subpopulation_gains}"
        )
    if subjects is not None:
        text += (
            f"; subject-level audit over {subjects.n_member_subjects} member and {subjects.n_nonmember_subjects} "
            f"non-member subjects ('{subjects.group_column}', mean and max aggregation)"
        )
    return text


def _run_attacks(
    *, names: list[str], context: AttackContext, sink: ProgressSink
) -> tuple[dict[str, AttackScores], list[str]]:
    registry = registered_attacks()
    scores: dict[str, AttackScores] = {}
    not_run: list[str] = []
    sink.begin("Running attacks", total=len(names))
    for name in names:
        attack_cls = registry[name]
        missing = attack_cls.missing(context.capabilities)
        if missing:
            not_run.append(f"{name} (needs {', '.join(sorted(missing))})")
        else:
            scores[name] = attack_cls().score(context)
        sink.advance()
    sink.end()
    return scores, not_run


__all__ = ["AuditRun", "ProgressSink", "STEP_NAMES", "Signals", "run_audit", "utc_timestamp"]
