"""Statistics shared by the audit, the slices and the subjects: ROC, AUC, TPR at FPR, intervals."""
