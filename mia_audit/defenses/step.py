"""Workflow step 7: retrain the architecture with each chosen defense, apply output defenses, re-audit every
variant with steps 3–6 (adaptive attacker: shadows trained with the same defense), compare privacy and utility.

Data protocol (written into the report):
- members are the training set of every retrained variant (the same records the target was trained on);
- non-members are split, seeded and stratified by label, into a utility test set and an attack-evaluation set
  (and, when a defense needs held-out data and neither --validation nor --population is given, a third
  hold-out part for MMD's validation batches, early stopping, adversarial regularisation's and distillation's
  reference data). With --validation / --population, those files supply the hold-out instead;
- a retrained baseline (same recipe, no defense) makes every comparison like for like; the original model's
  own audit stays in the table as the first row;
- each variant is attacked on members vs attack-evaluation non-members with the metric and label-only attacks
  and, with --defense-shadow-models K > 0, LiRA, RMIA and the shadow classifiers on K shadows trained on
  random halves of (members ∪ attack-evaluation non-members ∪ population) with the same defense.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.attacks import AttackContext, AttackScores, registered_attacks
from mia_audit.defenses.base import DefenseVariant, TrainingPlan
from mia_audit.defenses.choice import ACCEPTABLE_UTILITY_DROP, best_tradeoff
from mia_audit.defenses.graph_module import DeployedVariant, GraphClassifier, export_onnx, predict_logits
from mia_audit.defenses.trainer import TrainRecipe, make_training_data, train_with_plan
from mia_audit.errors import InputError
from mia_audit.evaluation.measure import attack_result, select_worst_case
from mia_audit.results import AttackResult, DefenseApplied, DefenseComparison, DefenseRow
from mia_audit.shadows.torch_trainer import torch_threads
from mia_audit.data.signals import compute_signals

__all__ = ["DefenseStepResult", "DefenseSetup", "run_defense_step", "split_nonmembers", "pareto_front"]


@dataclass
class DefenseStepResult:
    status: str
    detail: str
    comparison: DefenseComparison | None = None
    exported: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class DefenseSetup:
    """Everything step 7 needs from steps 1–6."""

    variants: list[DefenseVariant]
    member_x: np.ndarray
    member_y: np.ndarray
    nonmember_x: np.ndarray
    nonmember_y: np.ndarray
    n_classes: int
    original_probabilities: Any  # callable x -> (n, k) probabilities of the original model
    original_member_probs: np.ndarray
    original_nonmember_probs: np.ndarray
    graph: Any | None  # TrainableGraph of the architecture, None when it cannot be retrained
    graph_unavailable: str | None
    recipe: TrainRecipe
    seed: int
    n_bootstrap: int
    delta: float
    n_shadow_models: int
    label_only_options: dict
    population_x: np.ndarray | None = None
    population_y: np.ndarray | None = None
    validation_x: np.ndarray | None = None
    validation_y: np.ndarray | None = None
    export_dir: Path | None = None


def split_nonmembers(*, labels: np.ndarray, seed: int, parts: int) -> list[np.ndarray]:
    """Seeded split of non-member indices into `parts` near-equal groups, stratified by label."""
    rng = np.random.default_rng([seed, 0x7E57])
    groups: list[list[int]] = [[] for _ in range(parts)]
    offset = 0
    for cls in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == cls))
        for position, record in enumerate(index):
            groups[(position + offset) % parts].append(int(record))
        offset += len(index)
    return [np.sort(np.array(group, dtype=np.int64)) for group in groups]


def pareto_front(*, accuracy: list[float], auc: list[float]) -> list[bool]:
    """True where no other point has accuracy ≥ and AUC ≤ with one strictly better."""
    flags = []
    for i, (acc_i, auc_i) in enumerate(zip(accuracy, auc)):
        dominated = any(
            acc_j >= acc_i and auc_j <= auc_i and (acc_j > acc_i or auc_j < auc_i)
            for j, (acc_j, auc_j) in enumerate(zip(accuracy, auc))
            if j != i
        )
        flags.append(not dominated)
    return flags


def _log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _applied(variant: DefenseVariant) -> list[DefenseApplied]:
    return [
        DefenseApplied(name=d.name, title=d.title, kind=d.kind, parameters=d.parameters.model_dump(), reference=d.reference)
        for d in variant.defenses
    ]


@dataclass
class _Sets:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    attack_x: np.ndarray
    attack_y: np.ndarray
    holdout_x: np.ndarray | None
    holdout_y: np.ndarray | None
    holdout_source: str | None


def _protocol(setup: DefenseSetup, needs_holdout: bool) -> _Sets:
    external = None
    if setup.validation_x is not None:
        external = (setup.validation_x, setup.validation_y, "--validation")
    elif setup.population_x is not None:
        external = (setup.population_x, setup.population_y, "--population")
    three = needs_holdout and external is None
    parts = split_nonmembers(labels=setup.nonmember_y, seed=setup.seed, parts=3 if three else 2)
    test, attack = parts[0], parts[1]
    holdout_x = holdout_y = source = None
    if three:
        holdout_x, holdout_y, source = setup.nonmember_x[parts[2]], setup.nonmember_y[parts[2]], "a third of the non-members"
    elif external is not None:
        holdout_x, holdout_y, source = external
    return _Sets(
        train_x=setup.member_x,
        train_y=setup.member_y,
        test_x=setup.nonmember_x[test],
        test_y=setup.nonmember_y[test],
        attack_x=setup.nonmember_x[attack],
        attack_y=setup.nonmember_y[attack],
        holdout_x=holdout_x,
        holdout_y=holdout_y,
        holdout_source=source,
    )


class _Model:
    """A variant as the attacker sees it: probabilities after the output defenses."""

    def __init__(self, *, probabilities, variant: DefenseVariant | None) -> None:
        self._probabilities = probabilities
        self._variant = variant

    def __call__(self, x: np.ndarray) -> np.ndarray:
        p = self._probabilities(x)
        return self._variant.apply_outputs(p) if self._variant is not None else p


def _train(setup: DefenseSetup, sets: _Sets, plan: TrainingPlan, *, x, y, seed: int):
    data = make_training_data(
        x=x,
        y=y,
        n_classes=setup.n_classes,
        validation=None if sets.holdout_x is None else (sets.holdout_x, sets.holdout_y),
        reference=sets.holdout_x,
    )
    with torch_threads(_threads(setup)):
        return train_with_plan(
            make_module=lambda: GraphClassifier(setup.graph, seed=seed), data=data, plan=plan, recipe=setup.recipe,
            seed=seed,
        )


def _threads(setup: DefenseSetup) -> int | None:
    """One torch thread for small models, as for the shadows of step 5 (see SINGLE_THREAD_FLOPS): on a busy
    machine the threads' synchronisation made each training step of the sample's MLP many times slower."""
    import torch

    from mia_audit.shadows.torch_trainer import SINGLE_THREAD_FLOPS, forward_flops

    record = torch.as_tensor(np.asarray(setup.member_x[:1])).to(setup.graph.input_dtype)
    flops = 3.0 * forward_flops(graph=setup.graph, record=record) * setup.recipe.batch_size
    return 1 if flops < SINGLE_THREAD_FLOPS else None


def _attack(
    *, setup: DefenseSetup, sets: _Sets, model: _Model, shadow_probs: np.ndarray | None, keep: np.ndarray | None,
    seed: int,
) -> list[AttackResult]:
    """Steps 3–6 on one variant: members (its training set) vs attack-evaluation non-members."""
    member_p = model(sets.train_x)
    nonmember_p = model(sets.attack_x)
    members = compute_signals(outputs=member_p, output_kind="probabilities", labels=sets.train_y)
    nonmembers = compute_signals(outputs=nonmember_p, output_kind="probabilities", labels=sets.attack_y)
    context = AttackContext(
        members=members,
        nonmembers=nonmembers,
        member_features=sets.train_x,
        nonmember_features=sets.attack_x,
        capabilities=frozenset({"labels", "scores", "queries"}),
        seed=seed,
        predict_labels=lambda x: np.argmax(model(x), axis=1),
        options=setup.label_only_options,
    )
    registry = registered_attacks()
    scores: dict[str, AttackScores] = {}
    for name, cls in registry.items():
        if not cls.missing(context.capabilities):
            scores[name] = cls().score(context)
    if shadow_probs is not None and keep is not None:
        from mia_audit.shadows.evidence import ShadowEvidence

        pool_y = np.concatenate([sets.train_y, sets.attack_y] + ([setup.population_y] if setup.population_x is not None else []))
        n, k = keep.shape
        log_probs = np.empty((n, k, shadow_probs.shape[2]))
        phi = np.empty((n, k))
        for j in range(k):
            sig = compute_signals(outputs=shadow_probs[:, j, :], output_kind="probabilities", labels=pool_y)
            log_probs[:, j, :] = sig.log_probs
            phi[:, j] = sig.logit_scaled_confidence
        target = [members, nonmembers]
        if setup.population_x is not None:
            target.append(compute_signals(outputs=model(setup.population_x), output_kind="probabilities", labels=setup.population_y))
        evidence = ShadowEvidence(
            keep=keep, log_probs=log_probs, phi=phi, labels=pool_y,
            target_log_probs=np.concatenate([s.log_probs for s in target]),
            target_phi=np.concatenate([s.logit_scaled_confidence for s in target]),
            n_members=len(sets.train_y), n_nonmembers=len(sets.attack_y),
            n_population=0 if setup.population_x is None else len(setup.population_y),
        )
        shadow_context = dataclasses.replace(context, capabilities=context.capabilities | {"shadow_models"}, shadows=evidence)
        for name, cls in registry.items():
            if "shadow_models" in cls.needs and not cls.missing(shadow_context.capabilities):
                scores[name] = cls().score(shadow_context)
    return [
        attack_result(
            attack=registry[name], scores=attack_scores, seed=seed + 7919 * (index + 1),
            n_bootstrap=setup.n_bootstrap, delta=setup.delta,
        )
        for index, (name, attack_scores) in enumerate(scores.items())
    ]


def _shadow_logits(setup: DefenseSetup, sets: _Sets, plan: TrainingPlan, keep: np.ndarray, sink: Any, label: str):
    """(N, K, C) logits of K shadows trained with `plan` on their halves of the pool."""
    pool_x = np.concatenate([sets.train_x, sets.attack_x] + ([setup.population_x] if setup.population_x is not None else []))
    pool_y = np.concatenate([sets.train_y, sets.attack_y] + ([setup.population_y] if setup.population_x is not None else []))
    outputs = []
    sink.begin(f"Shadows for {label}", total=keep.shape[1])
    for j in range(keep.shape[1]):
        module, _ = _train(setup, sets, plan, x=pool_x[keep[:, j]], y=pool_y[keep[:, j]], seed=setup.seed + 1000 + j)
        outputs.append(predict_logits(module, pool_x))
        sink.advance()
    sink.end()
    return np.stack(outputs, axis=1)


def _row(*, label, role, variant, attacks, test_acc, member_acc, training=None, dp=None, n_shadows=0) -> DefenseRow:
    worst = select_worst_case(attacks=attacks)
    baseline = next((a for a in attacks if a.name == "baseline"), None)
    worst_attack = next((a for a in attacks if worst and a.name == worst.attack), None)
    return DefenseRow(
        label=label,
        role=role,
        defenses=_applied(variant) if variant else [],
        test_accuracy=test_acc,
        member_accuracy=member_acc,
        generalization_gap=None if test_acc is None else member_acc - test_acc,
        worst_attack=worst.attack if worst else None,
        worst_auc=worst.auc if worst else None,
        worst_auc_ci=worst.auc_ci if worst else None,
        balanced_accuracy=worst_attack.balanced_accuracy if worst_attack else None,
        baseline_attack_advantage=baseline.advantage if baseline else None,
        baseline_attack_advantage_ci=baseline.advantage_ci if baseline else None,
        dp_epsilon=None if dp is None else dp[0],
        dp_delta=None if dp is None else dp[1],
        n_shadow_models=n_shadows,
        training=training or {},
        attacks=attacks,
        **({"worst_tpr_at_fpr_0.001": worst.tpr_at_fpr_0_001} if worst else {}),
    )


def run_defense_step(*, setup: DefenseSetup, original_attacks: list[AttackResult], sink: Any) -> DefenseStepResult:
    """Retrain, transform, re-attack and compare every requested variant."""
    plans = [variant.plan() for variant in setup.variants]
    needs_holdout = any(plan.needs_validation or plan.needs_reference for plan in plans)
    sets = _protocol(setup, needs_holdout)
    trainable = setup.graph is not None
    k = setup.n_shadow_models
    pool_n = len(sets.train_y) + len(sets.attack_y) + (0 if setup.population_x is None else len(setup.population_y))
    keep = None
    if k:
        from mia_audit.shadows.keep import keep_mask

        keep = keep_mask(n_records=pool_n, n_shadows=k, seed=setup.seed + 77)

    rows: list[DefenseRow] = []
    notes: list[str] = []
    exported: list[Path] = []
    test_original = float(np.mean(np.argmax(setup.original_probabilities(sets.test_x), axis=1) == sets.test_y))
    original_member_acc = float(np.mean(np.argmax(setup.original_member_probs, axis=1) == setup.member_y))
    rows.append(_row(label="original model (as deployed)", role="original", variant=None, attacks=original_attacks,
                     test_acc=test_original, member_acc=original_member_acc))

    baseline_module = None
    baseline_shadow_logits = None
    if trainable:
        sink.begin("Retraining the baseline (no defense)")
        baseline_module, report = _train(setup, sets, TrainingPlan(), x=sets.train_x, y=sets.train_y, seed=setup.seed)
        sink.end()
        if keep is not None:
            baseline_shadow_logits = _shadow_logits(setup, sets, TrainingPlan(), keep, sink, "the retrained baseline")
        model = _Model(probabilities=lambda x: _softmax(predict_logits(baseline_module, x)), variant=None)
        shadow_probs = None if baseline_shadow_logits is None else np.stack(
            [_softmax(baseline_shadow_logits[:, j, :]) for j in range(k)], axis=1)
        attacks = _attack(setup=setup, sets=sets, model=model, shadow_probs=shadow_probs, keep=keep, seed=setup.seed)
        rows.append(_row(
            label="retrained baseline (no defense)", role="retrained_baseline", variant=None, attacks=attacks,
            test_acc=float(np.mean(np.argmax(model(sets.test_x), 1) == sets.test_y)),
            member_acc=float(np.mean(np.argmax(model(sets.train_x), 1) == sets.train_y)),
            training={"epochs": report.epochs_run}, n_shadows=k,
        ))
    else:
        notes.append(f"the architecture cannot be retrained ({setup.graph_unavailable}); training-time defenses are skipped")

    for variant, plan in zip(setup.variants, plans):
        if variant.training and not trainable:
            rows.append(DefenseRow(label=variant.label, role="variant", defenses=_applied(variant), status="skipped",
                                   reason=f"needs retraining, which is not possible here: {setup.graph_unavailable}"))
            continue
        try:
            result = _evaluate_variant(setup=setup, sets=sets, variant=variant, plan=plan, keep=keep,
                                       baseline_module=baseline_module, baseline_shadow_logits=baseline_shadow_logits,
                                       sink=sink)
        except InputError as error:  # a combination the trainer refuses (e.g. dp_sgd + mixup)
            rows.append(DefenseRow(label=variant.label, role="variant", defenses=_applied(variant), status="skipped",
                                   reason=str(error).replace("--defenses: ", "")))
            continue
        row, module = result
        rows.append(row)
        if setup.export_dir is not None and module is not None:
            path = setup.export_dir / f"defended_{len(exported) + 1:02d}_{_slug(variant.label)}.onnx"
            setup.export_dir.mkdir(parents=True, exist_ok=True)
            steps = [(d.name, float(next(iter(d.parameters.model_dump().values()), 0))) for d in variant.output]
            export_onnx(DeployedVariant(module, output_steps=steps), example=sets.train_x, path=path)
            exported.append(path)

    _finish(rows)
    comparison = DefenseComparison(
        protocol=_protocol_text(sets, k),
        n_train=len(sets.train_y),
        n_test=len(sets.test_y),
        n_attack_nonmembers=len(sets.attack_y),
        n_holdout=0 if sets.holdout_y is None else len(sets.holdout_y),
        holdout_source=sets.holdout_source,
        recipe=dataclasses.asdict(setup.recipe),
        rows=rows,
        pareto_criteria="higher test accuracy and lower worst-case AUC (retrained variants and output defenses; "
        "the original model is shown for reference)",
        recommendation=_recommend(rows),
        notes=notes,
    )
    done = [row for row in rows if row.role == "variant" and row.status == "done"]
    detail = (
        f"{len(done)} of {len(setup.variants)} defense variants re-audited against a retrained baseline "
        f"({len(sets.train_y)} training records, {len(sets.test_y)} test and {len(sets.attack_y)} attack-evaluation "
        f"non-members; {k} adaptive shadow models per training recipe)"
    )
    return DefenseStepResult(status="done", detail=detail, comparison=comparison, exported=exported)


def _evaluate_variant(*, setup, sets, variant, plan, keep, baseline_module, baseline_shadow_logits, sink):
    k = setup.n_shadow_models
    training: dict = {}
    dp = None
    if variant.training:
        sink.begin(f"Retraining with {variant.label}")
        module, report = _train(setup, sets, plan, x=sets.train_x, y=sets.train_y, seed=setup.seed)
        sink.end()
        training = {"epochs": report.epochs_run, "notes": report.notes}
        if report.dropout_sites:
            training["dropout_sites"] = report.dropout_sites
        if report.dp_epsilon is not None:
            dp = (report.dp_epsilon, plan.dp_delta)
            training["dp_noise_multiplier"] = report.dp_noise_multiplier
            training["dp_accountant"] = report.dp_accountant
        if report.pruned_fraction:
            training["pruned_fraction"] = report.pruned_fraction
        shadow_logits = _shadow_logits(setup, sets, plan, keep, sink, variant.label) if keep is not None else None
        base = lambda x: _softmax(predict_logits(module, x))  # noqa: E731
    else:
        module = None
        shadow_logits = baseline_shadow_logits
        base = setup.original_probabilities  # output defenses wrap the deployed model itself
    model = _Model(probabilities=base, variant=variant)
    shadow_probs = None
    if shadow_logits is not None:
        shadow_probs = np.stack([variant.apply_outputs(_softmax(shadow_logits[:, j, :])) for j in range(k)], axis=1)
    attacks = _attack(setup=setup, sets=sets, model=model, shadow_probs=shadow_probs, keep=keep, seed=setup.seed)
    row = _row(
        label=variant.label, role="variant", variant=variant, attacks=attacks,
        test_acc=float(np.mean(np.argmax(model(sets.test_x), 1) == sets.test_y)),
        member_acc=float(np.mean(np.argmax(model(sets.train_x), 1) == sets.train_y)),
        training=training, dp=dp, n_shadows=k if shadow_probs is not None else 0,
    )
    return row, module


def _finish(rows: list[DefenseRow]) -> None:
    """Utility drop and effectiveness against the retrained baseline (or the original), and the Pareto front."""
    reference = next((r for r in rows if r.role == "retrained_baseline"), rows[0])
    for row in rows:
        if row.status != "done" or row.test_accuracy is None:
            continue
        row.utility_drop = reference.test_accuracy - row.test_accuracy
        if row.worst_auc is not None and reference.worst_auc is not None and reference.worst_auc > 0.5:
            row.effectiveness = (reference.worst_auc - row.worst_auc) / (reference.worst_auc - 0.5)
    candidates = [r for r in rows if r.status == "done" and r.role != "original" and r.worst_auc is not None]
    flags = pareto_front(accuracy=[r.test_accuracy for r in candidates], auc=[r.worst_auc for r in candidates])
    for row, flag in zip(candidates, flags):
        row.pareto_optimal = flag


def _recommend(rows: list[DefenseRow]) -> str:
    reference = next((r for r in rows if r.role == "retrained_baseline"), None)
    variants = [r for r in rows if r.role == "variant" and r.status == "done" and r.pareto_optimal]
    best = best_tradeoff(rows=rows)
    if reference is None or best is None:
        return "No defended variant could be compared with a retrained baseline."
    acceptable = [r for r in variants if (r.utility_drop or 0) <= ACCEPTABLE_UTILITY_DROP]
    if best.worst_auc >= reference.worst_auc:
        return (
            f"No measured defense lowered the worst-case AUC below the retrained baseline's {reference.worst_auc:.3f} "
            f"{_ci(reference.worst_auc_ci)} at acceptable utility."
        )
    established = (
        best.worst_auc_ci is not None
        and reference.worst_auc_ci is not None
        and best.worst_auc_ci[1] < reference.worst_auc_ci[0]
    )
    return (
        f"Measured best trade-off: {best.label} — worst-case AUC {best.worst_auc:.3f} {_ci(best.worst_auc_ci)} vs "
        f"{reference.worst_auc:.3f} {_ci(reference.worst_auc_ci)} for the retrained baseline, test accuracy "
        f"{best.test_accuracy:.3f} (utility drop {best.utility_drop:+.3f})"
        + ("" if acceptable else "; every Pareto-optimal defense costs more than 2 points of accuracy")
        + (
            ""
            if established
            else "; its 95% interval overlaps the baseline's, so the reduction is not established at this sample size"
        )
        + "."
    )


def _ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label)[:60].strip("_")


def _protocol_text(sets: _Sets, k: int) -> str:
    holdout = (
        f"; {len(sets.holdout_y)} hold-out records from {sets.holdout_source} for defenses that need validation or "
        "reference data"
        if sets.holdout_y is not None
        else ""
    )
    return (
        f"Every retrained variant trains on the {len(sets.train_y)} members (the target's own training records). "
        f"Non-members are split (seeded, stratified by label) into {len(sets.test_y)} utility-test and "
        f"{len(sets.attack_y)} attack-evaluation records{holdout}. Each variant is attacked on members vs "
        f"attack-evaluation non-members with the metric and label-only attacks"
        + (f" and with LiRA, RMIA and shadow classifiers on {k} shadows trained with the same defense (adaptive attacker)"
           if k else "")
        + "; utility drop and effectiveness are relative to a baseline retrained with the same recipe and no defense."
    )

