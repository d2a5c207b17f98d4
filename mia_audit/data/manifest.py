"""CSV manifests → audit sets (features, labels, ids, groups, meta columns), with validation.

A manifest is a CSV with a header. One column holds the true label; optional id, group (data subject)
and meta columns are kept aside (never fed to the model); every other column is a numeric feature, in the
order the model expects. Alternatively one column holds paths to `.npy` tensors, resolved inside the
manifest's own folder (paths that escape it are refused).

Every problem is raised as `InputError` with one line naming the file, the column and the first
offending row (rows are numbered from 1 after the header; the file line is given too).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mia_audit.config import ManifestOptions
from mia_audit.errors import InputError


@dataclass(frozen=True)
class AuditSet:
    """One side of the audit (members or non-members) as read from its manifest."""

    path: Path
    sha256: str
    columns: list[str]
    feature_columns: list[str]
    features: np.ndarray  # (n, *record_shape) float64
    raw_labels: np.ndarray  # (n,) str, as written in the file
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    source_rows: np.ndarray | None = None  # 1-based data-row numbers in the manifest; None = 1..n

    @property
    def n(self) -> int:
        return int(self.raw_labels.shape[0])

    def rows(self) -> np.ndarray:
        """1-based data-row number of each record in its manifest (stable under `subset`)."""
        return np.arange(1, self.n + 1) if self.source_rows is None else self.source_rows

    def subset(self, keep: np.ndarray) -> "AuditSet":
        """The records where `keep` is True, in the same order."""
        return AuditSet(
            path=self.path,
            sha256=self.sha256,
            columns=self.columns,
            feature_columns=self.feature_columns,
            features=self.features[keep],
            raw_labels=self.raw_labels[keep],
            ids=None if self.ids is None else self.ids[keep],
            groups=None if self.groups is None else self.groups[keep],
            meta={name: values[keep] for name, values in self.meta.items()},
            source_rows=self.rows()[keep],
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _where(path: Path, column: str, row: int) -> str:
    return f"{path}: column '{column}', row {row + 1} (line {row + 2})"


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.exists():
        raise InputError(f"{path}: manifest file not found")
    if not path.is_file():
        raise InputError(f"{path}: manifest is not a regular file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except UnicodeDecodeError:
        raise InputError(f"{path}: manifest is not UTF-8 text (is it a CSV file?)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if header is None or not any(name.strip() for name in header):
        raise InputError(f"{path}: manifest is empty (no header row)")
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path}: column '{duplicates[0]}' appears more than once in the header")
    if not rows:
        raise InputError(f"{path}: manifest has a header but no records")
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise InputError(
                f"{path}: row {index + 1} (line {index + 2}) has {len(row)} fields, the header has {len(header)}"
            )
    return header, rows


def _numeric_column(*, path: Path, column: str, values: list[str]) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except ValueError:
        array = None
    if array is not None and np.isfinite(array).all():
        return array
    for row, text in enumerate(values):
        try:
            number = float(text)
        except ValueError:
            shown = "an empty value" if not text.strip() else "a non-numeric value"
            raise InputError(f"{_where(path, column, row)}: {shown}; feature columns must be numbers") from None
        if not np.isfinite(number):
            raise InputError(f"{_where(path, column, row)}: {text.strip()} is not a finite number")
    raise AssertionError("unreachable")  # pragma: no cover


def _load_tensor(*, manifest: Path, column: str, row: int, text: str) -> np.ndarray:
    folder = manifest.parent.resolve()
    relative = Path(text.strip())
    if not text.strip():
        raise InputError(f"{_where(manifest, column, row)}: empty tensor path")
    target = (folder / relative).resolve()
    if relative.is_absolute() or not target.is_relative_to(folder):
        raise InputError(f"{_where(manifest, column, row)}: tensor path escapes the manifest's folder; refused")
    if target.suffix != ".npy":
        raise InputError(f"{_where(manifest, column, row)}: tensor path must name a .npy file")
    if not target.is_file():
        raise InputError(f"{_where(manifest, column, row)}: tensor file not found")
    try:
        tensor = np.load(target, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{_where(manifest, column, row)}: not a readable .npy tensor ({exc})") from None
    if not np.issubdtype(tensor.dtype, np.number) or np.issubdtype(tensor.dtype, np.complexfloating):
        raise InputError(f"{_where(manifest, column, row)}: tensor dtype {tensor.dtype} is not real-valued")
    tensor = tensor.astype(np.float64)
    if not np.isfinite(tensor).all():
        raise InputError(f"{_where(manifest, column, row)}: tensor contains NaN or infinite values")
    return tensor


def _tensor_column(*, path: Path, column: str, values: list[str]) -> np.ndarray:
    tensors = []
    for row, text in enumerate(values):
        tensor = _load_tensor(manifest=path, column=column, row=row, text=text)
        if tensors and tensor.shape != tensors[0].shape:
            raise InputError(
                f"{_where(path, column, row)}: tensor shape {tensor.shape} differs from row 1's {tensors[0].shape}"
            )
        tensors.append(tensor)
    return np.stack(tensors)


def read_manifest(*, path: Path, options: ManifestOptions) -> AuditSet:
    """Read and validate one manifest; features are float64, labels stay as written until bound to a model."""
    header, rows = _read_table(path)
    named = {
        "--label-column": options.label_column,
        "--id-column": options.id_column,
        "--group-column": options.group_column,
        "--input-column": options.input_column,
    }
    for flag, name in named.items():
        if name is not None and name not in header:
            raise InputError(f"{path}: column '{name}' ({flag}) not found; columns are: {', '.join(header)}")
    for name in options.meta_columns:
        if name not in header:
            raise InputError(f"{path}: column '{name}' (--meta-columns) not found; columns are: {', '.join(header)}")

    columns = {name: [row[index] for row in rows] for index, name in enumerate(header)}
    reserved = {options.label_column, options.id_column, options.group_column, *options.meta_columns}
    if options.input_column is not None:
        feature_columns = [options.input_column]
        features = _tensor_column(path=path, column=options.input_column, values=columns[options.input_column])
    else:
        feature_columns = [name for name in header if name not in reserved]
        if not feature_columns:
            raise InputError(f"{path}: no feature columns left after the label, id, group and meta columns")
        features = np.column_stack(
            [_numeric_column(path=path, column=name, values=columns[name]) for name in feature_columns]
        )

    labels = np.array([value.strip() for value in columns[options.label_column]], dtype=object)
    for row, value in enumerate(labels):
        if value == "":
            raise InputError(f"{_where(path, options.label_column, row)}: empty label")

    def optional(name: str | None) -> np.ndarray | None:
        return None if name is None else np.array(columns[name], dtype=object)

    return AuditSet(
        path=path,
        sha256=sha256_of(path),
        columns=header,
        feature_columns=feature_columns,
        features=features,
        raw_labels=labels,
        ids=optional(options.id_column),
        groups=optional(options.group_column),
        meta={name: np.array(columns[name], dtype=object) for name in options.meta_columns},
    )


def check_same_layout(*, members: AuditSet, nonmembers: AuditSet) -> None:
    """Both manifests must present the same feature columns in the same order and record shape."""
    if members.feature_columns != nonmembers.feature_columns:
        raise InputError(
            f"{nonmembers.path}: feature columns differ from {members.path} "
            f"({len(nonmembers.feature_columns)} vs {len(members.feature_columns)} columns, or another order)"
        )
    if members.features.shape[1:] != nonmembers.features.shape[1:]:
        raise InputError(
            f"{nonmembers.path}: record shape {nonmembers.features.shape[1:]} differs from "
            f"{members.path}'s {members.features.shape[1:]}"
        )


def _row_digests(audit_set: AuditSet) -> list[bytes]:
    flat = np.ascontiguousarray(audit_set.features.reshape(audit_set.n, -1))
    return [
        hashlib.blake2b(flat[i].tobytes() + str(audit_set.raw_labels[i]).encode(), digest_size=16).digest()
        for i in range(audit_set.n)
    ]


def find_overlap(*, members: AuditSet, nonmembers: AuditSet) -> np.ndarray:
    """Boolean mask over non-members: True where the record (features and label) also appears among members."""
    member_digests = set(_row_digests(members))
    return np.array([digest in member_digests for digest in _row_digests(nonmembers)], dtype=bool)


def encode_labels(*, audit_set: AuditSet, label_column: str, n_classes: int, class_labels: list | None) -> np.ndarray:
    """Map labels as written to the model's class indices 0..n_classes−1.

    With class labels known from the model (e.g. an skl2onnx ZipMap), labels are matched by their text;
    otherwise they must be integers in [0, n_classes).
    """
    if class_labels is not None:
        lookup = {str(label): index for index, label in enumerate(class_labels)}
        # "1.0" written by pandas for an integer class still means class "1"
        encoded = np.empty(audit_set.n, dtype=np.int64)
        for row, value in enumerate(audit_set.raw_labels):
            key = value if value in lookup else _integral_text(value)
            if key not in lookup:
                raise InputError(
                    f"{_where(audit_set.path, label_column, row)}: label '{value}' is not one of the model's "
                    f"classes ({', '.join(map(str, class_labels))})"
                )
            encoded[row] = lookup[key]
        return encoded
    encoded = np.empty(audit_set.n, dtype=np.int64)
    for row, value in enumerate(audit_set.raw_labels):
        key = _integral_text(value)
        if key is None or not 0 <= int(key) < n_classes:
            raise InputError(
                f"{_where(audit_set.path, label_column, row)}: label '{value}' is outside the model's classes "
                f"(integers 0..{n_classes - 1})"
            )
        encoded[row] = int(key)
    return encoded


def _integral_text(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return None
    if not np.isfinite(number) or number != int(number):
        return None
    return str(int(number))
