"""Workflow step 5, shadow / reference models: train them (or load them from the cache) on the audit pool.

The result is the `ReferenceOutputs` the shadow and reference attacks read (they run with every other
attack in `mia_audit.evaluation.core.evaluate`), plus what was trained for results.json. The step is
`skipped` with an instructive reason when shadow attacks are turned off, the deployment exposes labels
only, or no trainable copy of the model exists and no recipe was given; it never crashes on a model it
cannot retrain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mia_audit.attacks import registered_attacks
from mia_audit.config import MIN_SHADOW_MODELS, RunConfig
from mia_audit.data.audit_data import AuditData
from mia_audit.results import ShadowModels
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.evidence import ReferenceOutputs
from mia_audit.shadows.keep import keep_mask

__all__ = ["MIN_SHADOW_MODELS", "ReferenceStep", "run_reference_step", "skip_reason"]


@dataclass
class ReferenceStep:
    status: str  # "done" | "skipped"
    detail: str
    references: ReferenceOutputs | None = None
    info: ShadowModels | None = None


def skip_reason(*, config: RunConfig, names: list[str], capabilities: frozenset[str]) -> str | None:
    """Why step 5 does not run for these selected shadow attacks, or None when it runs."""
    if not names:
        return "no shadow or reference attack selected (--attacks)"
    if config.shadow.n_models == 0:
        return (
            "shadow-model attacks turned off (--shadow-models 0); the worst case covers metric and label-only "
            "attacks only and may understate leakage at low FPR"
        )
    registry = registered_attacks()
    missing = sorted(set().union(*(registry[n].needs for n in names)) - capabilities - {"shadow_models"})
    if missing:
        return f"{', '.join(names)} need {', '.join(missing)}: the deployment exposes labels only (--exposure labels)"
    return None


def run_reference_step(
    *,
    config: RunConfig,
    names: list[str],
    source: Any,
    data: AuditData,
    model_sha256: str,
    output_kind: str,
    calibration: Any,
    recipe_sha256: str | None,
    seeds: SeedStreams,
    progress: Any,
) -> ReferenceStep:
    """Train (or load) `config.shadow.n_models` shadows of `source` on random halves of the pool."""
    n_models = config.shadow.n_models
    keep = keep_mask(n_records=data.n_pool, n_shadows=n_models, rng=seeds.numpy("keep-mask"))
    references, meta = _shadow_outputs(
        config=config, source=source, data=data, keep=keep, model_sha256=model_sha256, output_kind=output_kind,
        seeds=seeds, progress=progress,
    )
    train_acc, held_acc = references.fit_summary(labels=data.pool_labels)
    recipe_used = source.recipe_used()
    epochs = meta.get("epochs")
    info = ShadowModels(
        n_shadow_models=n_models,
        source=source.name,
        description=source.description,
        recipe=recipe_used,
        recipe_file=None if config.shadow.recipe_path is None else str(config.shadow.recipe_path),
        recipe_sha256=recipe_sha256,
        epochs=epochs,
        calibrated=meta.get("calibrated"),
        calibration_target=(
            {"member_accuracy": calibration.member_accuracy, "median_member_loss": calibration.median_member_loss}
            if "training" in recipe_used and recipe_used["training"]["epochs"] == "auto"
            else {}
        ),
        n_pool=data.n_pool,
        n_population=data.n_population,
        keep_design=(
            f"complementary random halves: every record IN for exactly {n_models // 2} of the first "
            f"{2 * (n_models // 2)} shadows" + (", the last shadow on an independent random half" if n_models % 2 else "")
        ),
        shadow_train_accuracy=train_acc,
        shadow_heldout_accuracy=held_acc,
        attacks=list(names),
    )
    detail = (
        f"{n_models} shadow models: {source.description}; each trained on a random half of a "
        f"{data.n_pool}-record pool (members, non-members"
        + (f", {data.n_population} population records" if data.n_population else "")
        + f"), every record IN for {n_models // 2}{_training_text(recipe_used, meta, calibration)}; shadows' "
        f"accuracy on their training / held-out records {train_acc:.3f} / {held_acc:.3f}; ran {', '.join(names)}"
    )
    return ReferenceStep(status="done", detail=detail, references=references, info=info)


def _training_text(recipe_used: dict, meta: dict, calibration: Any) -> str:
    if "training" not in recipe_used:
        return ""
    t = recipe_used["training"]
    text = (
        f"; {t['optimizer']} lr {t['lr']:g}, batch {t['batch_size']}, weight decay {t['weight_decay']:g}, "
        f"{meta.get('epochs')} epochs"
    )
    if t["epochs"] == "auto":
        text += (
            f" ({'calibrated to' if meta.get('calibrated') else 'max_epochs reached before'} the target's member "
            f"accuracy {calibration.member_accuracy:.3f} and median member loss {calibration.median_member_loss:.2g})"
        )
    return text


def _shadow_outputs(
    *,
    config: RunConfig,
    source: Any,
    data: AuditData,
    keep: np.ndarray,
    model_sha256: str,
    output_kind: str,
    seeds: SeedStreams,
    progress: Any,
) -> tuple[ReferenceOutputs, dict]:
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
                "split": [data.members.n, data.nonmembers.n, data.n_population],
                "recipe": source.recipe_used(),
                "n_models": n_models,
                "seed": seeds.run_seed,
                "namespace": list(seeds.namespace),
                "output_kind": output_kind,
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
            },
            arrays=[data.pool_features, data.pool_labels, keep],
        )
        entry = load_entry(directory=directory, key=key)
        if entry is not None and entry["log_probs"].shape[:2] == keep.shape:
            return ReferenceOutputs(keep=keep, log_probs=entry["log_probs"], phi=entry["phi"]), entry["meta"]
    progress.begin(f"Training {n_models} shadow models ({source.name.replace('_', ' ')})", total=source.progress_total(n_models))
    fit = source.fit(x=data.pool_features, y=data.pool_labels, keep=keep, seeds=seeds, progress=progress)
    progress.end()
    references = ReferenceOutputs.from_outputs(keep=keep, outputs=fit.raw, output_kind=source.output_kind, labels=data.pool_labels)
    meta = {"epochs": fit.epochs, "calibrated": fit.calibrated}
    if directory is not None:
        store_entry(directory=directory, key=key, arrays={"log_probs": references.log_probs, "phi": references.phi}, meta=meta)
    return references, meta
