"""What shadow and reference attacks read: the records × shadows matrices over the audit pool.

The pool is members, then non-members, then (optional) population records. For every pool record and
shadow model: the keep-mask entry (did this shadow train on it?), the shadow's log-probability vector
and its logit-scaled confidence φ (Carlini et al. 2022). The target model's log-probabilities and φ on
the same records sit beside them. Attacks are functions of these arrays; they return scores for the
members and non-members only (the population is never evaluated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ShadowEvidence", "LOGP_FLOOR", "PHI_BOUND"]

#: φ is clipped to ±PHI_BOUND before Gaussian fits: probability outputs of exactly 0 or 1 (trees,
#: float32 rounding) give φ = ±∞, and e^−50 is far below what a float64 probability near 1 can resolve.
PHI_BOUND = 50.0
#: Log-probabilities of exactly 0 are floored here before they become classifier features.
LOGP_FLOOR = -1000.0


@dataclass(frozen=True)
class ShadowEvidence:
    keep: np.ndarray  # (N, K) bool
    log_probs: np.ndarray  # (N, K, C) float64 shadow log-probabilities
    phi: np.ndarray  # (N, K) float64 shadow φ
    labels: np.ndarray  # (N,) int64 class indices
    target_log_probs: np.ndarray  # (N, C) float64
    target_phi: np.ndarray  # (N,) float64
    n_members: int
    n_nonmembers: int
    n_population: int

    @property
    def n_shadows(self) -> int:
        return int(self.keep.shape[1])

    @property
    def n_audit(self) -> int:
        return self.n_members + self.n_nonmembers

    @property
    def population_index(self) -> np.ndarray:
        return np.arange(self.n_audit, self.n_audit + self.n_population)

    def split(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool-length (or audit-length) scores → (member scores, non-member scores)."""
        scores = np.asarray(scores, dtype=np.float64)
        return scores[: self.n_members], scores[self.n_members : self.n_audit]
