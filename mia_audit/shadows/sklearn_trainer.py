"""Shadow models from a scikit-learn recipe, trained in parallel processes (joblib, `n_jobs` workers).

Used when the audited model's graph cannot be retrained (a tree ensemble exported by skl2onnx) or when
the recipe asks for it. Each shadow is a fresh clone of the recipe's estimator fitted on its keep-mask
column; its `predict_proba` on every record is mapped onto the model's class columns (a class missing
from a shadow's training half gets probability 0).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from mia_audit.seeds import SeedStreams
from mia_audit.shadows.recipe import SklearnRecipe, resolve_estimator

__all__ = ["build_estimator", "train_sklearn_shadows"]


def build_estimator(*, recipe: SklearnRecipe, seed: int) -> Any:
    """A fresh estimator from the recipe; `random_state` is seeded per shadow unless the recipe sets it."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cls = resolve_estimator(recipe.estimator)
    params = dict(recipe.params)
    if "random_state" in inspect.signature(cls).parameters and "random_state" not in params:
        params["random_state"] = seed
    estimator = cls(**params)
    return make_pipeline(StandardScaler(), estimator) if recipe.standardize else estimator


def _fit_one(recipe: SklearnRecipe, seed: int, x: np.ndarray, y: np.ndarray, rows: np.ndarray, n_classes: int) -> np.ndarray:
    import warnings

    estimator = build_estimator(recipe=recipe, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter from a recipe's max_iter
        estimator.fit(x[rows], y[rows])
        proba = estimator.predict_proba(x)
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    full = np.zeros((x.shape[0], n_classes), dtype=np.float64)
    full[:, classes] = proba
    return full


def train_sklearn_shadows(
    *, recipe: SklearnRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray, n_classes: int, seeds: SeedStreams,
    progress: Any = None,
) -> np.ndarray:
    """(N, K, n_classes) probabilities of K shadows (one per keep-mask column) on every record."""
    from joblib import Parallel, delayed

    flat = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    n_models = keep.shape[1]
    jobs = (
        delayed(_fit_one)(
            recipe, seeds.integer("shadow", k, bits=32), flat, labels, np.flatnonzero(keep[:, k]), n_classes
        )
        for k in range(n_models)
    )
    out = np.empty((flat.shape[0], n_models, n_classes), dtype=np.float64)
    runner = Parallel(n_jobs=min(recipe.n_jobs, n_models), return_as="generator")
    for k, proba in enumerate(runner(jobs)):
        out[:, k, :] = proba
        if progress is not None:
            progress.advance(1)
    return out
