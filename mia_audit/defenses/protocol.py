"""Step 7's data protocol: who trains, who tests utility, who is attacked, and what is held out.

- members are the training set of every retrained variant (the records the target was trained on);
- non-members are split, seeded and stratified by label, into a utility test set and an attack-evaluation
  set (and, when a defense needs held-out data and neither --validation nor --population is given, a third
  hold-out part for MMD's validation batches, early stopping, adversarial regularisation's and
  distillation's reference data). With --validation / --population, those files supply the hold-out;
- each variant is attacked on members vs attack-evaluation non-members (adaptive shadows train on random
  halves of members ∪ attack-evaluation non-members ∪ population).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mia_audit.data.audit_data import AuditData, AuditSide

__all__ = ["DefenseSplit", "protocol_text", "split_data", "split_nonmembers"]


def split_nonmembers(*, labels: np.ndarray, rng: np.random.Generator, parts: int) -> list[np.ndarray]:
    """Random split of non-member indices into `parts` near-equal groups, stratified by label."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    offset = 0
    for cls in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == cls))
        for position, record in enumerate(index):
            groups[(position + offset) % parts].append(int(record))
        offset += len(index)
    return [np.sort(np.array(group, dtype=np.int64)) for group in groups]


@dataclass(frozen=True, eq=False)
class DefenseSplit:
    """The audit data as step 7 uses it."""

    attacked: AuditData  # members vs attack-evaluation non-members (+ population for adaptive shadows)
    test: AuditSide  # utility test set
    holdout: AuditSide | None
    holdout_source: str | None


def _mask(n: int, index: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def split_data(*, data: AuditData, needs_holdout: bool, rng: np.random.Generator) -> DefenseSplit:
    """Split the non-members (and pick the hold-out) as the protocol above says."""
    external = None
    if data.validation is not None:
        external = (data.validation, "--validation")
    elif data.population is not None:
        external = (data.population, "--population")
    three = needs_holdout and external is None
    nonmembers = data.nonmembers
    parts = split_nonmembers(labels=nonmembers.labels, rng=rng, parts=3 if three else 2)
    holdout, source = (None, None)
    if three:
        holdout, source = nonmembers.subset(_mask(nonmembers.n, parts[2])), "a third of the non-members"
    elif external is not None:
        holdout, source = external
    return DefenseSplit(
        attacked=data.with_sides(nonmembers=nonmembers.subset(_mask(nonmembers.n, parts[1])), validation=None),
        test=nonmembers.subset(_mask(nonmembers.n, parts[0])),
        holdout=holdout,
        holdout_source=source,
    )


def protocol_text(*, split: DefenseSplit, n_shadows: int) -> str:
    holdout = (
        f"; {split.holdout.n} hold-out records from {split.holdout_source} for defenses that need validation or "
        "reference data"
        if split.holdout is not None
        else ""
    )
    attacked = split.attacked
    return (
        f"Every retrained variant trains on the {attacked.members.n} members (the target's own training records). "
        f"Non-members are split (seeded, stratified by label) into {split.test.n} utility-test and "
        f"{attacked.nonmembers.n} attack-evaluation records{holdout}. Each variant is attacked on members vs "
        f"attack-evaluation non-members with the metric and label-only attacks"
        + (
            f" and with LiRA, RMIA and shadow classifiers on {n_shadows} shadows trained with the same defense "
            "(adaptive attacker)"
            if n_shadows
            else ""
        )
        + "; utility drop and effectiveness are relative to a baseline retrained with the same recipe and no defense."
    )
