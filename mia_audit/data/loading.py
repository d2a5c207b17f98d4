"""Workflow step 1: read the manifests once, check they agree, apply the overlap policy, bind labels.

Every manifest the run names (members, non-members, `--population`, `--validation`) is read and checked
here, before the model is queried, so bad input stops the run before any work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mia_audit.config import RunConfig
from mia_audit.data.audit_data import AuditData, AuditSide
from mia_audit.data.manifest import AuditSet, check_same_layout, encode_labels, find_overlap, read_manifest
from mia_audit.errors import InputError

__all__ = ["MIN_RECORDS_PER_SIDE", "ManifestSets", "bind_labels", "evidence_warnings", "read_audit_sets"]

MIN_RECORDS_PER_SIDE = 2  # cross-fitting splits each side in two halves


@dataclass(frozen=True, eq=False)
class ManifestSets:
    """The manifests as read (labels still as written) and what the overlap check found."""

    members: AuditSet
    nonmembers: AuditSet
    population: AuditSet | None
    validation: AuditSet | None
    n_overlap: int
    n_dropped: int


def _apply_overlap(*, config: RunConfig, members: AuditSet, nonmembers: AuditSet, warnings: list[str]):
    overlap = find_overlap(members=members, nonmembers=nonmembers)
    n_overlap = int(overlap.sum())
    if not n_overlap:
        return nonmembers, 0, 0
    first = int(np.argmax(overlap)) + 1
    what = f"{n_overlap} non-member record(s) also appear among the members (first: {nonmembers.path} row {first})"
    if config.overlap == "refuse":
        raise InputError(
            f"{what}; an overlapping record is not a non-member. Pass --drop-overlap to drop them from the "
            "non-members, or --allow-overlap to audit as is"
        )
    if config.overlap == "allow":
        warnings.append(f"{what}; kept (--allow-overlap): attack metrics are biased towards 'no leakage'")
        return nonmembers, n_overlap, 0
    nonmembers = nonmembers.subset(~overlap)
    warnings.append(f"{what}; dropped from the non-members (--drop-overlap)")
    if nonmembers.n < MIN_RECORDS_PER_SIDE:
        raise InputError(f"{nonmembers.path}: fewer than {MIN_RECORDS_PER_SIDE} non-members left after dropping the overlap")
    return nonmembers, n_overlap, n_overlap


def read_audit_sets(*, config: RunConfig, warnings: list[str]) -> ManifestSets:
    """Read every manifest of the run and apply the overlap policy (`--drop-overlap` / `--allow-overlap`)."""
    members = read_manifest(path=config.members_path, options=config.manifest)
    nonmembers = read_manifest(path=config.nonmembers_path, options=config.manifest)
    check_same_layout(members=members, nonmembers=nonmembers)
    for audit_set in (members, nonmembers):
        if audit_set.n < MIN_RECORDS_PER_SIDE:
            raise InputError(
                f"{audit_set.path}: {audit_set.n} record(s); an audit needs at least {MIN_RECORDS_PER_SIDE} "
                "members and non-members (and thousands of non-members to resolve low FPRs)"
            )
    nonmembers, n_overlap, n_dropped = _apply_overlap(
        config=config, members=members, nonmembers=nonmembers, warnings=warnings
    )
    extra = {}
    for name, path in (("population", config.shadow.population_path), ("validation", config.defense.validation_path)):
        extra[name] = None
        if path is not None:
            extra[name] = read_manifest(path=path, options=config.manifest)
            check_same_layout(members=members, nonmembers=extra[name])
    return ManifestSets(
        members=members,
        nonmembers=nonmembers,
        population=extra["population"],
        validation=extra["validation"],
        n_overlap=n_overlap,
        n_dropped=n_dropped,
    )


def evidence_warnings(*, n_nonmembers: int) -> list[str]:
    """What the number of non-members cannot resolve (DESIGN §4.3: N·α < 1 not estimable, < 10 low evidence)."""
    for alpha in (0.001, 0.01):
        if n_nonmembers * alpha < 1:
            return [
                f"{n_nonmembers} non-members cannot resolve an FPR of {alpha:g} (needs at least {int(round(1 / alpha))}): "
                f"TPR at {alpha:.1%} FPR is not estimable"
            ]
        if n_nonmembers * alpha < 10:
            return [
                f"{n_nonmembers} non-members give fewer than 10 expected false positives at FPR {alpha:g}: "
                f"TPR at {alpha:.1%} FPR is low-evidence"
            ]
    return []


def bind_labels(*, sets: ManifestSets, label_column: str, n_classes: int, class_labels: list | None) -> AuditData:
    """The audit data with every side's labels as the model's class indices."""

    def side(audit_set: AuditSet | None) -> AuditSide | None:
        if audit_set is None:
            return None
        labels = encode_labels(
            audit_set=audit_set, label_column=label_column, n_classes=n_classes, class_labels=class_labels
        )
        return AuditSide(records=audit_set, labels=labels)

    return AuditData(
        members=side(sets.members),
        nonmembers=side(sets.nonmembers),
        n_classes=n_classes,
        class_labels=class_labels,
        population=side(sets.population),
        validation=side(sets.validation),
    )
