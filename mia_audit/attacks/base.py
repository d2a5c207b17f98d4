"""Attack base class, the context attacks read, and the attack registry.

An attack declares what it needs (`labels`, `scores`, `queries`, later `shadow_models`) and turns the
context into one membership score per record, oriented so that higher = more likely member. Metrics are
computed by the workflow from those scores, never by the attack itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mia_audit.data.signals import Signals
from mia_audit.seeds import SeedStreams

if TYPE_CHECKING:
    from mia_audit.shadows.evidence import ShadowEvidence

# What the audit can offer an attack:
#   labels   the model's predicted labels (any deployment exposes these)
#   scores   the model's probability / logit vectors (not when the deployment exposes labels only)
#   queries  the model can be queried again on new, perturbed inputs
#   shadow_models  shadow / reference models of the same architecture were trained (workflow step 5)
CAPABILITIES = ("labels", "scores", "queries", "shadow_models")


@dataclass(frozen=True)
class AttackContext:
    """What an attack may read: per-record signals for both sides, the inputs, a label oracle, and its own
    seed streams (`seeds` is namespaced by the attack's name, so its random choices never depend on which
    other attacks run)."""

    members: Signals
    nonmembers: Signals
    member_features: np.ndarray
    nonmember_features: np.ndarray
    capabilities: frozenset[str]
    seeds: SeedStreams
    predict_labels: Callable[[np.ndarray], np.ndarray] | None = None
    options: dict = field(default_factory=dict)
    shadows: "ShadowEvidence | None" = None


@dataclass(frozen=True)
class AttackScores:
    member_scores: np.ndarray
    nonmember_scores: np.ndarray
    parameters: dict = field(default_factory=dict)


class Attack(ABC):
    """One membership-inference attack. Subclasses are registered with `@register_attack`."""

    name: ClassVar[str]
    family: ClassVar[str]
    threat_model: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    needs: ClassVar[frozenset[str]]

    @classmethod
    def missing(cls, capabilities: frozenset[str]) -> frozenset[str]:
        return cls.needs - capabilities

    @abstractmethod
    def score(self, context: AttackContext) -> AttackScores:
        """Membership scores for every member and non-member (higher = more likely member)."""


_REGISTRY: dict[str, type[Attack]] = {}


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator adding an attack to the registry under its `name`."""
    if cls.name in _REGISTRY:
        raise ValueError(f"attack '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_attacks() -> dict[str, type[Attack]]:
    return dict(_REGISTRY)
