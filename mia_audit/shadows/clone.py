"""Where shadow models come from: one `ShadowSource` per way of getting a trainable copy of the model.

- `onnx_graph`: the ONNX graph converted to a `TrainableGraph` (fresh weights), trained with torch;
- `torchscript_via_onnx`: a TorchScript module exported to ONNX in memory, then converted the same way;
- `architecture_recipe`: a fresh MLP/CNN named in the recipe;
- `sklearn_recipe`: a scikit-learn estimator named in the recipe (trees exported by skl2onnx, ...).

All of them answer one call, `fit(x=, y=, keep=, seeds=, progress=)`, with every shadow's output on every
record; shadow k draws its randomness from `seeds.child("shadow", k)` alone. When none applies, `ShadowUnavailable` says exactly what the user can supply instead.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mia_audit.seeds import SeedStreams
from mia_audit.shadows.graph import TrainableGraph, UnsupportedGraph
from mia_audit.shadows.recipe import ShadowRecipe, SklearnRecipe, TrainingRecipe

__all__ = ["ShadowFit", "ShadowSource", "ShadowUnavailable", "make_shadow_source", "recipe_example"]


class ShadowUnavailable(Exception):
    """Shadow models cannot be trained for this model as given; the message tells the user what to supply."""


@dataclass(frozen=True)
class ShadowFit:
    raw: np.ndarray  # (N, K, k_out) float64 outputs, read as `ShadowSource.output_kind`
    epochs: int | None = None
    calibrated: bool | None = None


class ShadowSource(Protocol):
    name: str
    description: str
    output_kind: str  # "logits" | "probabilities": how to read `ShadowFit.raw`

    def fit(self, *, x: np.ndarray, y: np.ndarray, keep: np.ndarray, seeds: SeedStreams, progress: Any) -> ShadowFit: ...

    def recipe_used(self) -> dict[str, Any]: ...

    def progress_total(self, n_models: int) -> int: ...


@dataclass
class TorchGraphSource:
    """A `TrainableGraph` trained with the recipe's optimiser, K models at once."""

    name: str
    description: str
    graph: TrainableGraph
    output_kind: str
    training: TrainingRecipe
    calibration: Any  # CalibrationTarget | None

    def fit(self, *, x: np.ndarray, y: np.ndarray, keep: np.ndarray, seeds: SeedStreams, progress: Any) -> ShadowFit:
        from mia_audit.shadows.torch_trainer import train_torch_shadows

        raw, report = train_torch_shadows(
            graph=self.graph,
            x=x,
            y=y,
            keep=keep,
            recipe=self.training,
            seeds=seeds,
            calibration=self.calibration,
            progress=progress,
        )
        self.report = report
        return ShadowFit(raw=raw, epochs=report.epochs, calibrated=report.calibrated)

    def recipe_used(self) -> dict[str, Any]:
        return {"model": self.name, "architecture": self.graph.description, "training": self.training.model_dump(mode="json")}

    def progress_total(self, n_models: int) -> int:
        epochs = self.training.max_epochs if self.training.epochs == "auto" else int(self.training.epochs)
        return n_models * epochs


@dataclass
class SklearnSource:
    name: str
    description: str
    recipe: SklearnRecipe
    n_classes: int
    output_kind: str = "probabilities"

    def fit(self, *, x: np.ndarray, y: np.ndarray, keep: np.ndarray, seeds: SeedStreams, progress: Any) -> ShadowFit:
        from mia_audit.shadows.sklearn_trainer import train_sklearn_shadows

        raw = train_sklearn_shadows(
            recipe=self.recipe, x=x, y=y, keep=keep, n_classes=self.n_classes, seeds=seeds, progress=progress
        )
        return ShadowFit(raw=raw)

    def recipe_used(self) -> dict[str, Any]:
        return {"model": self.name, "sklearn": self.recipe.model_dump(mode="json")}

    def progress_total(self, n_models: int) -> int:
        return n_models


# --- helpful refusals ---------------------------------------------------------------------------------


def recipe_example(*, proto: Any | None) -> str:
    """An example recipe matching what the graph looks like (tree ensemble, linear model, SVM)."""
    estimator, params, standardize = "RandomForestClassifier", "n_estimators: 100", False
    if proto is not None:
        ops = {node.op_type: node for node in proto.graph.node}
        tree = ops.get("TreeEnsembleClassifier") or ops.get("TreeEnsemble")
        if tree is not None:
            attrs = {a.name: a for a in tree.attribute}
            trees = len(set(attrs["nodes_treeids"].ints)) if "nodes_treeids" in attrs else None
            post = attrs["post_transform"].s.decode() if "post_transform" in attrs else "NONE"
            if post == "NONE":
                params = f"n_estimators: {trees}" if trees else "n_estimators: 100"
            else:
                estimator, params = "GradientBoostingClassifier", "n_estimators: 100"
        elif "LinearClassifier" in ops:
            estimator, params, standardize = "LogisticRegression", "max_iter: 1000", "Scaler" in ops
        elif "SVMClassifier" in ops:
            estimator, params, standardize = "SVC", "probability: true", "Scaler" in ops
    scale = ", standardize: true" if standardize else ""
    return f"sklearn: {{estimator: {estimator}, params: {{{params}}}{scale}}}"


