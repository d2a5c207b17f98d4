"""Label-only attack by robustness to input noise (Choquette-Choo et al. 2021, ICML,
"Label-Only Membership Inference Attacks", the data-augmentation / noise variant).

Members tend to sit in stable regions of the decision function: the prediction stays correct under
small perturbations more often than for non-members. Each record is queried K times with Gaussian noise
whose scale is `noise_scale` × that feature's standard deviation over the audit pool; the score is the
fraction of the K noisy queries still classified correctly (K + 1 possible values, ties are expected).
"""

from __future__ import annotations

import numpy as np

from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack


def _feature_spread(features: np.ndarray) -> np.ndarray:
    spread = features.std(axis=0)
    # A constant feature gets no noise rather than a degenerate zero-width one elsewhere.
    return np.where(np.isfinite(spread), spread, 0.0)


@register_attack
class LabelOnlyNoiseAttack(Attack):
    """Fraction of K Gaussian-perturbed queries that keep the correct label (Choquette-Choo et al. 2021)."""

    name = "label_only_noise"
    family = "label-only"
    threat_model = "predicted labels only, repeated queries"
    description = "Queries each record K times with feature-scaled Gaussian noise; score = fraction still correct."
    reference = "Choquette-Choo et al. 2021, ICML"
    needs = frozenset({"labels", "queries"})

    def score(self, context: AttackContext) -> AttackScores:
        if context.predict_labels is None:
            raise RuntimeError("label_only_noise needs a label oracle")
        queries = int(context.options.get("queries", 16))
        noise_scale = float(context.options.get("noise_scale", 0.3))
        pool = np.concatenate([context.member_features, context.nonmember_features])
        sigma = noise_scale * _feature_spread(pool)
        labels = np.concatenate([context.members.labels, context.nonmembers.labels])
        rng = context.seeds.numpy("noise")
        still_correct = np.zeros(pool.shape[0], dtype=np.float64)
        for _ in range(queries):
            noisy = pool + rng.standard_normal(pool.shape) * sigma
            still_correct += context.predict_labels(noisy) == labels
        fraction = still_correct / queries
        n_members = context.member_features.shape[0]
        return AttackScores(
            member_scores=fraction[:n_members],
            nonmember_scores=fraction[n_members:],
            parameters={"queries": queries, "noise_scale": noise_scale},
        )
