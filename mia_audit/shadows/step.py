"""Workflow step 5, shadow / reference attacks: train (or load) the shadows, then run the attacks.

Returns `done` with what was trained and run, or `skipped` with an instructive reason (attacks turned
off, labels-only exposure, a graph that cannot be retrained and no recipe); never crashes on a model it
cannot retrain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.attacks import AttackContext, AttackScores, registered_attacks
from mia_audit.config import RunConfig
from mia_audit.data.manifest import AuditSet
from mia_audit.models import normalize_outputs
from mia_audit.results import FileRef, ShadowModels
from mia_audit.shadows.evidence import ShadowEvidence
from mia_audit.shadows.keep import keep_mask
from mia_audit.shadows.recipe import ShadowRecipe
from mia_audit.data.signals import Signals, compute_signals

__all__ = ["MIN_SHADOW_MODELS", "ShadowStepResult", "is_shadow_attack", "run_shadow_step"]

#: LiRA needs at least two IN and two OUT shadows per record to estimate a spread.
MIN_SHADOW_MODELS = 4


@dataclass
class ShadowStepResult:
    status: str  # "done" | "skipped"
    detail: str
    scores: dict[str, AttackScores] = field(default_factory=dict)
    info: ShadowModels | None = None


@dataclass(frozen=True)
class Population:
    """Optional same-distribution records used only to train shadows and as RMIA's population."""

    audit_set: AuditSet
    labels: np.ndarray
    signals: Signals


def is_shadow_attack(name: str) -> bool:
    return "shadow_models" in registered_attacks()[name].needs


def _skip(detail: str) -> ShadowStepResult:
    return ShadowStepResult(status="skipped", detail=detail)


