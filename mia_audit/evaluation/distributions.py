"""Aggregated member vs non-member distributions of per-record signals, for the report's charts.

Li, Li & Ribeiro (CODASPY'21, §9.5 and Figure 7) show the distribution of the probability of the correct
label for members and non-members as the picture that explains both the attacks and the defenses; the loss
−log p_y is the same signal on a log scale, where the low-loss tail of memorised members is visible.

Privacy: the bin edges are fixed in advance and never derived from the data (data-derived edges such as the
maximum loss would reveal one record's value), and only counts per bin and side are kept.
"""

from __future__ import annotations

import numpy as np

from mia_audit.results import Histogram
from mia_audit.data.signals import Signals

# 20 equal bins on [0, 1], as in Li et al.'s Figure 7.
PROBABILITY_EDGES: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 21), 10).tolist())
# Two bins per decade from 1e-12 to 1e3: memorised members reach losses of 1e-10 in float64.
LOSS_EDGES: tuple[float, ...] = tuple(float(10.0**exponent) for exponent in np.arange(-12.0, 3.01, 0.5))


def fixed_bin_counts(*, values: np.ndarray, edges: tuple[float, ...]) -> list[int]:
    """Counts per bin [e_i, e_{i+1}) (the last bin closed); values beyond the edges go to the end bins."""
    edges_array = np.asarray(edges, dtype=np.float64)
    finite = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=edges_array[0], posinf=edges_array[-1])
    index = np.searchsorted(edges_array, finite, side="right") - 1
    index = np.clip(index, 0, len(edges_array) - 2)
    return np.bincount(index, minlength=len(edges_array) - 1).astype(int).tolist()


def _histogram(*, signal: str, label: str, scale: str, edges: tuple[float, ...], members: np.ndarray,
               nonmembers: np.ndarray) -> Histogram:
    return Histogram(
        signal=signal,
        label=label,
        scale=scale,
        edges=list(edges),
        members=fixed_bin_counts(values=members, edges=edges),
        nonmembers=fixed_bin_counts(values=nonmembers, edges=edges),
    )


def signal_distributions(*, members: Signals, nonmembers: Signals) -> dict[str, Histogram]:
    """Histograms of the loss and of the true-label probability for both sides of the audit."""
    return {
        "loss": _histogram(
            signal="loss",
            label="Cross-entropy loss −log p_y (log scale)",
            scale="log",
            edges=LOSS_EDGES,
            members=members.loss,
            nonmembers=nonmembers.loss,
        ),
        "true_label_probability": _histogram(
            signal="true_label_probability",
            label="Probability of the true label p_y",
            scale="linear",
            edges=PROBABILITY_EDGES,
            members=members.true_label_probability,
            nonmembers=nonmembers.true_label_probability,
        ),
    }
