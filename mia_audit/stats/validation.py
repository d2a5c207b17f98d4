"""Input checks shared by the statistics: score arrays, FPR levels, confidence levels, splittable samples."""

from __future__ import annotations

import numpy as np

__all__ = ["as_scores", "check_alpha", "check_confidence", "check_splittable"]


def as_scores(values, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array; reject empty input and NaN (+/-inf are allowed)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN scores")
    return arr


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return alpha


def check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return confidence


def check_splittable(*, members: np.ndarray, nonmembers: np.ndarray) -> None:
    if members.size < 2 or nonmembers.size < 2:
        raise ValueError(
            "cross-fitting needs at least 2 members and 2 non-members "
            f"(got {members.size} and {nonmembers.size})"
        )
