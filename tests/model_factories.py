"""Build small REAL exported models for tests: torch.onnx.export, torch.jit, skl2onnx.

Every factory is keyword-only, seeded, fast (well under a second once torch is warm), writes into
`tmp_path` and returns a `BuiltModel`: the file's path, the in-memory reference model's output
function (what the exported model must reproduce), sample inputs and labels.
No downloads: sklearn's bundled datasets or generated data only.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "BuiltModel",
    "torch_mlp_onnx",
    "torch_binary_onnx",
    "torchscript_mlp",
    "sklearn_onnx",
    "sklearn_binary_onnx",
    "export_torch_onnx",
]


@dataclass(frozen=True)
class BuiltModel:
    """A model file and the ground truth to compare the adapter against."""

    path: Path
    #: In-memory model's outputs for x (float64, shape (n, k)), the same kind the file outputs.
    reference: Callable[[np.ndarray], np.ndarray]
    #: Sample records (float32), shape (n, n_features).
    x: np.ndarray
    #: Labels for x (ints, or the class labels given to the sklearn factories).
    y: np.ndarray
    #: What the file's selected output holds.
    output_kind: Literal["logits", "probabilities"]
    #: Class labels in column order (sklearn), else None.
    class_labels: list[Any] | None = None
    #: Which exporter wrote it ("dynamo", "legacy", "script", "trace", "skl2onnx").
    exporter: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter warnings and progress prints."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _torch_mlp(*, n_features: int, n_out: int, head: str | None, seed: int, hidden: int = 16) -> Any:
    """A small seeded MLP (global torch RNG left untouched) with an optional Softmax/Sigmoid head."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = [
            torch.nn.Linear(n_features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, n_out),
        ]
    if head == "softmax":
        layers.append(torch.nn.Softmax(dim=1))
    elif head == "sigmoid":
        layers.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers).eval()


def _torch_reference(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return out.double().numpy().reshape(len(x), -1)

    return reference


def _sample_x(*, n_samples: int, n_features: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_samples, n_features)).astype(np.float32)


