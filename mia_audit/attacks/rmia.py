"""RMIA, offline (Zarifzadeh, Liu, Lee & Shokri 2024, "Low-Cost High-Power Membership Inference
Attacks", ICML).

For a candidate x and a population record z, the likelihood ratio of the pair is
LR(x, z) = [p(x|θ) / p(x)] / [p(z|θ) / p(z)], with p(·|θ) the target model's probability of the true
label and p(·) its average over reference models. Offline (only reference models that did NOT train on
the record, here the shadows where it is OUT) the paper approximates the average over IN and OUT models
by p(x) = ½((1 + a) · P_OUT(x) + (1 − a)). The score is the fraction of population records that x
dominates: score(x) = |{z ∈ Z : LR(x, z) ≥ γ}| / |Z|.

Computed by sorting and binary search, never as an N × Z matrix: with r = log p(·|θ) − log p(·),
LR(x, z) ≥ γ ⇔ r(z) ≤ r(x) − log γ, so score(x) = searchsorted(sort(r(Z)), r(x) − log γ, "right") / |Z|
— O((N + Z) log Z) time and O(N + Z) memory.

Parameters (recorded in results.json):
- γ = 1 (default): with one fixed population for all candidates the ranking, hence the ROC, does not
  depend on γ except through ties; γ only moves the decision threshold a β-cut would use.
- a: chosen on the shadows alone, never on the target's membership. Shadow 0 plays the target; the
  other shadows are its reference models; a ∈ {0, 0.1, …, 1} maximising the pseudo-target's AUC is
  used (the paper's procedure of tuning a on a reference model).
- Z: the `--population` records when given, otherwise all audit records (their membership is not
  used, only their model outputs).
"""

from __future__ import annotations

import numpy as np

from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack
from mia_audit.stats import auc_score
from mia_audit.shadows.evidence import ShadowEvidence

__all__ = ["A_GRID", "calibrate_a", "mean_out_probability", "rmia_log_ratio", "rmia_scores"]

A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def rmia_log_ratio(*, p_target: np.ndarray, p_out: np.ndarray, a: float) -> np.ndarray:
    """log p(x|θ) − log p(x), offline p(x) = ½((1 + a) P_OUT(x) + (1 − a))."""
    p_x = 0.5 * ((1.0 + a) * np.asarray(p_out, dtype=np.float64) + (1.0 - a))
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p_target, dtype=np.float64)) - np.log(p_x)


def rmia_scores(
    *,
    p_target_x: np.ndarray,
    p_out_x: np.ndarray,
    p_target_z: np.ndarray,
    p_out_z: np.ndarray,
    a: float,
    gamma: float = 1.0,
) -> np.ndarray:
    """Offline RMIA score of every candidate x against the population Z, by sort + searchsorted."""
    if gamma <= 0:
        raise ValueError("gamma must be positive")
    r_x = rmia_log_ratio(p_target=p_target_x, p_out=p_out_x, a=a)
    r_z = np.sort(rmia_log_ratio(p_target=p_target_z, p_out=p_out_z, a=a))
    if r_z.size == 0:
        raise ValueError("RMIA needs a non-empty population")
    counts = np.searchsorted(r_z, r_x - np.log(gamma), side="right")
    return counts / r_z.size


def mean_out_probability(*, probabilities: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """P_OUT(x): the mean true-label probability over the shadows that did not train on x."""
    out = ~keep
    counts = out.sum(axis=1)
    sums = np.where(out, probabilities, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    if np.isnan(mean).any():  # a record no shadow left out: use the average over records
        mean[np.isnan(mean)] = np.nanmean(mean) if not np.isnan(mean).all() else 0.5
    return mean


def calibrate_a(*, true_probs: np.ndarray, keep: np.ndarray, z_index: np.ndarray, gamma: float = 1.0) -> float:
    """Choose a on the shadows: shadow 0 as the target, the others as references (pool AUC)."""
    if keep.shape[1] < 3:
        return 0.5
    pseudo_member = keep[:, 0]
    p_target = true_probs[:, 0]
    p_out = mean_out_probability(probabilities=true_probs[:, 1:], keep=keep[:, 1:])
    best, best_auc = A_GRID[0], -np.inf
    for a in A_GRID:
        scores = rmia_scores(
            p_target_x=p_target, p_out_x=p_out, p_target_z=p_target[z_index], p_out_z=p_out[z_index], a=a, gamma=gamma
        )
        value = auc_score(member_scores=scores[pseudo_member], nonmember_scores=scores[~pseudo_member])
        if value > best_auc + 1e-12:
            best, best_auc = a, value
    return float(best)


@register_attack
class RmiaAttack(Attack):
    """RMIA offline (Zarifzadeh et al. 2024): pairwise likelihood ratios against a population."""

    name = "rmia"
    family = "reference"
    threat_model = "probability vector and true label; reference models trained without each record; population data"
    description = "Fraction of population records whose likelihood ratio the record's own ratio dominates (offline RMIA)."
    reference = "Zarifzadeh et al. 2024, ICML (RMIA)"
    needs = frozenset({"scores", "shadow_models"})
    gamma = 1.0

    def score(self, context: AttackContext) -> AttackScores:
        evidence: ShadowEvidence | None = context.shadows
        if evidence is None:
            raise RuntimeError("rmia needs reference models")
        rows = np.arange(evidence.labels.shape[0])
        true_probs = np.exp(evidence.log_probs[rows, :, evidence.labels])  # (N, K)
        p_target = np.exp(evidence.target_log_probs[rows, evidence.labels])
        p_out = mean_out_probability(probabilities=true_probs, keep=evidence.keep)
        z_index = evidence.population_index if evidence.n_population else np.arange(evidence.n_audit)
        a = calibrate_a(true_probs=true_probs, keep=evidence.keep, z_index=z_index, gamma=self.gamma)
        audit = np.arange(evidence.n_audit)
        scores = rmia_scores(
            p_target_x=p_target[audit],
            p_out_x=p_out[audit],
            p_target_z=p_target[z_index],
            p_out_z=p_out[z_index],
            a=a,
            gamma=self.gamma,
        )
        member, nonmember = evidence.split(scores)
        return AttackScores(
            member_scores=member,
            nonmember_scores=nonmember,
            parameters={
                "n_shadow_models": evidence.n_shadows,
                "a": a,
                "a_chosen_by": "pseudo-target AUC on shadow 0 over a in 0, 0.1, ..., 1",
                "gamma": self.gamma,
                "population": "population records" if evidence.n_population else "audit records (membership unused)",
                "n_population": int(z_index.size),
            },
        )
