"""Likelihood-ratio attack, LiRA (Carlini et al. 2022, "Membership Inference Attacks From First
Principles", IEEE S&P), online and offline, on the logit-scaled confidence φ = log p_y − log Σ_{i≠y} p_i.

For each audit record, the φ values of the shadows that trained on it (IN) and of those that did not
(OUT) are summarised by Gaussians: μ = the median over those shadows; σ = the per-example standard
deviation when there are at least 64 shadows, otherwise one global σ over all records (the residuals
around each record's median) — the paper's advice for few shadows. A record with no IN (or no OUT)
shadow gets the mean of the other records' μ and σ (TensorFlow Privacy's `compute_score_lira`
convention, whose published test vectors these functions reproduce).

- online:  log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)
- offline: the one-sided test of Carlini et al. §VI-C, Λ = Φ((φ − μ_out) / σ_out), reported as the
  z-score (φ − μ_out) / σ_out itself — the same ranking as Φ(z) without Φ's saturation at 1 for z > 8,
  which would tie exactly the most exposed records.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack
from mia_audit.shadows.evidence import PHI_BOUND, ShadowEvidence

__all__ = ["GLOBAL_VARIANCE_BELOW", "gaussian_fit", "lira_offline_scores", "lira_online_scores", "normal_logpdf"]

#: Below this many shadow models LiRA uses one global variance (Carlini et al. 2022, §VI-A).
GLOBAL_VARIANCE_BELOW = 64

Variance = Literal["per_example", "global"]


def normal_logpdf(*, x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log N(x; mean, std²), with std + 1e-30 as TensorFlow Privacy does (σ = 0 stays finite)."""
    s = np.asarray(std, dtype=np.float64) + 1e-30
    z = (np.asarray(x, dtype=np.float64) - mean) / s
    return -0.5 * z * z - np.log(s) - 0.5 * np.log(2 * np.pi)


def _fill_missing(values: np.ndarray) -> np.ndarray:
    """Records without any shadow of the kind get the mean over records that have one."""
    missing = np.isnan(values)
    if missing.any() and not missing.all():
        values = values.copy()
        values[missing] = np.mean(values[~missing])
    return values


def gaussian_fit(
    *, stats: np.ndarray, mask: np.ndarray, variance: Variance, average: Literal["median", "mean"] = "median"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-record μ and σ of `stats` (records × shadows) over the shadows where `mask` is True."""
    values = np.where(mask, np.asarray(stats, dtype=np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: records without such shadows
        centre = np.nanmedian(values, axis=1) if average == "median" else np.nanmean(values, axis=1)
        centre = _fill_missing(centre)
        if variance == "global":
            residuals = values - centre[:, None]
            std = np.full(centre.shape, np.nanstd(residuals))
        else:
            std = _fill_missing(np.nanstd(values, axis=1))
    return centre, std


def lira_online_scores(*, target: np.ndarray, stats: np.ndarray, keep: np.ndarray, variance: Variance) -> np.ndarray:
    """Online LiRA: log-likelihood ratio of the target's φ under the IN vs the OUT Gaussian."""
    mu_in, sd_in = gaussian_fit(stats=stats, mask=keep, variance=variance)
    mu_out, sd_out = gaussian_fit(stats=stats, mask=~keep, variance=variance)
    return normal_logpdf(x=target, mean=mu_in, std=sd_in) - normal_logpdf(x=target, mean=mu_out, std=sd_out)


def lira_offline_scores(*, target: np.ndarray, stats: np.ndarray, keep: np.ndarray, variance: Variance) -> np.ndarray:
    """Offline LiRA: (φ − μ_out) / σ_out, the one-sided test statistic against the OUT Gaussian."""
    mu_out, sd_out = gaussian_fit(stats=stats, mask=~keep, variance=variance)
    return (np.asarray(target, dtype=np.float64) - mu_out) / (sd_out + 1e-30)


def _variance_for(n_shadows: int) -> Variance:
    return "global" if n_shadows < GLOBAL_VARIANCE_BELOW else "per_example"


class _LiraAttack(Attack):
    family = "shadow"
    needs = frozenset({"scores", "shadow_models"})
    mode: str

    def score(self, context: AttackContext) -> AttackScores:
        evidence: ShadowEvidence | None = context.shadows
        if evidence is None:
            raise RuntimeError(f"{self.name} needs shadow models")
        # The Gaussians are fitted on every pool record's shadows (population included) and the global σ
        # pools all their residuals: only which shadow trained on which record is used, never the
        # target's membership labels.
        variance = _variance_for(evidence.n_shadows)
        stats = np.clip(evidence.phi, -PHI_BOUND, PHI_BOUND)
        target = np.clip(evidence.target_phi, -PHI_BOUND, PHI_BOUND)
        fn = lira_online_scores if self.mode == "online" else lira_offline_scores
        scores = fn(target=target, stats=stats, keep=evidence.keep, variance=variance)[: evidence.n_audit]
        member, nonmember = evidence.split(scores)
        return AttackScores(
            member_scores=member,
            nonmember_scores=nonmember,
            parameters={
                "n_shadow_models": evidence.n_shadows,
                "statistic": "logit-scaled confidence",
                "mean": "median over shadows",
                "variance": variance,
                "test": self.mode,
            },
        )


@register_attack
class LiraOnlineAttack(_LiraAttack):
    """LiRA online (Carlini et al. 2022): IN and OUT Gaussians of φ per record, likelihood ratio."""

    name = "lira_online"
    threat_model = "probability vector and true label; shadow models trained with and without each record"
    description = "Per-record likelihood ratio of the model's logit-scaled confidence under shadows trained with vs without the record."
    reference = "Carlini et al. 2022, IEEE S&P (LiRA)"
    mode = "online"


@register_attack
class LiraOfflineAttack(_LiraAttack):
    """LiRA offline (Carlini et al. 2022): one-sided test against the OUT Gaussian of φ only."""

    name = "lira_offline"
    threat_model = "probability vector and true label; shadow models trained without each record"
    description = "One-sided test of the model's logit-scaled confidence against shadows that did not train on the record."
    reference = "Carlini et al. 2022, IEEE S&P (LiRA, offline)"
    mode = "offline"
