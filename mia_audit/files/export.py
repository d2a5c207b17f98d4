"""The restricted per-record export: written only when the user asks (--export-record-scores).

Per-record membership scores (and record ids, when the manifests have an id column) are personal data
about the audited records: they never go into results.json or the report. This file is named as
restricted, created with owner-only permissions, and one row per (attack, record):
attack, set (member / nonmember), row (1-based data row in its manifest), id, score (higher = member).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from mia_audit.workflow import AuditRun

RESTRICTED_FILE_NAME = "RESTRICTED_record_scores.csv"
COLUMNS = ("attack", "set", "row", "id", "score")


def _side(*, writer, attack: str, side: str, scores: np.ndarray, rows: np.ndarray | None, ids: np.ndarray | None) -> None:
    rows = np.arange(1, len(scores) + 1) if rows is None else rows
    for index, score in enumerate(np.asarray(scores, dtype=np.float64)):
        writer.writerow((attack, side, int(rows[index]), "" if ids is None else str(ids[index]), repr(float(score))))


def record_scores_csv(*, run: AuditRun) -> str:
    """The CSV text of every attack's per-record scores, members first, in manifest order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for attack, scores in run.record_scores.items():
        _side(writer=writer, attack=attack, side="member", scores=scores.member_scores, rows=run.member_rows, ids=run.member_ids)
        _side(
            writer=writer, attack=attack, side="nonmember", scores=scores.nonmember_scores, rows=run.nonmember_rows,
            ids=run.nonmember_ids,
        )
    return buffer.getvalue()