def _export_onnx(
    *,
    model: Any,
    path: Path,
    n_features: int,
    output_name: str,
    exporter: Literal["dynamo", "legacy"],
    dynamic_batch: bool,
    external_data: bool,
    example_batch: int,
) -> str:
    """torch.onnx.export with the chosen exporter; falls back to the legacy one if dynamo fails."""
    import torch

    example = (torch.zeros(example_batch, n_features),)
    used = "legacy"
    if exporter == "dynamo":
        try:
            with _quiet():
                torch.onnx.export(
                    model,
                    example,
                    str(path),
                    input_names=["input"],
                    output_names=[output_name],
                    dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic_batch else None,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            used = "dynamo"
        except Exception:  # noqa: BLE001 - e.g. onnxscript missing: use the TorchScript exporter
            pass
    if used == "legacy":
        with _quiet():
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=["input"],
                output_names=[output_name],
                dynamic_axes={"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None,
                dynamo=False,
            )
    if external_data:
        # Every initializer in one sidecar file "<name>.onnx.data" (torch's own layout for big models).
        import onnx

        proto = onnx.load(str(path))
        onnx.save_model(
            proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=0,
        )
    return used


def export_torch_onnx(
    *,
    model: Any,
    path: Path,
    n_features: int,
    exporter: Literal["dynamo", "legacy"] = "dynamo",
    output_name: str = "output",
) -> str:
    """Export an in-memory torch classifier taking (batch, n_features) inputs, with a dynamic batch axis.

    Returns the exporter actually used ("dynamo" falls back to "legacy" when the dynamo exporter fails).
    """
    return _export_onnx(
        model=model,
        path=Path(path),
        n_features=n_features,
        output_name=output_name,
        exporter=exporter,
        dynamic_batch=True,
        external_data=False,
        example_batch=2,
    )


def torch_mlp_onnx(
    *,
    tmp_path: Path,
    n_features: int = 4,
    n_classes: int = 3,
    output: Literal["logits", "probabilities"] = "logits",
    seed: int = 0,
    exporter: Literal["dynamo", "legacy"] = "dynamo",
    dynamic_batch: bool = True,
    external_data: bool = False,
    n_samples: int = 64,
) -> BuiltModel:
    """A torch MLP exported with torch.onnx.export: logits, or probabilities (final Softmax).

    `dynamic_batch=False` gives a graph with a fixed batch dimension of 8 (what torch.onnx.export
    does without dynamic axes); `external_data=True` puts all weights in a "<file>.data" sidecar.
    """
    head = "softmax" if output == "probabilities" else None
    model = _torch_mlp(n_features=n_features, n_out=n_classes, head=head, seed=seed)
    name = f"mlp_{exporter}_{output}_{n_features}x{n_classes}_s{seed}{'' if dynamic_batch else '_fixed'}"
    path = Path(tmp_path) / f"{name}{'_ext' if external_data else ''}.onnx"
    used = _export_onnx(
        model=model,
        path=path,
        n_features=n_features,
        output_name=output,
        exporter=exporter,
        dynamic_batch=dynamic_batch,
        external_data=external_data,
        example_batch=8 if not dynamic_batch else 2,
    )
    x = _sample_x(n_samples=n_samples, n_features=n_features, seed=seed + 1)
    reference = _torch_reference(model)
    y = reference(x).argmax(axis=1)
    return BuiltModel(path=path, reference=reference, x=x, y=y, output_kind=output, exporter=used)


def torch_binary_onnx(
    *,
    tmp_path: Path,
    output: Literal["sigmoid", "logit"] = "sigmoid",
    n_features: int = 4,
    seed: int = 0,
    exporter: Literal["dynamo", "legacy"] = "dynamo",
    n_samples: int = 64,
) -> BuiltModel:
    """A binary torch classifier with ONE output column: sigmoid probability or raw logit."""
    model = _torch_mlp(n_features=n_features, n_out=1, head="sigmoid" if output == "sigmoid" else None, seed=seed)
    path = Path(tmp_path) / f"binary_{exporter}_{output}_{n_features}_s{seed}.onnx"
    used = _export_onnx(
        model=model,
        path=path,
        n_features=n_features,
        output_name=output,
        exporter=exporter,
        dynamic_batch=True,
        external_data=False,
        example_batch=2,
    )
    x = _sample_x(n_samples=n_samples, n_features=n_features, seed=seed + 1)
    reference = _torch_reference(model)
    score = reference(x)[:, 0]
    y = (score > (0.5 if output == "sigmoid" else 0.0)).astype(np.int64)
    kind: Literal["logits", "probabilities"] = "probabilities" if output == "sigmoid" else "logits"
    return BuiltModel(path=path, reference=reference, x=x, y=y, output_kind=kind, exporter=used)


def torchscript_mlp(
    *,
    tmp_path: Path,
    n_features: int = 4,
    n_classes: int = 3,
    seed: int = 0,
    method: Literal["script", "trace"] = "script",
    output: Literal["logits", "probabilities"] = "logits",
    suffix: str = ".pt",
    n_samples: int = 64,
) -> BuiltModel:
    """A torch MLP saved as TorchScript via torch.jit.script or torch.jit.trace."""
    import torch

    head = "softmax" if output == "probabilities" else None
    model = _torch_mlp(n_features=n_features, n_out=n_classes, head=head, seed=seed)
    with _quiet():
        if method == "script":
            scripted = torch.jit.script(model)
        else:
            scripted = torch.jit.trace(model, torch.zeros(2, n_features))
    path = Path(tmp_path) / f"ts_{method}_{output}_{n_features}x{n_classes}_s{seed}{suffix}"
    scripted.save(str(path))
    x = _sample_x(n_samples=n_samples, n_features=n_features, seed=seed + 1)
    reference = _torch_reference(model)
    return BuiltModel(
        path=path, reference=reference, x=x, y=reference(x).argmax(axis=1), output_kind=output, exporter=method
    )


def _sklearn_data(*, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer, load_iris, make_classification

    if n_classes == 3:
        x, y = load_iris(return_X_y=True)
    elif n_classes == 2:
        x, y = load_breast_cancer(return_X_y=True)
    else:
        x, y = make_classification(
            n_samples=60 * n_classes,
            n_features=8,
            n_informative=6,
            n_redundant=0,
            n_classes=n_classes,
            random_state=seed,
        )
    return x.astype(np.float32), y.astype(np.int64)


def _sklearn_estimator(*, estimator: str, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if estimator == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if estimator == "random_forest":
        return RandomForestClassifier(n_estimators=10, max_depth=5, random_state=seed)
    raise ValueError(f"unknown estimator {estimator!r}")


def _convert(*, model: Any, n_features: int, zipmap: bool, path: Path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = None if zipmap else {id(final): {"zipmap": False}}
    with _quiet():
        onx = convert_sklearn(
            model, initial_types=[("input", FloatTensorType([None, n_features]))], options=options
        )
    path.write_bytes(onx.SerializeToString())


def sklearn_onnx(
    *,
    tmp_path: Path,
    estimator: Literal["logreg", "random_forest"] = "logreg",
    zipmap: bool = True,
    n_classes: int = 3,
    labels: Sequence[Any] | None = None,
    seed: int = 0,
) -> BuiltModel:
    """A scikit-learn classifier converted with skl2onnx (label + ZipMap or probabilities tensor).

    3 classes: iris; 2: breast cancer; otherwise generated data. `labels` (one per class) renames
    the classes 0..k-1, e.g. strings or unsorted ints to test ZipMap column ordering.
    `reference` is `predict_proba` on the float32-rounded input (what the ONNX graph sees).
    """
    x, y = _sklearn_data(n_classes=n_classes, seed=seed)
    if labels is not None:
        if len(labels) != n_classes:
            raise ValueError("labels must have one entry per class")
        y = np.asarray(labels)[y]
    model = _sklearn_estimator(estimator=estimator, seed=seed).fit(x.astype(np.float64), y)
    tag = "zipmap" if zipmap else "tensor"
    lab = "" if labels is None else "_labels"
    path = Path(tmp_path) / f"sk_{estimator}_{tag}_{n_classes}{lab}_s{seed}.onnx"
    _convert(model=model, n_features=x.shape[1], zipmap=zipmap, path=path)

    def reference(x_in: np.ndarray) -> np.ndarray:
        return model.predict_proba(np.asarray(x_in, dtype=np.float32).astype(np.float64))

    return BuiltModel(
        path=path,
        reference=reference,
        x=x,
        y=y,
        output_kind="probabilities",
        class_labels=list(model.classes_),
        exporter="skl2onnx",
        extra={"estimator": model},
    )


def sklearn_binary_onnx(
    *,
    tmp_path: Path,
    estimator: Literal["logreg", "random_forest"] = "logreg",
    zipmap: bool = False,
    seed: int = 0,
) -> BuiltModel:
    """A 2-class scikit-learn classifier (breast cancer; scaler + logistic regression by default)."""
    return sklearn_onnx(tmp_path=tmp_path, estimator=estimator, zipmap=zipmap, n_classes=2, seed=seed)
