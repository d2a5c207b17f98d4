"""The shadow-model training recipe (`--shadow-recipe recipe.yaml`), validated with pydantic.

Everything is optional; an empty file means "retrain the model's own graph with the defaults".

```yaml
training:            # torch training of the model's own graph (or of `architecture` below)
  optimizer: adam    # adam | adamw | sgd
  lr: 0.001
  epochs: auto       # auto = train until the shadows reach the target's member accuracy and
                     #        median member loss (checked every `check_every` epochs), at most max_epochs
  max_epochs: 300
  batch_size: 64
  weight_decay: 0.0
  momentum: 0.9      # sgd only
sklearn:             # instead: a scikit-learn estimator (for graphs that cannot be trained, e.g. trees)
  estimator: RandomForestClassifier   # a class name from sklearn.ensemble / linear_model / tree /
  params: {n_estimators: 100}         #   neighbors / svm / naive_bayes / neural_network, or a dotted path
  standardize: false                  # put a StandardScaler in front
architecture:        # or: a fresh MLP / CNN instead of the model's own graph
  type: mlp          # mlp | cnn
  hidden: [256, 256]
  activation: relu
```

Defaults are calibrated rather than fixed: with `epochs: auto` the shadows are trained until they fit their
own training halves as well as the target fits its members (accuracy within 0.5 percentage points and a
median training loss no higher than the target's median member loss), so they match the target's
overfitting. A recipe overrides any of it.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mia_audit.errors import InputError

__all__ = [
    "ArchitectureRecipe",
    "ShadowRecipe",
    "SklearnRecipe",
    "TrainingRecipe",
    "load_recipe",
    "resolve_estimator",
]

#: scikit-learn modules a bare class name is looked up in (in this order).
SKLEARN_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.tree",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.naive_bayes",
    "sklearn.neural_network",
    "sklearn.discriminant_analysis",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingRecipe(_Strict):
    """Optimiser and schedule for torch shadow models (all shadows train with the same recipe)."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    epochs: int | Literal["auto"] = "auto"
    max_epochs: int = Field(default=300, ge=1, le=100_000)
    check_every: int = Field(default=5, ge=1)
    batch_size: int = Field(default=64, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    accuracy_tolerance: float = Field(default=0.005, ge=0, le=1)
    models_per_batch: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _positive_epochs(self) -> "TrainingRecipe":
        if isinstance(self.epochs, int) and self.epochs < 1:
            raise ValueError("epochs must be a positive integer or 'auto'")
        return self


class SklearnRecipe(_Strict):
    """A scikit-learn classifier with its hyper-parameters, trained once per shadow."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    standardize: bool = False
    n_jobs: int = Field(default=2, ge=1)


class ArchitectureRecipe(_Strict):
    """A fresh MLP or CNN to use instead of the model's own graph."""

    type: Literal["mlp", "cnn"]
    hidden: list[int] = Field(default_factory=lambda: [256])
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"
    channels: list[int] = Field(default_factory=lambda: [16, 32])
    kernel_size: int = Field(default=3, ge=1)
    standardize: bool = True


class ShadowRecipe(_Strict):
    training: TrainingRecipe = TrainingRecipe()
    sklearn: SklearnRecipe | None = None
    architecture: ArchitectureRecipe | None = None

    @model_validator(mode="after")
    def _one_model_source(self) -> "ShadowRecipe":
        if self.sklearn is not None and self.architecture is not None:
            raise ValueError("give either 'sklearn' or 'architecture', not both")
        return self


def resolve_estimator(name: str) -> type:
    """The scikit-learn classifier class a recipe names (bare class name or dotted sklearn path)."""
    from sklearn.base import ClassifierMixin

    candidates: list[tuple[str, str]] = []
    if "." in name:
        module, _, cls = name.rpartition(".")
        if not (module == "sklearn" or module.startswith("sklearn.")):
            raise ValueError(f"estimator '{name}' is not a scikit-learn class (only sklearn.* is allowed)")
        candidates.append((module, cls))
    else:
        candidates += [(module, name) for module in SKLEARN_MODULES]
    for module_name, cls_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, cls_name, None)
        if isinstance(cls, type):
            if not issubclass(cls, ClassifierMixin) or not hasattr(cls, "predict_proba"):
                raise ValueError(f"estimator '{name}' is not a scikit-learn classifier with predict_proba")
            return cls
    raise ValueError(f"estimator '{name}' not found in scikit-learn ({', '.join(SKLEARN_MODULES)})")


def load_recipe(path: Path) -> tuple[ShadowRecipe, str]:
    """Read and validate a recipe file; returns the recipe and the file's SHA-256. InputError on problems."""
    import yaml

    if not path.is_file():
        raise InputError(f"{path}: shadow recipe file not found")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw.decode("utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise InputError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a shadow recipe is a mapping with keys training, sklearn, architecture")
    try:
        recipe = ShadowRecipe.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(f"{path}: '{location}': {first['msg']}") from None
    if recipe.sklearn is not None:
        try:
            resolve_estimator(recipe.sklearn.estimator)
        except ValueError as error:
            raise InputError(f"{path}: 'sklearn.estimator': {error}") from None
    return recipe, hashlib.sha256(raw).hexdigest()
