"""The one small interface every model format sits behind, and output normalisation.

An adapter wraps one loaded model file. It knows the per-record input shape and dtype the model
declares, how many classes it scores, and whether the graph itself says its outputs are logits or
probabilities. `predict_raw` returns the model's scores exactly as the model gives them (as float64,
batched); `normalize_outputs` turns them into an (n, n_classes) array of logits or probabilities and
says which, so the signal code (DESIGN.md §4.1) can work from logits with log-softmax where it can.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from mia_audit.errors import InputError, ModelLoadError

OutputKind = Literal["logits", "probabilities"]
RequestedOutputKind = Literal["auto", "logits", "probabilities"]

#: Probabilities may overshoot [0, 1] by float32 rounding (e.g. a random forest's 1.0000001).
PROBABILITY_RANGE_TOL = 1e-5
#: A row of class probabilities must sum to 1 within this tolerance.
PROBABILITY_SUM_TOL = 1e-3

__all__ = [
    "ModelAdapter",
    "OutputKind",
    "RequestedOutputKind",
    "PROBABILITY_RANGE_TOL",
    "PROBABILITY_SUM_TOL",
    "normalize_outputs",
    "short_reason",
]


def short_reason(exc: BaseException, *, limit: int = 200) -> str:
    """First line of an exception's message, without runtime boilerplate, for a one-line error."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    # onnxruntime: "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from X failed:Protobuf ..."
    if line.startswith("[ONNXRuntimeError]"):
        parts = line.split(" : ", 3)
        line = parts[-1].strip() if len(parts) == 4 else line
    if line.startswith("Load model from ") and " failed:" in line:
        line = line.split(" failed:", 1)[1].strip()
    if len(line) > limit:
        first_sentence = line.split(". ", 1)[0]
        if 20 <= len(first_sentence) <= limit:
            line = first_sentence
        else:
            line = line[: limit - 3].rstrip() + "..."
    return line or type(exc).__name__


