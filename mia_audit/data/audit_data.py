"""The audit data floor: every side of the audit, read once and bound to the model's classes.

`AuditData` holds the members, the non-members and the optional population (records used only to train
shadows and as RMIA's population) and validation records. Each `AuditSide` carries its manifest record
(path, SHA-256, features, ids, groups, meta columns, manifest row numbers) and its labels as the model's
class indices. Every step reads from here; nothing repacks arrays. The pool the shadows train on
(members, then non-members, then population) is built once, on first use.

Signals are not stored here: they are derived from a model's outputs, and step 7 audits several models on
the same data (see `mia_audit.evaluation.core.TargetOutputs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mia_audit.data.manifest import AuditSet

__all__ = ["AuditData", "AuditSide"]


@dataclass(frozen=True, eq=False)
class AuditSide:
    """One side of the audit: its manifest's records and their labels as class indices."""

    records: AuditSet
    labels: np.ndarray  # (n,) int64 class indices 0..k−1

    @property
    def n(self) -> int:
        return self.records.n

    @property
    def features(self) -> np.ndarray:
        return self.records.features

    @property
    def path(self) -> Path:
        return self.records.path

    @property
    def ids(self) -> np.ndarray | None:
        return self.records.ids

    def rows(self) -> np.ndarray:
        """1-based data-row numbers in the manifest."""
        return self.records.rows()

    def subset(self, keep: np.ndarray) -> "AuditSide":
        """The records where the boolean mask `keep` is True, in the same order."""
        return AuditSide(records=self.records.subset(keep), labels=self.labels[keep])


@dataclass(frozen=True, eq=False)
class AuditData:
    """Members, non-members and the optional population / validation records of one audit."""

    members: AuditSide
    nonmembers: AuditSide
    n_classes: int
    class_labels: list | None = None
    population: AuditSide | None = None
    validation: AuditSide | None = None

    @property
    def record_shape(self) -> tuple[int, ...]:
        return tuple(self.members.features.shape[1:])

    @property
    def n_population(self) -> int:
        return 0 if self.population is None else self.population.n

    def with_sides(self, **sides: AuditSide | None) -> "AuditData":
        """A copy with some sides replaced (e.g. step 7's attack-evaluation non-members)."""
        return dataclasses.replace(self, **sides)

    @cached_property
    def _pool(self) -> tuple[np.ndarray, np.ndarray]:
        sides = [self.members, self.nonmembers] + ([self.population] if self.population is not None else [])
        return (
            np.concatenate([side.features for side in sides]),
            np.concatenate([side.labels for side in sides]),
        )

    @property
    def pool_features(self) -> np.ndarray:
        """Members, then non-members, then population: the records shadows train on."""
        return self._pool[0]

    @property
    def pool_labels(self) -> np.ndarray:
        return self._pool[1]

    @property
    def n_pool(self) -> int:
        return self.members.n + self.nonmembers.n + self.n_population
