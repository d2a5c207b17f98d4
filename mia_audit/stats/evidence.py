"""How much evidence a TPR at FPR α has: the reported FPR levels, the evidence flags, the false-positive budget.

With N non-members the smallest non-zero FPR is 1/N (DESIGN.md section 4.3), so TPR@α is ``not_estimable``
when N·α < 1 and ``low_evidence`` when N·α < 10 (fewer than ten false positives expected at the target);
Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022, argue for reporting
TPR at such low FPRs and for saying how many non-members back each figure.
"""

from __future__ import annotations

import math

from mia_audit.stats.validation import check_alpha

__all__ = ["FPR_LEVELS", "LOW_EVIDENCE", "NOT_ESTIMABLE", "OK", "evidence_flag", "max_false_positives"]

FPR_LEVELS: tuple[float, ...] = (0.001, 0.01, 0.1)

NOT_ESTIMABLE = "not_estimable"
LOW_EVIDENCE = "low_evidence"
OK = "ok"


def evidence_flag(*, n_nonmembers: int, alpha: float) -> str:
    """Whether TPR@alpha can be resolved with ``n_nonmembers`` non-members (DESIGN.md section 4.3).

    The smallest non-zero FPR is 1/N, so with N * alpha < 1 the target FPR cannot be resolved at all
    (``"not_estimable"``); with N * alpha < 10 fewer than ten false positives are expected at the
    target, and the number is ``"low_evidence"``. Otherwise ``"ok"``.
    """
    alpha = check_alpha(alpha)
    if n_nonmembers < 0:
        raise ValueError(f"n_nonmembers must be >= 0, got {n_nonmembers}")
    expected_false_positives = n_nonmembers * alpha
    slack = 1e-9 * max(1.0, expected_false_positives)  # 1000 * 0.001 must count as 1, not 0.999...
    if expected_false_positives < 1.0 - slack:
        return NOT_ESTIMABLE
    if expected_false_positives < 10.0 - slack:
        return LOW_EVIDENCE
    return OK


def max_false_positives(alpha: float, n_nonmembers: int) -> int:
    """Largest integer f with f / n_nonmembers <= alpha, in the same float arithmetic as ``RocCurve.fpr``."""
    f = int(math.floor(alpha * n_nonmembers))
    while f + 1 <= n_nonmembers and (f + 1) / n_nonmembers <= alpha:
        f += 1
    while f > 0 and f / n_nonmembers > alpha:
        f -= 1
    return f
