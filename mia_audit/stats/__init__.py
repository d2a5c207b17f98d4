"""Statistics shared by the audit, the slices and the subjects: ROC, AUC, TPR at FPR, intervals.

One module per job, re-exported here as the package's public API:

- ``roc``: the ROC over all thresholds, Mann-Whitney AUC, TPR at FPR α (the one internal `TprAtFpr`);
- ``evidence``: the FPR levels, evidence flags and the false-positive budget at α;
- ``intervals``: Clopper-Pearson (one implementation), percentile and Wald intervals;
- ``bootstrap``: the stratified percentile bootstrap;
- ``crossfit``: cross-fitted balanced accuracy and the empirical ε lower bound;
- ``score_metrics``: all of the above for one attack's scores (`evaluate_scores`);
- ``level_counts``: the per-slice statistics from counts per score level (DeLong, Mann-Whitney, bands, BH).
"""

from mia_audit.stats.bootstrap import BootstrapCI, bootstrap_ci
from mia_audit.stats.crossfit import cross_fitted_balanced_accuracy, epsilon_lower_bound
from mia_audit.stats.evidence import FPR_LEVELS, evidence_flag, max_false_positives
from mia_audit.stats.intervals import clopper_pearson
from mia_audit.stats.roc import RocCurve, TprAtFpr, auc_score, roc_curve, score_levels, tpr_at_fpr
from mia_audit.stats.score_metrics import ScoreMetrics, evaluate_scores

__all__ = [
    "FPR_LEVELS",
    "BootstrapCI",
    "RocCurve",
    "ScoreMetrics",
    "TprAtFpr",
    "auc_score",
    "bootstrap_ci",
    "clopper_pearson",
    "cross_fitted_balanced_accuracy",
    "epsilon_lower_bound",
    "evaluate_scores",
    "evidence_flag",
    "max_false_positives",
    "roc_curve",
    "score_levels",
    "tpr_at_fpr",
]