def _shadow_signals(*, raw: np.ndarray, kind: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, k_out) raw shadow outputs → (N, K, C) log-probabilities and (N, K) φ."""
    n, k = raw.shape[:2]
    log_probs, phi = None, np.empty((n, k), dtype=np.float64)
    for j in range(k):
        outputs, resolved = normalize_outputs(raw=raw[:, j, :], output_kind=kind, native_kind=None, source=f"shadow model {j}")
        signals = compute_signals(outputs=outputs, output_kind=resolved, labels=labels)
        if log_probs is None:
            log_probs = np.empty((n, k, signals.log_probs.shape[1]), dtype=np.float64)
        log_probs[:, j, :] = signals.log_probs
        phi[:, j] = signals.logit_scaled_confidence
    assert log_probs is not None
    return log_probs, phi


def _fit_summary(*, log_probs: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> tuple[float, float]:
    correct = np.argmax(log_probs, axis=2) == labels[:, None]
    train = np.mean([correct[keep[:, j], j].mean() for j in range(keep.shape[1])])
    held = np.mean([correct[~keep[:, j], j].mean() for j in range(keep.shape[1]) if (~keep[:, j]).any()])
    return float(train), float(held)


def run_shadow_step(
    *,
    config: RunConfig,
    names: list[str],
    model: Any,
    model_sha256: str,
    output_kind: str,
    members: AuditSet,
    nonmembers: AuditSet,
    member_y: np.ndarray,
    nonmember_y: np.ndarray,
    member_signals: Signals,
    nonmember_signals: Signals,
    population: Population | None,
    recipe: ShadowRecipe | None,
    recipe_sha256: str | None,
    context: AttackContext,
    sink: Any,
) -> ShadowStepResult:
    options = config.shadow
    if not names:
        return _skip("no shadow or reference attack selected (--attacks)")
    if options.n_models == 0:
        return _skip(
            "shadow-model attacks turned off (--shadow-models 0); the worst case covers metric and label-only "
            "attacks only and may understate leakage at low FPR"
        )
    missing = sorted(set().union(*(registered_attacks()[n].needs for n in names)) - context.capabilities - {"shadow_models"})
    if missing:
        return _skip(
            f"{', '.join(names)} need {', '.join(missing)}: the deployment exposes labels only (--exposure labels)"
        )

    from mia_audit.shadows.clone import ShadowUnavailable, make_shadow_source
    from mia_audit.shadows.torch_trainer import CalibrationTarget

    parts_x = [members.features, nonmembers.features] + ([population.audit_set.features] if population else [])
    pool_x = np.concatenate(parts_x)
    pool_y = np.concatenate([member_y, nonmember_y] + ([population.labels] if population else []))
    n_population = population.audit_set.n if population else 0
    calibration = CalibrationTarget(
        member_accuracy=member_signals.accuracy, median_member_loss=float(np.median(member_signals.loss))
    )
    sink.begin("Preparing shadow models")
    try:
        source = make_shadow_source(
            model=model,
            model_path=config.model_path,
            recipe=recipe,
            output_kind=output_kind,
            x_check=members.features,
            n_classes=model.n_classes,
            pool_x=pool_x,
            calibration=calibration,
        )
    except ShadowUnavailable as reason:
        sink.end()
        return _skip(f"shadow models cannot be trained: {reason}")
    sink.end()

    n_models = options.n_models
    keep = keep_mask(n_records=pool_x.shape[0], n_shadows=n_models, seed=config.seed)
    log_probs, phi, meta = _shadow_outputs(
        config=config, source=source, pool_x=pool_x, pool_y=pool_y, keep=keep, model_sha256=model_sha256,
        output_kind=output_kind, n_members=members.n, n_nonmembers=nonmembers.n, n_population=n_population, sink=sink,
    )
    target_signals = [member_signals, nonmember_signals] + ([population.signals] if population else [])
    evidence = ShadowEvidence(
        keep=keep,
        log_probs=log_probs,
        phi=phi,
        labels=pool_y,
        target_log_probs=np.concatenate([s.log_probs for s in target_signals]),
        target_phi=np.concatenate([s.logit_scaled_confidence for s in target_signals]),
        n_members=members.n,
        n_nonmembers=nonmembers.n,
        n_population=n_population,
    )
    shadow_context = dataclasses.replace(
        context, capabilities=context.capabilities | {"shadow_models"}, shadows=evidence
    )
    scores: dict[str, AttackScores] = {}
    registry = registered_attacks()
    sink.begin("Running shadow / reference attacks", total=len(names))
    for name in names:
        scores[name] = registry[name]().score(shadow_context)
        sink.advance()
    sink.end()

    train_acc, held_acc = _fit_summary(log_probs=log_probs, labels=pool_y, keep=keep)
    recipe_used = source.recipe_used()
    epochs = meta.get("epochs")
    info = ShadowModels(
        n_shadow_models=n_models,
        source=source.name,
        description=source.description,
        recipe=recipe_used,
        recipe_file=None if options.recipe_path is None else str(options.recipe_path),
        recipe_sha256=recipe_sha256,
        epochs=epochs,
        calibrated=meta.get("calibrated"),
        calibration_target=(
            {"member_accuracy": calibration.member_accuracy, "median_member_loss": calibration.median_member_loss}
            if "training" in recipe_used and recipe_used["training"]["epochs"] == "auto"
            else {}
        ),
        n_pool=int(pool_x.shape[0]),
        n_population=n_population,
        keep_design=(
            f"complementary random halves: every record IN for exactly {n_models // 2} of the first "
            f"{2 * (n_models // 2)} shadows" + (", the last shadow on an independent random half" if n_models % 2 else "")
        ),
        shadow_train_accuracy=train_acc,
        shadow_heldout_accuracy=held_acc,
        attacks=list(names),
    )
    training = ""
    if "training" in recipe_used:
        t = recipe_used["training"]
        training = f"; {t['optimizer']} lr {t['lr']:g}, batch {t['batch_size']}, weight decay {t['weight_decay']:g}, {epochs} epochs"
        if t["epochs"] == "auto":
            training += (
                f" ({'calibrated to' if meta.get('calibrated') else 'max_epochs reached before'} the target's member "
                f"accuracy {calibration.member_accuracy:.3f} and median member loss {calibration.median_member_loss:.2g})"
            )
    detail = (
        f"{n_models} shadow models: {source.description}; each trained on a random half of a "
        f"{pool_x.shape[0]}-record pool (members, non-members"
        + (f", {n_population} population records" if n_population else "")
        + f"), every record IN for {n_models // 2}{training}; shadows' accuracy on their training / held-out "
        f"records {train_acc:.3f} / {held_acc:.3f}; ran {', '.join(names)}"
    )
    return ShadowStepResult(status="done", detail=detail, scores=scores, info=info)


def _shadow_outputs(
    *,
    config: RunConfig,
    source: Any,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    keep: np.ndarray,
    model_sha256: str,
    output_kind: str,
    n_members: int,
    n_nonmembers: int,
    n_population: int,
    sink: Any,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Shadow log-probabilities and φ on every pool record: from the cache, or trained (and cached)."""
    import sklearn
    import torch

    from mia_audit.shadows.cache import cache_key, default_cache_dir, load_entry, store_entry

    options = config.shadow
    n_models = keep.shape[1]
    directory: Path | None = None
    key = ""
    if options.use_cache:
        directory = options.cache_dir or default_cache_dir()
        key = cache_key(
            parts={
                "model_sha256": model_sha256,
                "split": [n_members, n_nonmembers, n_population],
                "recipe": source.recipe_used(),
                "n_models": n_models,
                "seed": config.seed,
                "output_kind": output_kind,
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
            },
            arrays=[pool_x, pool_y, keep],
        )
        entry = load_entry(directory=directory, key=key)
        if entry is not None and entry["log_probs"].shape[:2] == keep.shape:
            return entry["log_probs"], entry["phi"], entry["meta"]
    label = f"Training {n_models} shadow models ({source.name.replace('_', ' ')})"
    sink.begin(label, total=source.progress_total(n_models))
    fit = source.fit(x=pool_x, y=pool_y, keep=keep, seed=config.seed, progress=sink)
    sink.end()
    log_probs, phi = _shadow_signals(raw=fit.raw, kind=source.output_kind, labels=pool_y)
    meta = {"epochs": fit.epochs, "calibrated": fit.calibrated}
    if directory is not None:
        store_entry(directory=directory, key=key, arrays={"log_probs": log_probs, "phi": phi}, meta=meta)
    return log_probs, phi, meta
