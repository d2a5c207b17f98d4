"""Step 6 on groups of records: every attack measured on slices (`evaluate`) and over data subjects (`subjects`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mia_audit.attacks import AttackScores
from mia_audit.config import RunConfig
from mia_audit.data.audit_data import AuditData
from mia_audit.evaluation.core import TargetOutputs
from mia_audit.results import AttackResult, SubjectAudit
from mia_audit.seeds import SeedStreams
from mia_audit.slices.dimensions import build_slices
from mia_audit.slices.evaluate import SliceEvaluation, evaluate_slices
from mia_audit.slices.subjects import audit_subjects

__all__ = ["GroupResults", "measure_groups"]


@dataclass
class GroupResults:
    slices: SliceEvaluation | None
    subjects: SubjectAudit | None

    def detail(self, *, n_attacks: int, fpr: float) -> str:
        """Step 6's record of what the slices and the subject-level audit measured."""
        if self.slices is None:
            text = "slices not evaluated (" + ("no attack ran)" if n_attacks == 0 else "--no-slices)")
        else:
            summary = self.slices.summary
            text = (
                f"{summary.n_slices} slices × {n_attacks} attacks: {summary.n_tested} pairs tested (DeLong CIs, "
                f"one-sided Mann–Whitney, Benjamini–Hochberg at FDR {summary.fdr:g}), {summary.n_significant} "
                f"significant, {summary.n_insufficient} slices with fewer than {summary.min_records} members or "
                f"non-members; per-slice threshold calibration raises TPR@{fpr:.0%}FPR in "
                f"{summary.n_subpopulation_gains}"
            )
        if self.subjects is not None:
            text += (
                f"; subject-level audit over {self.subjects.n_member_subjects} member and "
                f"{self.subjects.n_nonmember_subjects} non-member subjects ('{self.subjects.group_column}', mean and "
                "max aggregation)"
            )
        return text


def measure_groups(
    *,
    config: RunConfig,
    data: AuditData,
    target: TargetOutputs,
    scores: dict[str, AttackScores],
    results: list[AttackResult],
    seeds: SeedStreams,
    progress: Any,
) -> GroupResults:
    """Slices × attacks and, with `--group-column`, the data-subject audit."""
    evaluation = None
    if config.slicing.enabled and scores:
        progress.begin("Measuring slices")
        slices = build_slices(
            spec=config.slicing,
            members=data.members.records,
            nonmembers=data.nonmembers.records,
            member_signals=target.members,
            nonmember_signals=target.nonmembers,
            class_labels=data.class_labels,
        )
        evaluation = evaluate_slices(
            spec=config.slicing,
            slices=slices,
            record_scores=scores,
            member_correct=target.members.correct,
            nonmember_correct=target.nonmembers.correct,
            global_results=results,
            seed=seeds.integer("slice-folds"),
        )
        progress.end()
    subjects = None
    if config.manifest.group_column is not None and scores:
        progress.begin("Measuring data subjects (bootstrap CIs)")
        subjects = audit_subjects(
            members=data.members.records,
            nonmembers=data.nonmembers.records,
            group_column=config.manifest.group_column,
            record_scores=scores,
            seeds=seeds.child("subjects"),
            n_bootstrap=config.n_bootstrap,
            delta=config.delta,
        )
        progress.end()
    return GroupResults(slices=evaluation, subjects=subjects)
