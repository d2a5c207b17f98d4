"""Defenses against membership inference: one registry, output-level and training-time kinds."""

from mia_audit.defenses import output, training  # noqa: F401  (registration side effects)
from mia_audit.defenses.base import (
    Defense,
    DefenseVariant,
    OutputDefense,
    TrainingDefense,
    TrainingPlan,
    parse_defenses,
    register_defense,
    registered_defenses,
)

__all__ = [
    "Defense",
    "DefenseVariant",
    "OutputDefense",
    "TrainingDefense",
    "TrainingPlan",
    "parse_defenses",
    "register_defense",
    "registered_defenses",
]
