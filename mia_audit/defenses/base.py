"""Defense base classes, the `--defenses` spec language, and the defense registry.

Two kinds (taxonomy of seeds/000, DESIGN §4.4):

- `OutputDefense` wraps the deployed model's outputs (no retraining): confidence masking.
- `TrainingDefense` changes how the architecture is retrained. Training defenses are declarative: each one
  writes its settings into a `TrainingPlan`, and one trainer reads the plan. Combinations (`a+b`, as in
  seeds/002) simply apply several defenses to the same plan.

Spec language: comma-separated variants, each a `+`-joined list of defenses, each `name[:args]`, where args
is either one positional value (`label_smoothing:0.1`, `top_k:3`) or `key=value` pairs separated by `;`
(`dp_sgd:epsilon=4;delta=1e-5`). Example: `label_smoothing:0.1,dropout:0.5,mixup,dp_sgd:epsilon=4,top_k:3`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from mia_audit.errors import InputError


class DefenseParameters(BaseModel):
    """Base for each defense's validated parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParameters(DefenseParameters):
    pass


@dataclass
class TrainingPlan:
    """Everything a training-time defense can change; read by `mia_audit.defenses.trainer`."""

    weight_decay: float = 0.0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    mixup_alpha: float | None = None
    mmd_weight: float = 0.0
    relaxloss_alpha: float | None = None
    early_stopping_patience: int | None = None
    adversarial_weight: float = 0.0
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0
    distillation_temperature: float | None = None
    prune_fraction: float = 0.0
    needs_validation: bool = False
    needs_reference: bool = False
    notes: list[str] = field(default_factory=list)


class Defense(ABC):
    """One registered defense; instances carry validated parameters."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "training" or "output"
    title: ClassVar[str]
    reference: ClassVar[str]
    parameters_model: ClassVar[type[DefenseParameters]] = NoParameters
    positional: ClassVar[str | None] = None  # the field a bare `name:value` sets

    def __init__(self, parameters: DefenseParameters) -> None:
        self.parameters = parameters

    def describe(self) -> str:
        values = self.parameters.model_dump()
        if not values:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={v}" for k, v in values.items()) + ")"


class OutputDefense(Defense):
    """Transforms the probability vectors the deployed model returns (rows of `probabilities`)."""

    kind = "output"

    @abstractmethod
    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        """(n, k) probabilities in → (n, k) what the attacker sees (float64)."""


class TrainingDefense(Defense):
    """Changes the training of a retrained variant by configuring the shared `TrainingPlan`."""

    kind = "training"

    @abstractmethod
    def configure(self, plan: TrainingPlan) -> None:
        """Write this defense's settings into `plan`."""


_REGISTRY: dict[str, type[Defense]] = {}


def register_defense(cls: type[Defense]) -> type[Defense]:
    if cls.name in _REGISTRY:
        raise ValueError(f"defense '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_defenses() -> dict[str, type[Defense]]:
    return dict(_REGISTRY)


@dataclass(frozen=True)
class DefenseVariant:
    """One row of the comparison: a combination of defenses applied together."""

    label: str
    defenses: tuple[Defense, ...]

    @property
    def training(self) -> tuple[TrainingDefense, ...]:
        return tuple(d for d in self.defenses if isinstance(d, TrainingDefense))

    @property
    def output(self) -> tuple[OutputDefense, ...]:
        return tuple(d for d in self.defenses if isinstance(d, OutputDefense))

    def plan(self) -> TrainingPlan:
        plan = TrainingPlan()
        for defense in self.training:
            defense.configure(plan)
        return plan

    def apply_outputs(self, probabilities: np.ndarray) -> np.ndarray:
        for defense in self.output:
            probabilities = defense.transform(probabilities)
        return probabilities


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_defense(text: str) -> Defense:
    """`name[:value | :k=v;k=v]` → a validated defense instance (InputError naming the spec otherwise)."""
    name, _, args = text.strip().partition(":")
    name = name.strip()
    registry = registered_defenses()
    if name not in registry:
        raise InputError(f"--defenses: unknown defense '{name}'; available: {', '.join(sorted(registry))}")
    cls = registry[name]
    values: dict[str, Any] = {}
    if args.strip():
        if "=" in args:
            for pair in args.split(";"):
                key, sep, value = pair.partition("=")
                if not sep:
                    raise InputError(f"--defenses: '{text}': expected key=value pairs separated by ';'")
                values[key.strip()] = _parse_value(value.strip())
        elif cls.positional is None:
            raise InputError(f"--defenses: '{name}' takes no value (got '{args}')")
        else:
            values[cls.positional] = _parse_value(args.strip())
    try:
        parameters = cls.parameters_model(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or name
        raise InputError(f"--defenses: '{text}': {where}: {first['msg']}") from None
    return cls(parameters)


def parse_defenses(spec: str) -> list[DefenseVariant]:
    """The whole `--defenses` value → variants in the order given (duplicates refused)."""
    variants: list[DefenseVariant] = []
    seen: set[str] = set()
    for chunk in spec.split(","):
        if not chunk.strip():
            continue
        defenses = tuple(parse_defense(part) for part in chunk.split("+"))
        names = [d.name for d in defenses]
        if len(set(names)) != len(names):
            raise InputError(f"--defenses: '{chunk.strip()}' names a defense twice")
        label = "+".join(d.describe() for d in defenses)
        if label in seen:
            raise InputError(f"--defenses: '{chunk.strip()}' is listed twice")
        seen.add(label)
        variants.append(DefenseVariant(label=label, defenses=defenses))
    if not variants:
        raise InputError("--defenses: no defense given")
    return variants
