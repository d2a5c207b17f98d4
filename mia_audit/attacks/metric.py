"""Attacks that threshold one per-record signal of the target model (no extra models).

Each is declared by the signal it reads and the sign that makes higher = more likely member.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack


class SignalThresholdAttack(Attack):
    """Threshold on `signal` × `orientation`; the ROC sweeps every threshold."""

    signal: ClassVar[str]
    orientation: ClassVar[float] = 1.0

    def score(self, context: AttackContext) -> AttackScores:
        member = self.orientation * np.asarray(getattr(context.members, self.signal), dtype=np.float64)
        nonmember = self.orientation * np.asarray(getattr(context.nonmembers, self.signal), dtype=np.float64)
        return AttackScores(member_scores=member, nonmember_scores=nonmember)


@register_attack
class BaselineAttack(SignalThresholdAttack):
    """Yeom et al. 2018 ("Privacy Risk in Machine Learning", CSF): member iff correctly classified.

    Needs labels only; its advantage is the generalization gap g and its AUC (1 + g)/2. Confidence
    masking cannot remove it (Li, Li & Ribeiro 2021, §4.1).
    """

    name = "baseline"
    family = "label-only"
    threat_model = "predicted labels only"
    description = "Flags a record as a member when the model classifies it correctly."
    reference = "Yeom et al. 2018, CSF"
    needs = frozenset({"labels"})
    signal = "correct"


@register_attack
class Top1ConfidenceAttack(SignalThresholdAttack):
    """Salem et al. 2019 (ML-Leaks, NDSS) Global-TopOne: threshold on the highest class probability."""

    name = "top1_confidence"
    family = "metric"
    threat_model = "probability vector"
    description = "Threshold on the model's top-1 confidence max p."
    reference = "Salem et al. 2019, NDSS (ML-Leaks)"
    needs = frozenset({"scores"})
    signal = "top1_confidence"


@register_attack
class TrueLabelProbabilityAttack(SignalThresholdAttack):
    """Li, Li & Ribeiro 2021 (CODASPY) Global-Probability: threshold on the true label's probability p_y."""

    name = "true_label_probability"
    family = "metric"
    threat_model = "probability vector and true label"
    description = "Threshold on the probability the model gives the true label, p_y."
    reference = "Li, Li & Ribeiro 2021, CODASPY"
    needs = frozenset({"scores"})
    signal = "true_label_probability"


@register_attack
class LossAttack(SignalThresholdAttack):
    """Yeom et al. 2018 Global-Loss: members have lower cross-entropy loss; score = −ℓ."""

    name = "loss"
    family = "metric"
    threat_model = "probability vector and true label"
    description = "Threshold on the cross-entropy loss −log p_y (lower loss = member)."
    reference = "Yeom et al. 2018, CSF"
    needs = frozenset({"scores"})
    signal = "loss"
    orientation = -1.0


@register_attack
class EntropyAttack(SignalThresholdAttack):
    """Song & Mittal 2021 (USENIX Security): members get lower prediction entropy; score = −H(p)."""

    name = "entropy"
    family = "metric"
    threat_model = "probability vector"
    description = "Threshold on the prediction entropy H(p) (lower entropy = member)."
    reference = "Song & Mittal 2021, USENIX Security"
    needs = frozenset({"scores"})
    signal = "entropy"
    orientation = -1.0


@register_attack
class ModifiedEntropyAttack(SignalThresholdAttack):
    """Song & Mittal 2021: modified entropy, which uses the true label; score = −Mentr."""

    name = "modified_entropy"
    family = "metric"
    threat_model = "probability vector and true label"
    description = "Threshold on Song & Mittal's modified entropy (lower = member)."
    reference = "Song & Mittal 2021, USENIX Security"
    needs = frozenset({"scores"})
    signal = "modified_entropy"
    orientation = -1.0
