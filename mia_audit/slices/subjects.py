"""Data-subject-level audit (`--group-column`): can an attacker tell whether a *person* was in the training data?

Record-level membership understates the risk to people who contribute several records (patients with many
visits, users with many sessions): each record may leak a little, together they may leak a lot (user-level
inference, seeds/001 and Li et al. on user-level attacks). Here every attack's per-record scores (oriented
higher = member) are aggregated per subject and the attack is evaluated over subjects, with exactly the
record-level metrics, bootstrap CIs and evidence flags (`mia_audit.evaluation.measure.attack_result`):

- **mean**: the subject's average record score — the evidence of all their records together;
- **max**: the subject's highest record score — their single most exposed record (an attacker needs one hit).

±inf scores are replaced by the attack's largest / smallest finite score before aggregating, so that a mean
stays defined (the max keeps its order except among infinities).

A subject is a member when their records are in the members manifest. A subject with records on both sides
is a contradiction (they are in the training data, so "non-member" records of theirs are not non-members),
and the run refuses it with exit code 2, naming the files and rows — never the subject id.
"""

from __future__ import annotations

import numpy as np

from mia_audit.attacks import AttackScores, registered_attacks
from mia_audit.data.manifest import AuditSet
from mia_audit.errors import InputError
from mia_audit.evaluation.measure import attack_result, select_worst_case
from mia_audit.results import SubjectAttackResult, SubjectAudit
from mia_audit.seeds import SeedStreams

AGGREGATIONS = {
    "mean": "mean of the subject's record scores (all of their records' evidence together)",
    "max": "maximum of the subject's record scores (their single most exposed record)",
}
MIN_SUBJECTS = 2


def _subject_ids(audit_set: AuditSet, group_column: str) -> np.ndarray:
    ids = np.array([str(value).strip() for value in audit_set.groups], dtype=object)
    empty = np.flatnonzero(ids == "")
    if empty.size:
        row = int(empty[0])
        raise InputError(
            f"{audit_set.path}: column '{group_column}', row {row + 1} (line {row + 2}): empty data-subject id "
            "(--group-column)"
        )
    return ids


def check_subjects(*, members: AuditSet, nonmembers: AuditSet, group_column: str) -> None:
    """Refuse empty subject ids, subjects on both sides, and too few subjects for a subject-level audit."""
    member_ids = _subject_ids(members, group_column)
    nonmember_ids = _subject_ids(nonmembers, group_column)
    shared = set(member_ids.tolist()) & set(nonmember_ids.tolist())
    if shared:
        in_both = np.flatnonzero(np.isin(nonmember_ids, list(shared)))
        row = int(in_both[0])
        member_row = int(np.flatnonzero(member_ids == nonmember_ids[row])[0])
        raise InputError(
            f"{nonmembers.path}: column '{group_column}', row {row + 1} (line {row + 2}): this data subject also has "
            f"records among the members ({members.path} row {member_row + 1}, line {member_row + 2}); "
            f"{len(shared)} subject(s) appear on both sides. A subject is either in the training data or not: "
            "keep each subject's records on one side"
        )
    counts = (np.unique(member_ids).size, np.unique(nonmember_ids).size)
    if min(counts) < MIN_SUBJECTS:
        raise InputError(
            f"--group-column '{group_column}': the subject-level audit needs at least {MIN_SUBJECTS} subjects among "
            f"the members and among the non-members (found {counts[0]} and {counts[1]})"
        )


def aggregate_scores(*, subject_ids: np.ndarray, scores: np.ndarray, aggregation: str) -> np.ndarray:
    """One score per subject (subjects in sorted id order) by `mean` or `max` of their record scores."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    _, codes = np.unique(subject_ids, return_inverse=True)
    codes = codes.reshape(-1)
    values = np.asarray(scores, dtype=np.float64)
    if aggregation == "mean":
        return np.bincount(codes, weights=values) / np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.concatenate([[True], np.diff(codes[order]) != 0]))
    return np.maximum.reduceat(values[order], starts)


def _finite(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pooled = np.concatenate([member_scores, nonmember_scores]).astype(np.float64)
    finite = pooled[np.isfinite(pooled)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    clipped = np.clip(pooled, low, high)
    return clipped[: member_scores.size], clipped[member_scores.size :]


def _records_per_subject(*ids: np.ndarray) -> dict[str, float]:
    sizes = np.concatenate([np.unique(side, return_counts=True)[1] for side in ids])
    return {
        "min": float(sizes.min()),
        "median": float(np.median(sizes)),
        "mean": float(sizes.mean()),
        "max": float(sizes.max()),
    }


def audit_subjects(
    *,
    members: AuditSet,
    nonmembers: AuditSet,
    group_column: str,
    record_scores: dict[str, AttackScores],
    seeds: SeedStreams,
    n_bootstrap: int,
    delta: float,
) -> SubjectAudit:
    """Every attack × aggregation evaluated over data subjects (call `check_subjects` first); the bootstrap of
    attack `a` under aggregation `g` draws from the stream ("measure", a, g) of `seeds`."""
    member_ids = _subject_ids(members, group_column)
    nonmember_ids = _subject_ids(nonmembers, group_column)
    registry = registered_attacks()
    results: list[SubjectAttackResult] = []
    for name, scores in record_scores.items():
        member_scores, nonmember_scores = _finite(
            np.asarray(scores.member_scores), np.asarray(scores.nonmember_scores)
        )
        for aggregation in AGGREGATIONS:
            subject_scores = AttackScores(
                member_scores=aggregate_scores(subject_ids=member_ids, scores=member_scores, aggregation=aggregation),
                nonmember_scores=aggregate_scores(
                    subject_ids=nonmember_ids, scores=nonmember_scores, aggregation=aggregation
                ),
                parameters=dict(scores.parameters),
            )
            measured = attack_result(
                attack=registry[name],
                scores=subject_scores,
                seed=seeds.integer("measure", name, aggregation),
                n_bootstrap=n_bootstrap,
                delta=delta,
            )
            results.append(SubjectAttackResult(**measured.model_dump(), aggregation=aggregation))
    worst = select_worst_case(
        attacks=[result.model_copy(update={"name": f"{result.name} ({result.aggregation})"}) for result in results]
    )
    return SubjectAudit(
        group_column=group_column,
        n_member_subjects=int(np.unique(member_ids).size),
        n_nonmember_subjects=int(np.unique(nonmember_ids).size),
        records_per_subject=_records_per_subject(member_ids, nonmember_ids),
        aggregations=dict(AGGREGATIONS),
        attacks=results,
        worst_case=worst,
    )
