"""Membership-inference attacks, one module per family, all in one registry."""

from mia_audit.attacks import label_only, metric  # noqa: F401  (registration side effects)
from mia_audit.attacks import shadow_classifier, lira, rmia  # noqa: F401,I001  (step 5: shadow/reference attacks)
from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack, registered_attacks

__all__ = ["Attack", "AttackContext", "AttackScores", "register_attack", "registered_attacks"]