def _format_shape(shape: tuple[int | None, ...]) -> str:
    """(3, None, 32) -> '(3, ?, 32)'; (4,) -> '(4,)'."""
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class ModelAdapter(ABC):
    """A loaded classifier of one file format, queried in batches.

    Subclasses register themselves with `mia_audit.models.registry.register_adapter` and implement
    `__init__(self, *, path)` (raising `ModelLoadError` for anything wrong with the file),
    `_run_batch` and the declared properties. The base class does input validation, casting,
    batching and the float64 output buffer, so every format batches the same way.
    """

    format_name: ClassVar[str]
    path: Path

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)
        # Number of raw output columns (k, may be 1); None until known from the graph or a run.
        self._n_outputs: int | None = None

    # ------------------------------------------------------------------ declared properties
    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """Per-record input shape, e.g. (n_features,) or (3, 32, 32).

        None dims are dynamic; the whole value is None when the format does not declare it
        (TorchScript): then `check_input` validates by a trial forward pass.
        """
        return None

    @property
    @abstractmethod
    def input_dtype(self) -> np.dtype:
        """The dtype the model declares for its input (float32, float64, int64, ...)."""

    @property
    def native_output_kind(self) -> OutputKind | None:
        """Logits or probabilities when the model graph says so, else None (detect from values)."""
        return None

    @property
    def class_labels(self) -> list[Any] | None:
        """Class labels in output-column order when the model file carries them, else None."""
        return None

    @property
    def n_raw_outputs(self) -> int | None:
        """Raw output columns k (1 for a binary single-column model); None until known."""
        return self._n_outputs

    @property
    def n_classes(self) -> int:
        """Number of classes after normalisation (a binary single-column model has 2).

        Known after loading when the graph declares it; otherwise found by a trial run on a zero
        record when the input shape is fully known, else available after `check_input`.
        """
        if self._n_outputs is None:
            shape = self.input_shape
            if shape is None or any(d is None for d in shape):
                raise RuntimeError(
                    f"{self.path}: number of classes unknown until the model has run; "
                    "call check_input() first"
                )
            self.check_input(np.zeros((1, *shape), dtype=self.input_dtype))
        assert self._n_outputs is not None
        return max(self._n_outputs, 2)

    def runtime_info(self) -> dict[str, Any]:
        """Runtime and model facts for the report's environment appendix."""
        return {"format": self.format_name}

    # ------------------------------------------------------------------ querying
    @abstractmethod
    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        """Run the model on one batch already cast to `input_dtype`; return a 1-D or 2-D array."""

    def _describe_error(self, exc: BaseException) -> str:
        """One line saying why the runtime rejected a batch (formats override to dig deeper)."""
        return short_reason(exc)

    def _effective_batch_size(self, batch_size: int) -> int:
        """The batch size actually used (a model with a fixed batch dimension overrides this)."""
        return batch_size

    def predict_raw(self, x: np.ndarray, *, batch_size: int) -> np.ndarray:
        """Raw model outputs for every record of `x`, as an (n, k) float64 array (k may be 1).

        `x` has shape (n, *input_shape); it is cast once to `input_dtype` and run in batches of
        `batch_size` into a preallocated output. A runtime failure becomes an `InputError` naming
        the model file and the rows of the failing batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x = self._prepare_input(x, data_name="the data")
        n = x.shape[0]
        step = self._effective_batch_size(batch_size)
        out: np.ndarray | None = None
        for start in range(0, n, step):
            stop = min(start + step, n)
            try:
                res = self._run_batch(x[start:stop])
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - any runtime failure is reported in one line
                raise InputError(
                    f"{self.path}: model failed on rows {start}-{stop - 1} "
                    f"(input shape {tuple(x[start:stop].shape)}): {self._describe_error(exc)}"
                ) from None
            res = self._as_2d(res, rows=stop - start)
            if out is None:
                out = np.empty((n, res.shape[1]), dtype=np.float64)
            elif res.shape[1] != out.shape[1]:
                raise ModelLoadError(
                    f"{self.path}: model returned {res.shape[1]} output columns for rows "
                    f"{start}-{stop - 1} but {out.shape[1]} before"
                )
            out[start:stop] = res
        if out is None:  # no records
            out = np.empty((0, self._n_outputs or 0), dtype=np.float64)
        else:
            self._n_outputs = out.shape[1]
        return out

    def check_input(self, x: np.ndarray, *, data_name: str = "the data") -> None:
        """Check that the model accepts records like `x` (e.g. the manifest's first rows).

        Compares the per-record shape with `input_shape` where known, then runs the model on up to
        two records. Raises `InputError` with one line naming the model file on any mismatch.
        `data_name` names the data in the message (e.g. "members.csv").
        """
        x = self._prepare_input(x, data_name=data_name)
        if x.shape[0] == 0:
            raise InputError(f"{self.path}: no records in {data_name} to check the model against")
        trial = x[:2]
        try:
            res = self._run_batch(trial)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - the point is to turn any failure into one line
            raise InputError(
                f"{self.path}: model rejected the input of shape {tuple(trial.shape)}: "
                f"{self._describe_error(exc)}"
            ) from None
        res = self._as_2d(res, rows=trial.shape[0])
        self._n_outputs = res.shape[1]

    # ------------------------------------------------------------------ helpers
    def _prepare_input(self, x: np.ndarray, *, data_name: str) -> np.ndarray:
        """Validate the per-record shape and cast to the declared dtype (no copy when it matches)."""
        x = np.asarray(x)
        if x.ndim < 2:
            raise InputError(
                f"{self.path}: expected an array of records of shape (n, ...), "
                f"got shape {tuple(x.shape)} from {data_name}"
            )
        expected = self.input_shape
        record = tuple(x.shape[1:])
        if expected is not None:
            mismatch = len(record) != len(expected) or any(
                e is not None and e != r for e, r in zip(expected, record)
            )
            if mismatch:
                if len(expected) == 1 and len(record) == 1:
                    raise InputError(
                        f"{self.path}: expects {expected[0]} input features but {data_name} "
                        f"has {record[0]} feature columns"
                    )
                raise InputError(
                    f"{self.path}: expects records of shape {_format_shape(expected)} but "
                    f"{data_name} has records of shape {_format_shape(record)}"
                )
        try:
            return np.ascontiguousarray(x, dtype=self.input_dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{self.path}: cannot convert {data_name} to the model's input type "
                f"{self.input_dtype}: {short_reason(exc)}"
            ) from None

    def _as_2d(self, res: np.ndarray, *, rows: int) -> np.ndarray:
        """Reshape a batch's output to (rows, k); reject shapes that are not per-record scores."""
        res = np.asarray(res)
        if res.ndim == 1:
            res = res[:, None]
        if res.ndim != 2 or res.shape[0] != rows:
            raise ModelLoadError(
                f"{self.path}: model output has shape {tuple(res.shape)} for {rows} records; "
                "expected (records, classes)"
            )
        if not (np.issubdtype(res.dtype, np.floating) or np.issubdtype(res.dtype, np.integer)):
            raise ModelLoadError(
                f"{self.path}: model output has dtype {res.dtype}; expected numeric scores"
            )
        return res

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"


def _first_bad_row(mask: np.ndarray) -> int:
    """Index of the first True in a boolean row mask."""
    return int(np.argmax(mask))


def normalize_outputs(
    *,
    raw: np.ndarray,
    output_kind: RequestedOutputKind,
    native_kind: OutputKind | None,
    source: str,
) -> tuple[np.ndarray, OutputKind]:
    """Turn raw model outputs into an (n, n_classes) float64 array of logits or probabilities.

    - `output_kind="auto"`: use `native_kind` when the model graph declares one; otherwise the
      outputs are probabilities iff every value is in [0, 1] and (k > 1) every row sums to 1 within
      1e-3, else logits. An explicit "logits" / "probabilities" overrides both.
    - Probabilities (however decided) are checked: a row outside [0, 1] or (k > 1) not summing to 1
      is an `InputError` naming `source` and the first offending row; float rounding just past 0
      or 1 is clipped.
    - A single column (binary model) becomes two: probabilities p -> [1 - p, p]; logits z -> [0, z],
      whose softmax is [1 - sigmoid(z), sigmoid(z)].
    - NaN or infinite outputs are an `InputError` naming the first offending row.

    Returns the array and the resolved kind.
    """
    if output_kind not in ("auto", "logits", "probabilities"):
        raise ValueError(f"output_kind must be 'auto', 'logits' or 'probabilities', not {output_kind!r}")
    if native_kind not in (None, "logits", "probabilities"):
        raise ValueError(f"native_kind must be None, 'logits' or 'probabilities', not {native_kind!r}")
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim == 1:
        out = out.reshape(-1, 1)
    if out.ndim != 2 or out.shape[1] < 1:
        raise InputError(f"{source}: model outputs have shape {tuple(out.shape)}; expected (records, classes)")
    finite_rows = np.isfinite(out).all(axis=1)
    if not finite_rows.all():
        raise InputError(f"{source}: model output is NaN or infinite at row {_first_bad_row(~finite_rows)}")
    k = out.shape[1]

    in_range = ((out >= -PROBABILITY_RANGE_TOL) & (out <= 1.0 + PROBABILITY_RANGE_TOL)).all(axis=1)
    sums_to_one = np.abs(out.sum(axis=1) - 1.0) <= PROBABILITY_SUM_TOL if k > 1 else np.ones_like(in_range)
    is_prob_row = in_range & sums_to_one

    if output_kind != "auto":
        kind: OutputKind = output_kind
        origin = "declared as probabilities"
    elif native_kind is not None:
        kind = native_kind
        origin = "probabilities according to the model graph"
    else:
        kind = "probabilities" if bool(is_prob_row.all()) else "logits"
        origin = "detected as probabilities"

    if kind == "probabilities":
        if not is_prob_row.all():
            row = _first_bad_row(~is_prob_row)
            why = "has values outside [0, 1]" if not in_range[row] else "does not sum to 1"
            raise InputError(f"{source}: outputs {origin} but row {row} {why}")
        out = np.clip(out, 0.0, 1.0)  # a new array: never mutate the caller's
        if k == 1:
            p = out[:, 0]
            out = np.column_stack([1.0 - p, p])
    elif k == 1:
        out = np.column_stack([np.zeros(out.shape[0]), out[:, 0]])
    elif out is raw:  # never hand back the caller's own array to be mutated later
        out = out.copy()
    return out, kind
