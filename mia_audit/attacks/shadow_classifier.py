"""Shadow-model attacks with a trained attack classifier: Shokri et al. 2017 and ML-Leaks (Salem et al. 2019).

Training data for the attack classifier are the shadows' outputs: for each pool record i and shadow k,
the shadow's output on i labelled IN if k trained on i (keep-mask) and OUT otherwise. The evaluation
data are the target model's outputs on the audit records, labelled by the audit's membership.

Record overlap: the pool contains the audit records themselves, so a classifier trained on the shadows'
outputs for record i and evaluated on the target's output for the same record i would be evaluated on a
record it has seen. The audit records are therefore split into two seeded random folds (cross-fitting):
the classifier that scores fold A is trained only on shadow outputs of fold-B records and population
records, and vice versa. Every audit record is scored by a classifier that never saw that record, in
any shadow's output. Only the shadows' keep-mask labels are used in training, never the target's
membership.

Attack classifier: scikit-learn's HistGradientBoostingClassifier (100 iterations, seeded) on the log of
the probability features (a monotone transform, irrelevant to trees, that keeps resolution near 1),
rather than the papers' small neural networks: the same inputs with an off-the-shelf classifier that
needs no tuning.
"""

from __future__ import annotations

import numpy as np

from mia_audit.attacks.base import Attack, AttackContext, AttackScores, register_attack
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.evidence import LOGP_FLOOR, ShadowEvidence

__all__ = ["cross_fit_folds"]

#: Largest attack-classifier training set (rows are subsampled, seeded, above it).
MAX_TRAIN_ROWS = 200_000
#: Fewest training rows (and both labels present) for a per-class classifier; else the global one is used.
MIN_CLASS_ROWS = 40


def cross_fit_folds(*, n_audit: int, rng: np.random.Generator) -> np.ndarray:
    """Fold (0 or 1) of every audit record: a random half each."""
    fold = np.zeros(n_audit, dtype=np.int64)
    fold[rng.permutation(n_audit)[n_audit // 2 :]] = 1
    return fold


def _classifier(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)


def _fit_and_score(*, x: np.ndarray, y: np.ndarray, x_eval: np.ndarray, seeds: SeedStreams) -> np.ndarray:
    if x.shape[0] > MAX_TRAIN_ROWS:
        pick = seeds.numpy("subsample").choice(x.shape[0], MAX_TRAIN_ROWS, replace=False)
        x, y = x[pick], y[pick]
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: these fits are small, and on a busy machine threads waiting for each other made
    # them several times slower than one thread.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = _classifier(seeds.integer("classifier", bits=32)).fit(x, y)
        return model.predict_proba(x_eval)[:, list(model.classes_).index(True)]


class _TrainedAttack(Attack):
    needs = frozenset({"scores", "shadow_models"})
    per_class: bool = False

    @staticmethod
    def features(log_probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, context: AttackContext) -> AttackScores:
        evidence: ShadowEvidence | None = context.shadows
        if evidence is None:
            raise RuntimeError(f"{self.name} needs shadow models")
        n_audit = evidence.n_audit
        fold = cross_fit_folds(n_audit=n_audit, rng=context.seeds.numpy("folds"))
        logp = np.maximum(evidence.log_probs, LOGP_FLOOR)
        target = np.maximum(evidence.target_log_probs, LOGP_FLOOR)
        scores = np.empty(n_audit, dtype=np.float64)
        n_fallback = 0
        for f in (0, 1):
            train_rows = np.concatenate([np.flatnonzero(fold != f), evidence.population_index])
            eval_rows = np.flatnonzero(fold == f)
            k = evidence.n_shadows

            def training_set(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                x = self.features(logp[rows].reshape(rows.size * k, -1))
                return x, evidence.keep[rows].reshape(-1)

            fold_seeds = context.seeds.child("fold", f)
            x_all, y_all = training_set(train_rows)
            if not self.per_class:
                scores[eval_rows] = _fit_and_score(x=x_all, y=y_all, x_eval=self.features(target[eval_rows]), seeds=fold_seeds)
                continue
            global_scores: np.ndarray | None = None
            for c in np.unique(evidence.labels[eval_rows]):
                rows_c = train_rows[evidence.labels[train_rows] == c]
                eval_c = eval_rows[evidence.labels[eval_rows] == c]
                x_c, y_c = training_set(rows_c)
                if y_c.size >= MIN_CLASS_ROWS and y_c.any() and not y_c.all():
                    scores[eval_c] = _fit_and_score(x=x_c, y=y_c, x_eval=self.features(target[eval_c]), seeds=fold_seeds.child("class", int(c)))
                else:  # too few shadow records of this class: the class-agnostic classifier scores them
                    if global_scores is None:
                        global_scores = _fit_and_score(
                            x=x_all, y=y_all, x_eval=self.features(target[eval_rows]), seeds=fold_seeds
                        )
                    scores[eval_c] = global_scores[np.searchsorted(eval_rows, eval_c)]
                    n_fallback += eval_c.size
        member, nonmember = evidence.split(scores)
        parameters: dict = {
            "n_shadow_models": evidence.n_shadows,
            "attack_classifier": "HistGradientBoostingClassifier",
            "cross_fitting_folds": 2,
        }
        if self.per_class:
            parameters["records_scored_by_global_classifier"] = n_fallback
        return AttackScores(member_scores=member, nonmember_scores=nonmember, parameters=parameters)


@register_attack
class ShadowClassVectorAttack(_TrainedAttack):
    """Shokri et al. 2017 (IEEE S&P): one attack classifier per class on shadow probability vectors."""

    name = "shadow_class_vector"
    family = "shadow"
    threat_model = "probability vector and true label; shadow models of the same architecture"
    description = "Per-class attack classifiers trained on shadow models' probability vectors (IN vs OUT)."
    reference = "Shokri et al. 2017, IEEE S&P"
    per_class = True

    @staticmethod
    def features(log_probs: np.ndarray) -> np.ndarray:
        return log_probs


@register_attack
class ShadowTop3Attack(_TrainedAttack):
    """Salem et al. 2019 (ML-Leaks, NDSS): one global attack classifier on the sorted top-3 probabilities."""

    name = "shadow_top3"
    family = "shadow"
    threat_model = "probability vector; shadow models of the same architecture"
    description = "One attack classifier on the three highest probabilities, sorted, trained on shadow models."
    reference = "Salem et al. 2019, NDSS (ML-Leaks)"

    @staticmethod
    def features(log_probs: np.ndarray) -> np.ndarray:
        top = min(3, log_probs.shape[1])
        return -np.sort(-log_probs, axis=1)[:, :top]
