"""Which shadow model trains on which record: the keep-mask (records × shadows, True = IN).

Li, Li & Ribeiro 2021 (§3.2) and Carlini et al. 2022 (LiRA) train every shadow on a random half of the
data pool, so that each record is IN for about half of the shadows and OUT for the rest. This design
makes it exact: shadows come in complementary pairs — shadow 2j trains on a random half H_j of the pool
and shadow 2j+1 on the other half — so every record is IN for exactly ⌊K/2⌋ of the first 2⌊K/2⌋ shadows
and every shadow trains on ⌊N/2⌋ or ⌈N/2⌉ records. With an odd K the last shadow gets an independent
random half.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_mask"]


def keep_mask(*, n_records: int, n_shadows: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n_records, n_shadows) matrix; column k marks the records shadow k trains on."""
    if n_records < 2:
        raise ValueError("the pool needs at least two records")
    if n_shadows < 1:
        raise ValueError("at least one shadow model is needed")
    keep = np.zeros((n_records, n_shadows), dtype=bool)
    half = n_records // 2
    for pair in range(n_shadows // 2):
        chosen = rng.permutation(n_records)[:half]
        keep[chosen, 2 * pair] = True
        keep[:, 2 * pair + 1] = ~keep[:, 2 * pair]
    if n_shadows % 2:
        keep[rng.permutation(n_records)[:half], n_shadows - 1] = True
    return keep
