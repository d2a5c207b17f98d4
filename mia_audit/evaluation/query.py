"""Workflow steps 2 and 3: check the model accepts the records, query it in batches, derive the signals.

The result is the `TargetOutputs` every attack reads, with a label oracle for label-only queries that
goes through the same model and the same output handling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mia_audit.data.audit_data import AuditData
from mia_audit.data.manifest import AuditSet
from mia_audit.data.signals import compute_signals, log_probabilities
from mia_audit.errors import InputError
from mia_audit.evaluation.core import TargetOutputs
from mia_audit.models import ModelAdapter, normalize_outputs

__all__ = ["AUTO_BATCH_BYTES", "QueriedTarget", "check_model_accepts", "query_target", "resolve_batch_size"]

AUTO_BATCH_BYTES = 32 * 2**20


def check_model_accepts(*, model: ModelAdapter, audit_set: AuditSet) -> None:
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


def resolve_batch_size(*, requested: int | None, record_shape: tuple[int, ...], itemsize: int) -> int:
    """The user's batch size, or as many records as fit in about 32 MiB of model input (256..65,536).

    Few large batches keep onnxruntime's per-call and threading overhead small on tabular data; the
    byte cap keeps image batches from taking gigabytes.
    """
    if requested is not None:
        return requested
    record_bytes = max(1, int(np.prod(record_shape, dtype=np.int64)) * itemsize)
    return int(np.clip(AUTO_BATCH_BYTES // record_bytes, 256, 65_536))


@dataclass(frozen=True, eq=False)
class QueriedTarget:
    """The target's outputs, how they were read (logits / probabilities) and where that came from."""

    outputs: TargetOutputs
    output_kind: str
    kind_source: str  # "user" | "declared_by_model" | "detected"
    batch_size: int
    probabilities: Callable[[np.ndarray], np.ndarray]  # the deployed model's probabilities on new records


def query_target(
    *,
    model: ModelAdapter,
    data: AuditData,
    requested_kind: str,
    batch_size: int,
    capabilities: frozenset[str],
    with_population: bool,
    source: str,
    progress,
) -> QueriedTarget:
    """Query the model once on every side (the population only when shadows will use it)."""
    sides = [data.members, data.nonmembers] + ([data.population] if with_population and data.population else [])
    progress.begin("Querying the model", total=sum(side.n for side in sides))
    raw = []
    for side in sides:
        raw.append(model.predict_raw(side.features, batch_size=batch_size))
        progress.advance(side.n)
    progress.end()
    both, output_kind = normalize_outputs(
        raw=np.concatenate(raw), output_kind=requested_kind, native_kind=model.native_output_kind, source=source
    )
    bounds = np.cumsum([0] + [side.n for side in sides])
    signals = [
        compute_signals(outputs=both[bounds[i] : bounds[i + 1]], output_kind=output_kind, labels=side.labels)
        for i, side in enumerate(sides)
    ]

    def outputs_on(x: np.ndarray) -> np.ndarray:
        outputs, _ = normalize_outputs(
            raw=model.predict_raw(x, batch_size=batch_size),
            output_kind=output_kind,
            native_kind=model.native_output_kind,
            source=source,
        )
        return outputs

    def predict_labels(x: np.ndarray) -> np.ndarray:
        return np.argmax(outputs_on(x), axis=1)

    def probabilities(x: np.ndarray) -> np.ndarray:
        return np.exp(log_probabilities(outputs=outputs_on(x), output_kind=output_kind))

    kind_source = "user" if requested_kind != "auto" else "declared_by_model" if model.native_output_kind else "detected"
    return QueriedTarget(
        outputs=TargetOutputs(
            members=signals[0],
            nonmembers=signals[1],
            population=signals[2] if len(signals) > 2 else None,
            capabilities=capabilities,
            predict_labels=predict_labels,
        ),
        output_kind=output_kind,
        kind_source=kind_source,
        batch_size=batch_size,
        probabilities=probabilities,
    )
