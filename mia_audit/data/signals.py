"""Per-record signals derived once from a model's outputs (DESIGN §4.1).

The container follows TensorFlow Privacy's `AttackInputData` idea (derive loss, entropy, ... from
logits or probabilities once) but everything is computed in float64 from log-softmax: in float32 a
confidently memorised member gets a loss of exactly 0 and ties with every other one, which erases the
low-FPR region an audit is about.

Formulas:
- loss ℓ = −log p_y (cross-entropy, Yeom et al. 2018)
- entropy H(p) = −Σ p_i log p_i
- modified entropy (Song & Mittal 2021): −(1−p_y) log p_y − Σ_{i≠y} p_i log(1−p_i)
- logit-scaled confidence φ = log p_y − log Σ_{i≠y} p_i (Carlini et al. 2022), computed stably
- hinge z_y − max_{i≠y} z_i on logits (or log-probabilities when only probabilities are exposed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import log_softmax, logsumexp

OutputKind = Literal["logits", "probabilities"]


def log_probabilities(*, outputs: np.ndarray, output_kind: OutputKind) -> np.ndarray:
    """Row-wise log-probabilities in float64 from logits (log-softmax) or probabilities (log, −inf at 0)."""
    values = np.asarray(outputs, dtype=np.float64)
    if output_kind == "logits":
        return log_softmax(values, axis=1)
    with np.errstate(divide="ignore"):
        logp = np.log(values)
    # Renormalise in log space so rows that sum to 1 ± rounding behave exactly like a distribution.
    return logp - logsumexp(logp, axis=1, keepdims=True)


def _log1mexp(log_p: np.ndarray) -> np.ndarray:
    """log(1 − exp(x)) for x ≤ 0, accurate over the whole range (Mächler 2012)."""
    x = np.minimum(log_p, 0.0)
    out = np.empty_like(x)
    small = x > -np.log(2.0)
    with np.errstate(divide="ignore"):
        out[small] = np.log(-np.expm1(x[small]))
        out[~small] = np.log1p(-np.exp(x[~small]))
    return out


@dataclass(frozen=True)
class Signals:
    """Signals for one set of records; arrays have one entry per record (scores oriented by attacks)."""

    log_probs: np.ndarray  # (n, k) float64
    labels: np.ndarray  # (n,) int64 class indices
    predicted: np.ndarray  # argmax, first maximum on ties
    correct: np.ndarray  # bool
    top1_confidence: np.ndarray
    true_label_probability: np.ndarray
    loss: np.ndarray
    entropy: np.ndarray
    modified_entropy: np.ndarray
    logit_scaled_confidence: np.ndarray
    hinge: np.ndarray

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def probabilities(self) -> np.ndarray:
        return np.exp(self.log_probs)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.n else float("nan")


def compute_signals(*, outputs: np.ndarray, output_kind: OutputKind, labels: np.ndarray) -> Signals:
    """Derive every per-record signal from raw model outputs and integer class labels."""
    values = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if values.ndim != 2 or values.shape[0] != y.shape[0]:
        raise ValueError("outputs must be (n, k) with one row per label")
    n, k = values.shape
    rows = np.arange(n)
    logp = log_probabilities(outputs=values, output_kind=output_kind)
    predicted = np.argmax(values, axis=1)

    others = np.ones((n, k), dtype=bool)
    others[rows, y] = False
    logp_others = np.where(others, logp, -np.inf)
    log_rest = logsumexp(logp_others, axis=1)  # log Σ_{i≠y} p_i, exact even when p_y rounds to 1
    logit_scaled = logp[rows, y] - log_rest
    # ℓ = −log p_y = log(1 + Σ_{i≠y} p_i / p_y) = softplus(−φ): stays positive and distinct for members
    # a float64 log-softmax would round to a loss of exactly 0.
    loss = np.logaddexp(0.0, -logit_scaled)
    logp[rows, y] = -loss
    p = np.exp(logp)
    p_y = p[rows, y]

    with np.errstate(invalid="ignore"):
        plogp = np.where(p > 0, p * logp, 0.0)
    entropy = -plogp.sum(axis=1)

    log1m = _log1mexp(logp)  # log(1 − p_i)
    with np.errstate(invalid="ignore"):
        other_terms = np.where(others & (p > 0), p * log1m, 0.0).sum(axis=1)
    # −(1 − p_y) log p_y with 1 − p_y taken as Σ_{i≠y} p_i (exact where p_y rounds to 1)
    modified_entropy = np.exp(log_rest) * loss - other_terms

    z = values if output_kind == "logits" else logp
    z_others = np.where(others, z, -np.inf)
    hinge = z[rows, y] - z_others.max(axis=1)

    return Signals(
        log_probs=logp,
        labels=y,
        predicted=predicted,
        correct=predicted == y,
        top1_confidence=p.max(axis=1),
        true_label_probability=p_y,
        loss=loss,
        entropy=entropy,
        modified_entropy=modified_entropy,
        logit_scaled_confidence=logit_scaled,
        hinge=hinge,
    )
