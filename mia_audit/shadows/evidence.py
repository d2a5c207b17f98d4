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

__all__ = ["LOGP_FLOOR", "PHI_BOUND", "ReferenceOutputs", "ShadowEvidence"]

#: φ is clipped to ±PHI_BOUND before Gaussian fits: probability outputs of exactly 0 or 1 (trees,
#: float32 rounding) give φ = ±∞, and e^−50 is far below what a float64 probability near 1 can resolve.
PHI_BOUND = 50.0
#: Log-probabilities of exactly 0 are floored here before they become classifier features.
LOGP_FLOOR = -1000.0


@dataclass(frozen=True, eq=False)
class ReferenceOutputs:
    """What the shadow / reference models said about every pool record (members, non-members, population)."""

    keep: np.ndarray  # (N, K) bool: shadow k trained on record i
    log_probs: np.ndarray  # (N, K, C) float64
    phi: np.ndarray  # (N, K) float64 logit-scaled confidence

    @classmethod
    def from_outputs(
        cls, *, keep: np.ndarray, outputs: np.ndarray, output_kind: str, labels: np.ndarray, check: bool = True
    ) -> "ReferenceOutputs":
        """(N, K, k_out) raw shadow outputs (logits or probabilities, as `output_kind` says) → signals.

        `check=False` skips the model-output checks (for probabilities mia-audit produced itself, e.g. shadows
        behind an output defense such as rounding, whose rows need not sum to 1).
        """
        from mia_audit.data.signals import compute_signals
        from mia_audit.models import normalize_outputs

        n, k = outputs.shape[:2]
        log_probs: np.ndarray | None = None
        phi = np.empty((n, k), dtype=np.float64)
        for j in range(k):
            values, resolved = (
                normalize_outputs(raw=outputs[:, j, :], output_kind=output_kind, native_kind=None, source=f"shadow model {j}")
                if check
                else (outputs[:, j, :], output_kind)
            )
            signals = compute_signals(outputs=values, output_kind=resolved, labels=labels)
            if log_probs is None:
                log_probs = np.empty((n, k, signals.log_probs.shape[1]), dtype=np.float64)
            log_probs[:, j, :] = signals.log_probs
            phi[:, j] = signals.logit_scaled_confidence
        assert log_probs is not None
        return cls(keep=keep, log_probs=log_probs, phi=phi)

    @property
    def n_shadows(self) -> int:
        return int(self.keep.shape[1])

    def fit_summary(self, *, labels: np.ndarray) -> tuple[float, float]:
        """Mean accuracy of the shadows on the records they trained on and on the records they did not."""
        correct = np.argmax(self.log_probs, axis=2) == labels[:, None]
        keep = self.keep
        train = np.mean([correct[keep[:, j], j].mean() for j in range(keep.shape[1])])
        held = np.mean([correct[~keep[:, j], j].mean() for j in range(keep.shape[1]) if (~keep[:, j]).any()])
        return float(train), float(held)


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
