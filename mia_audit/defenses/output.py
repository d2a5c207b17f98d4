"""Output-level defenses (confidence masking): transform what the deployed model returns, no retraining.

Li, Li & Ribeiro 2021 (seeds/003 §4.1) show masking cannot beat the baseline attack: it needs labels only,
so its advantage (the generalization gap) survives any masking that keeps the predicted label.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy.special import log_softmax

from mia_audit.defenses.base import DefenseParameters, OutputDefense, register_defense


class TopKParameters(DefenseParameters):
    k: int = Field(default=3, ge=1)


@register_defense
class TopK(OutputDefense):
    """Return only the k largest probabilities, renormalised to sum to 1 (Shokri et al. 2017 §VI;
    Azazoglu, seeds/002 top-3 masking). Ties keep the lowest class index, like argmax."""

    name = "top_k"
    title = "Top-k masking"
    reference = "Shokri et al. 2017, IEEE S&P §VI; seeds/002"
    parameters_model = TopKParameters
    positional = "k"

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        p = np.asarray(probabilities, dtype=np.float64)
        k = min(self.parameters.k, p.shape[1])
        order = np.argsort(-p, axis=1, kind="stable")[:, :k]
        masked = np.zeros_like(p)
        rows = np.arange(p.shape[0])[:, None]
        masked[rows, order] = p[rows, order]
        total = masked.sum(axis=1, keepdims=True)
        return np.divide(masked, total, out=np.full_like(masked, 1.0 / k), where=total > 0)


@register_defense
class LabelOnly(OutputDefense):
    """Return only the predicted label (a one-hot vector): the strongest confidence masking."""

    name = "label_only"
    title = "Label only"
    reference = "Choquette-Choo et al. 2021, ICML (label-only attacks still apply)"

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        p = np.asarray(probabilities, dtype=np.float64)
        onehot = np.zeros_like(p)
        onehot[np.arange(p.shape[0]), np.argmax(p, axis=1)] = 1.0
        return onehot


class RoundingParameters(DefenseParameters):
    decimals: int = Field(default=2, ge=0, le=15)


@register_defense
class Rounding(OutputDefense):
    """Round each probability to d decimals (Fredrikson et al. 2015 confidence rounding)."""

    name = "rounding"
    title = "Rounding"
    reference = "Fredrikson et al. 2015, CCS"
    parameters_model = RoundingParameters
    positional = "decimals"

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(probabilities, dtype=np.float64), self.parameters.decimals)


class TemperatureParameters(DefenseParameters):
    temperature: float = Field(default=2.0, gt=0)


@register_defense
class Temperature(OutputDefense):
    """Softmax at temperature T of the model's log-probabilities (= its logits up to a constant);
    T > 1 flattens the confidences, the predicted label is unchanged (Hinton et al. 2015 scaling)."""

    name = "temperature"
    title = "Temperature scaling"
    reference = "Hinton et al. 2015; Guo et al. 2017, ICML"
    parameters_model = TemperatureParameters
    positional = "temperature"

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            logp = np.log(np.asarray(probabilities, dtype=np.float64))
        logp = np.maximum(logp, -745.0)  # keep exact zeros finite so their order is kept
        return np.exp(log_softmax(logp / self.parameters.temperature, axis=1))