def _refusal(reason: str, *, proto: Any | None) -> ShadowUnavailable:
    return ShadowUnavailable(
        f"{reason}. Supply --shadow-recipe recipe.yaml naming an equivalent trainable model with the "
        f"hyper-parameters the model was trained with, e.g. a file containing `{recipe_example(proto=proto)}` "
        "(or `architecture: {type: mlp, hidden: [256, 256]}`); see README, 'Shadow-model attacks'"
    )


# --- building a source --------------------------------------------------------------------------------


def _verify(*, graph: TrainableGraph, original: dict, running: dict, x: np.ndarray, expected: np.ndarray) -> None:
    """The converted graph with the model's own weights must reproduce the model's outputs."""
    import torch

    with torch.no_grad():
        got, _ = graph.run(original, running, torch.from_numpy(np.ascontiguousarray(x)).to(graph.input_dtype), training=False)
    got = got.to(torch.float64).numpy().reshape(expected.shape[0], -1)
    exp = expected.reshape(expected.shape[0], -1)
    if got.shape != exp.shape:
        raise UnsupportedGraph(f"the converted graph gives outputs of shape {got.shape}, the model {exp.shape}")
    error = float(np.max(np.abs(got - exp)))
    scale = 1.0 + float(np.max(np.abs(exp)))
    if not error <= 1e-3 * scale:
        raise UnsupportedGraph(f"the converted graph does not reproduce the model's outputs (max difference {error:.3g})")


def _torchscript_to_onnx(*, module: Any, example: np.ndarray) -> Any:
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.from_numpy(np.ascontiguousarray(example)),),
            buffer,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def make_shadow_source(
    *,
    model: Any,
    model_path: Path,
    recipe: ShadowRecipe | None,
    output_kind: str,
    x_check: np.ndarray,
    n_classes: int,
    pool_x: np.ndarray,
    calibration: Any,
) -> ShadowSource:
    """The shadow source for this model and recipe, or `ShadowUnavailable` with what to supply."""
    recipe = recipe or ShadowRecipe()
    if recipe.sklearn is not None:
        return SklearnSource(
            name="sklearn_recipe",
            description=f"scikit-learn {recipe.sklearn.estimator} from the shadow recipe",
            recipe=recipe.sklearn,
            n_classes=n_classes,
        )
    if recipe.architecture is not None:
        from mia_audit.shadows.architectures import graph_from_architecture

        try:
            graph = graph_from_architecture(spec=recipe.architecture, x=pool_x, n_classes=n_classes)
        except ValueError as error:
            raise ShadowUnavailable(f"the recipe's architecture does not fit the records: {error}") from None
        return TorchGraphSource(
            name="architecture_recipe",
            description=f"{graph.description} (from the shadow recipe)",
            graph=graph,
            output_kind="logits",
            training=recipe.training,
            calibration=calibration,
        )

    from mia_audit.shadows.onnx_import import graph_from_onnx, load_onnx_proto

    proto = None
    try:
        if model.format_name == "onnx":
            proto = load_onnx_proto(model_path)
            output_name, name = model.output_name, "onnx_graph"
        elif model.format_name == "torchscript":
            example = np.asarray(x_check[:2], dtype=model.input_dtype)
            try:
                proto = _torchscript_to_onnx(module=model.module, example=example)
            except Exception as error:  # noqa: BLE001 - any exporter failure is a reason to skip
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UnsupportedGraph(f"exporting the TorchScript module to ONNX failed ({first[:160]})") from None
            output_name, name = proto.graph.output[0].name, "torchscript_via_onnx"
        else:
            raise UnsupportedGraph(f"shadow training does not support {model.format_name} models")
        graph, original, running = graph_from_onnx(
            proto=proto, output_name=output_name, output_kind=output_kind, n_outputs=model.n_raw_outputs
        )
        check = np.asarray(x_check[:16], dtype=model.input_dtype)
        _verify(graph=graph, original=original, running=running, x=check, expected=model.predict_raw(check, batch_size=16))
    except UnsupportedGraph as error:
        raise _refusal(str(error), proto=proto) from None
    del original, running  # the model's own weights are never used for a shadow
    via = "ONNX graph" if name == "onnx_graph" else "TorchScript module exported to ONNX"
    return TorchGraphSource(
        name=name,
        description=f"the model's own architecture ({via}: {graph.description}), freshly initialised",
        graph=graph,
        output_kind=output_kind,
        training=recipe.training,
        calibration=calibration,
    )
