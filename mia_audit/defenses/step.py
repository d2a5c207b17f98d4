"""Workflow step 7: retrain the architecture with each chosen defense, apply output defenses, re-audit every
variant with the same evaluation core as steps 3–6 (adaptive attacker: shadows trained with the same
defense), and compare privacy and utility.

What is specific to step 7 lives here: retraining, wrapping outputs, the adaptive shadows and the
comparison. Attacks are run and measured by `mia_audit.evaluation.core.evaluate`, with the attacks the
user selected (`--attacks`). The data protocol is in `mia_audit.defenses.protocol`.

Randomness: the retrained baseline and every variant start from the same weights and batch order
("retrain" streams), adaptive shadow k of every variant uses the same streams ("shadow", k), and every
row is evaluated with the same attack and bootstrap streams: rows differ by their defense, not by luck.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.data.audit_data import AuditData
from mia_audit.data.signals import compute_signals
from mia_audit.defenses.base import DefenseVariant, TrainingPlan
from mia_audit.defenses.comparison import applied, finish_rows, make_row, recommendation_text
from mia_audit.defenses.graph_module import DeployedVariant, GraphClassifier, export_onnx, predict_logits
from mia_audit.defenses.protocol import DefenseSplit, protocol_text, split_data
from mia_audit.defenses.trainer import TrainRecipe, make_training_data, train_with_plan
from mia_audit.errors import InputError
from mia_audit.evaluation.core import EvaluationOptions, TargetOutputs, evaluate
from mia_audit.results import AttackResult, DefenseComparison, DefenseRow
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.evidence import ReferenceOutputs
from mia_audit.shadows.keep import keep_mask
from mia_audit.shadows.torch_trainer import torch_threads

__all__ = ["DefenseSetup", "DefenseStepResult", "run_defense_step"]

Probabilities = Callable[[np.ndarray], np.ndarray]


@dataclass
class DefenseStepResult:
    status: str
    detail: str
    comparison: DefenseComparison | None = None
    exported: list[Path] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class DefenseSetup:
    """Everything step 7 needs from steps 1–6."""

    variants: list[DefenseVariant]
    data: AuditData
    original: Probabilities  # the deployed model's probabilities
    graph: Any | None  # TrainableGraph of the architecture, None when it cannot be retrained
    graph_unavailable: str | None
    recipe: TrainRecipe
    attacks: Sequence[str]
    options: EvaluationOptions
    n_shadow_models: int
    seeds: SeedStreams
    export_dir: Path | None = None


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _threads(setup: DefenseSetup) -> int | None:
    """One torch thread for small models, as for the shadows of step 5 (see SINGLE_THREAD_FLOPS): on a busy
    machine the threads' synchronisation made each training step of the sample's MLP many times slower."""
    import torch

    from mia_audit.shadows.torch_trainer import SINGLE_THREAD_FLOPS, forward_flops

    record = torch.as_tensor(np.asarray(setup.data.members.features[:1])).to(setup.graph.input_dtype)
    flops = 3.0 * forward_flops(graph=setup.graph, record=record) * setup.recipe.batch_size
    return 1 if flops < SINGLE_THREAD_FLOPS else None


def _train(setup: DefenseSetup, split: DefenseSplit, plan: TrainingPlan, *, x, y, seeds: SeedStreams):
    holdout = split.holdout
    data = make_training_data(
        x=x,
        y=y,
        n_classes=setup.data.n_classes,
        validation=None if holdout is None else (holdout.features, holdout.labels),
        reference=None if holdout is None else holdout.features,
    )
    with torch_threads(_threads(setup)):
        return train_with_plan(
            make_module=lambda: GraphClassifier(setup.graph), data=data, plan=plan, recipe=setup.recipe, seeds=seeds
        )


def _shadow_probabilities(
    setup: DefenseSetup, split: DefenseSplit, plan: TrainingPlan, keep: np.ndarray, progress, label: str
) -> np.ndarray:
    """(N, K, C) probabilities of K shadows trained with `plan` on their halves of the attacked pool."""
    pool_x, pool_y = split.attacked.pool_features, split.attacked.pool_labels
    outputs = []
    progress.begin(f"Shadows for {label}", total=keep.shape[1])
    for j in range(keep.shape[1]):
        module, _ = _train(setup, split, plan, x=pool_x[keep[:, j]], y=pool_y[keep[:, j]],
                           seeds=setup.seeds.child("shadow", j))
        outputs.append(_softmax(predict_logits(module, pool_x)))
        progress.advance()
    progress.end()
    return np.stack(outputs, axis=1)


def _audit(
    *, setup: DefenseSetup, split: DefenseSplit, model: Probabilities, shadow_probs: np.ndarray | None,
    keep: np.ndarray | None,
) -> list[AttackResult]:
    """Steps 3–6 on one variant: members (its training set) vs attack-evaluation non-members."""
    data = split.attacked
    with_population = shadow_probs is not None and data.population is not None

    def signals(side):
        return compute_signals(outputs=model(side.features), output_kind="probabilities", labels=side.labels)

    outputs = TargetOutputs(
        members=signals(data.members),
        nonmembers=signals(data.nonmembers),
        population=signals(data.population) if with_population else None,
        capabilities=frozenset({"labels", "scores", "queries"}),
        predict_labels=lambda x: np.argmax(model(x), axis=1),
    )
    references = None
    if shadow_probs is not None and keep is not None:
        references = ReferenceOutputs.from_outputs(
            keep=keep, outputs=shadow_probs, output_kind="probabilities", labels=data.pool_labels, check=False
        )
    evaluation = evaluate(
        outputs=outputs, data=data, attacks=setup.attacks, seeds=setup.seeds.child("evaluate"),
        options=setup.options, shadows=references,
    )
    return evaluation.results


def _accuracy(model: Probabilities, side) -> float:
    return float(np.mean(np.argmax(model(side.features), axis=1) == side.labels))


def run_defense_step(*, setup: DefenseSetup, original_attacks: list[AttackResult], progress: Any) -> DefenseStepResult:
    """Retrain, transform, re-attack and compare every requested variant."""
    plans = [variant.plan() for variant in setup.variants]
    needs_holdout = any(plan.needs_validation or plan.needs_reference for plan in plans)
    split = split_data(data=setup.data, needs_holdout=needs_holdout, rng=setup.seeds.numpy("split"))
    trainable = setup.graph is not None
    k = setup.n_shadow_models
    keep = keep_mask(n_records=split.attacked.n_pool, n_shadows=k, rng=setup.seeds.numpy("keep-mask")) if k else None
    members = split.attacked.members

    rows: list[DefenseRow] = [
        make_row(label="original model (as deployed)", role="original", variant=None, attacks=original_attacks,
                 test_acc=_accuracy(setup.original, split.test), member_acc=_accuracy(setup.original, members))
    ]
    notes: list[str] = []
    baseline_module = baseline_shadows = None
    if trainable:
        progress.begin("Retraining the baseline (no defense)")
        baseline_module, report = _train(setup, split, TrainingPlan(), x=members.features, y=members.labels,
                                         seeds=setup.seeds.child("retrain"))
        progress.end()
        if keep is not None:
            baseline_shadows = _shadow_probabilities(setup, split, TrainingPlan(), keep, progress, "the retrained baseline")
        model = lambda x: _softmax(predict_logits(baseline_module, x))  # noqa: E731
        attacks = _audit(setup=setup, split=split, model=model, shadow_probs=baseline_shadows, keep=keep)
        rows.append(make_row(
            label="retrained baseline (no defense)", role="retrained_baseline", variant=None, attacks=attacks,
            test_acc=_accuracy(model, split.test), member_acc=_accuracy(model, members),
            training={"epochs": report.epochs_run}, n_shadows=k,
        ))
    else:
        notes.append(f"the architecture cannot be retrained ({setup.graph_unavailable}); training-time defenses are skipped")

    exported: list[Path] = []
    for variant, plan in zip(setup.variants, plans):
        if variant.training and not trainable:
            rows.append(DefenseRow(label=variant.label, role="variant", defenses=applied(variant), status="skipped",
                                   reason=f"needs retraining, which is not possible here: {setup.graph_unavailable}"))
            continue
        try:
            row, module = _variant_row(setup=setup, split=split, variant=variant, plan=plan, keep=keep,
                                       baseline_shadows=baseline_shadows, progress=progress)
        except InputError as error:  # a combination the trainer refuses (e.g. dp_sgd + mixup)
            rows.append(DefenseRow(label=variant.label, role="variant", defenses=applied(variant), status="skipped",
                                   reason=str(error).replace("--defenses: ", "")))
            continue
        rows.append(row)
        if setup.export_dir is not None and module is not None:
            exported.append(_export(setup=setup, variant=variant, module=module, index=len(exported) + 1))

    finish_rows(rows)
    comparison = DefenseComparison(
        protocol=protocol_text(split=split, n_shadows=k),
        n_train=members.n,
        n_test=split.test.n,
        n_attack_nonmembers=split.attacked.nonmembers.n,
        n_holdout=0 if split.holdout is None else split.holdout.n,
        holdout_source=split.holdout_source,
        recipe=dataclasses.asdict(setup.recipe),
        rows=rows,
        pareto_criteria="higher test accuracy and lower worst-case AUC (retrained variants and output defenses; "
        "the original model is shown for reference)",
        recommendation=recommendation_text(rows),
        notes=notes,
    )
    done = [row for row in rows if row.role == "variant" and row.status == "done"]
    detail = (
        f"{len(done)} of {len(setup.variants)} defense variants re-audited against a retrained baseline "
        f"({members.n} training records, {split.test.n} test and {split.attacked.nonmembers.n} attack-evaluation "
        f"non-members; {k} adaptive shadow models per training recipe)"
    )
    return DefenseStepResult(status="done", detail=detail, comparison=comparison, exported=exported)


def _variant_row(*, setup, split, variant, plan, keep, baseline_shadows, progress):
    k = setup.n_shadow_models
    members = split.attacked.members
    training: dict = {}
    dp = None
    module = None
    if variant.training:
        progress.begin(f"Retraining with {variant.label}")
        module, report = _train(setup, split, plan, x=members.features, y=members.labels,
                                seeds=setup.seeds.child("retrain"))
        progress.end()
        training = {"epochs": report.epochs_run, "notes": report.notes}
        if report.dropout_sites:
            training["dropout_sites"] = report.dropout_sites
        if report.dp_epsilon is not None:
            dp = (report.dp_epsilon, plan.dp_delta)
            training["dp_noise_multiplier"] = report.dp_noise_multiplier
            training["dp_accountant"] = report.dp_accountant
        if report.pruned_fraction:
            training["pruned_fraction"] = report.pruned_fraction
        shadows = _shadow_probabilities(setup, split, plan, keep, progress, variant.label) if keep is not None else None
        base = lambda x: _softmax(predict_logits(module, x))  # noqa: E731
    else:
        shadows = baseline_shadows
        base = setup.original  # output defenses wrap the deployed model itself
    model = lambda x: variant.apply_outputs(base(x))  # noqa: E731
    if shadows is not None:
        shadows = np.stack([variant.apply_outputs(shadows[:, j, :]) for j in range(shadows.shape[1])], axis=1)
    attacks = _audit(setup=setup, split=split, model=model, shadow_probs=shadows, keep=keep)
    row = make_row(
        label=variant.label, role="variant", variant=variant, attacks=attacks,
        test_acc=_accuracy(model, split.test), member_acc=_accuracy(model, members),
        training=training, dp=dp, n_shadows=k if shadows is not None else 0,
    )
    return row, module


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label)[:60].strip("_")


def _export(*, setup: DefenseSetup, variant: DefenseVariant, module, index: int) -> Path:
    path = setup.export_dir / f"defended_{index:02d}_{_slug(variant.label)}.onnx"
    setup.export_dir.mkdir(parents=True, exist_ok=True)
    steps = [(d.name, float(next(iter(d.parameters.model_dump().values()), 0))) for d in variant.output]
    export_onnx(DeployedVariant(module, output_steps=steps), example=setup.data.members.features, path=path)
    return path
