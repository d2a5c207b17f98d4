"""Cutting the audit records into slices (DESIGN §2 step 6): the dimensions a `SlicingSpec` names, and the
slices they make.

Dimensions: the true class, correct / incorrect prediction, the loss percentile (built in, by their
--slice-intersections names `@class`, `@correct`, `@loss`), feature or meta columns (categorical by value,
numeric by quantile bins), and pairs of them. Slice values are category labels and quantile edges
(aggregates); outer bins are open-ended so no single record's minimum or maximum is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mia_audit.data.manifest import AuditSet
from mia_audit.data.signals import Signals
from mia_audit.errors import InputError
from mia_audit.slices.spec import BUILTIN_DIMENSIONS, MAX_CATEGORIES, SlicingSpec

__all__ = ["Dimension", "Slice", "build_dimensions", "build_slices", "validate_slicing"]

MISSING = "(missing)"


@dataclass(frozen=True, eq=False)
class Dimension:
    """One way to cut the pooled records (members first, then non-members) into disjoint slices.

    `codes[i]` is the slice of pooled record i (an index into `values`), or −1 when it is in none.
    `by_model_output` marks dimensions defined by the model's own output on the record (correctness, loss).
    """

    kind: str
    spec: str
    codes: np.ndarray
    values: tuple[str, ...]
    by_model_output: bool = False


@dataclass(frozen=True, eq=False)
class Slice:
    """One slice: which members and non-members (row indices into each audit set) belong to it."""

    kind: str
    spec: str
    value: str
    member_index: np.ndarray
    nonmember_index: np.ndarray
    by_model_output: bool = False

    @property
    def name(self) -> str:
        return f"{self.spec}={self.value}"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _quantile_dimension(*, kind: str, spec: str, values: np.ndarray, present: np.ndarray, bins: int) -> Dimension:
    """Quantile bins of `values` (only where `present`); outer bins open-ended; ties can merge bins."""
    if not present.any():
        return Dimension(kind=kind, spec=spec, codes=np.zeros(values.size, dtype=np.int64), values=(MISSING,))
    inner = np.unique(np.quantile(values[present], np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    codes = np.searchsorted(inner, values, side="right").astype(np.int64)
    labels = [f"< {_number(inner[0])}"]
    labels += [f"[{_number(low)}, {_number(high)})" for low, high in zip(inner[:-1], inner[1:])]
    labels.append(f"≥ {_number(inner[-1])}")
    if not present.all():
        codes[~present] = len(labels)
        labels.append(MISSING)
    return Dimension(kind=kind, spec=spec, codes=codes, values=tuple(labels))


def _categorical_dimension(*, kind: str, spec: str, labels: np.ndarray, sort_key: Callable[[str], object]) -> Dimension:
    distinct, inverse = np.unique(labels, return_inverse=True)
    order = sorted(range(distinct.size), key=lambda index: sort_key(str(distinct[index])))
    position = np.empty(distinct.size, dtype=np.int64)
    position[order] = np.arange(distinct.size)
    return Dimension(
        kind=kind, spec=spec, codes=position[inverse.reshape(-1)], values=tuple(str(distinct[i]) for i in order)
    )


def _as_numbers(text: np.ndarray) -> np.ndarray | None:
    """The strings as finite float64 numbers, or None if any is not one."""
    try:
        numbers = text.astype(np.float64)
    except ValueError:
        return None
    return numbers if np.isfinite(numbers).all() else None


def _column_dimension(*, name: str, members: AuditSet, nonmembers: AuditSet, bins: int) -> Dimension:
    """A feature or meta column: categorical by value, or numeric by quantile bins (see slice_spec)."""
    tabular = members.features.ndim == 2 and len(members.feature_columns) == members.features.shape[1]
    if name in members.meta:
        text = np.char.strip(np.concatenate([members.meta[name], nonmembers.meta[name]]).astype(str))
        present = text != ""
        parsed = _as_numbers(text[present])
        numeric = parsed is not None
        numbers = np.zeros(text.size)
        if numeric:
            numbers[present] = parsed
    elif tabular and name in members.feature_columns:
        column = members.feature_columns.index(name)
        numbers = np.concatenate([members.features[:, column], nonmembers.features[:, column]])
        present = np.ones(numbers.size, dtype=bool)
        text, numeric = None, True
    else:
        hint = (
            "; true classes are always sliced (use @class in --slice-intersections)"
            if name not in members.columns
            else "; it is the label, id, group or input column — list a column in --meta-columns to slice on it "
            "without feeding it to the model"
        )
        raise InputError(
            f"{members.path}: column '{name}' (--slice-columns / --slice-intersections) is not a feature or meta "
            f"column{hint}"
        )
    if numeric and np.unique(numbers[present]).size > bins:
        return _quantile_dimension(kind="column", spec=name, values=numbers, present=present, bins=bins)
    if numeric:
        distinct = np.unique(numbers[present])
        names = np.array([_number(v) for v in distinct] + [MISSING])
        slot = np.where(present, np.searchsorted(distinct, numbers), distinct.size)
        labels = names[slot]

        def key(label: str) -> object:
            return (1, 0.0) if label == MISSING else (0, float(label))

    else:
        labels = np.where(present, text, MISSING)

        def key(label: str) -> object:
            return (label == MISSING, label)

    distinct_count = np.unique(labels).size
    if distinct_count > MAX_CATEGORIES:
        raise InputError(
            f"{members.path}: column '{name}' (--slice-columns) has {distinct_count} distinct non-numeric values; at "
            f"most {MAX_CATEGORIES} categories can be sliced — group rare values first"
        )
    return _categorical_dimension(kind="column", spec=name, labels=labels, sort_key=key)


@dataclass(frozen=True)
class _Context:
    members: AuditSet
    nonmembers: AuditSet
    member_signals: Signals | None
    nonmember_signals: Signals | None
    class_labels: list | None
    bins: int


def _class_dimension(ctx: _Context) -> Dimension:
    labels = np.concatenate([ctx.member_signals.labels, ctx.nonmember_signals.labels])
    present = np.unique(labels)
    names = tuple(str(ctx.class_labels[i]) if ctx.class_labels else str(int(i)) for i in present)
    return Dimension(kind="class", spec="true_class", codes=np.searchsorted(present, labels), values=names)


def _correctness_dimension(ctx: _Context) -> Dimension:
    correct = np.concatenate([ctx.member_signals.correct, ctx.nonmember_signals.correct])
    return Dimension(
        kind="correctness",
        spec="correctness",
        codes=np.where(correct, 0, 1),
        values=("correct", "incorrect"),
        by_model_output=True,
    )


def _loss_dimension(ctx: _Context) -> Dimension:
    loss = np.concatenate([ctx.member_signals.loss, ctx.nonmember_signals.loss])
    dimension = _quantile_dimension(
        kind="loss_percentile", spec="loss_percentile", values=loss, present=np.isfinite(loss), bins=ctx.bins
    )
    return Dimension(
        kind=dimension.kind, spec=dimension.spec, codes=dimension.codes, values=dimension.values, by_model_output=True
    )


# Built-in dimensions by the name used in --slice-intersections (a registry, not an if/elif chain).
_BUILTINS: dict[str, Callable[[_Context], Dimension]] = {
    "@class": _class_dimension,
    "@correct": _correctness_dimension,
    "@loss": _loss_dimension,
}
assert tuple(_BUILTINS) == BUILTIN_DIMENSIONS


def _named_dimension(name: str, ctx: _Context) -> Dimension:
    if name in _BUILTINS:
        return _BUILTINS[name](ctx)
    return _column_dimension(name=name, members=ctx.members, nonmembers=ctx.nonmembers, bins=ctx.bins)


def _intersect(first: Dimension, second: Dimension) -> Dimension:
    width = len(second.values)
    inside = (first.codes >= 0) & (second.codes >= 0)
    codes = np.where(inside, first.codes * width + second.codes, -1)
    values = tuple(f"{a} & {b}" for a in first.values for b in second.values)
    return Dimension(
        kind="intersection",
        spec=f"{first.spec}*{second.spec}",
        codes=codes,
        values=values,
        by_model_output=first.by_model_output or second.by_model_output,
    )


def validate_slicing(*, spec: SlicingSpec, members: AuditSet, nonmembers: AuditSet) -> None:
    """Check the named columns before any model work, so a typo fails fast with exit code 2."""
    if not spec.enabled:
        return
    names = list(spec.columns) + [name for pair in spec.intersections for name in pair]
    for name in dict.fromkeys(names):
        if name not in _BUILTINS:
            _column_dimension(name=name, members=members, nonmembers=nonmembers, bins=spec.bins)


def build_dimensions(
    *,
    spec: SlicingSpec,
    members: AuditSet,
    nonmembers: AuditSet,
    member_signals: Signals,
    nonmember_signals: Signals,
    class_labels: list | None,
) -> list[Dimension]:
    """Every dimension the spec asks for, in a fixed order: class, correctness, loss, columns, intersections."""
    if not spec.enabled:
        return []
    ctx = _Context(members, nonmembers, member_signals, nonmember_signals, class_labels, spec.bins)
    wanted = [
        name
        for name, on in (("@class", spec.by_class), ("@correct", spec.by_correctness), ("@loss", spec.by_loss_percentile))
        if on
    ]
    wanted += [name for name in spec.columns if name not in wanted]
    cache: dict[str, Dimension] = {}

    def dimension(name: str) -> Dimension:
        if name not in cache:
            cache[name] = _named_dimension(name, ctx)
        return cache[name]

    dimensions = [dimension(name) for name in wanted]
    dimensions += [_intersect(dimension(a), dimension(b)) for a, b in spec.intersections]
    return dimensions


def build_slices(
    *,
    spec: SlicingSpec,
    members: AuditSet,
    nonmembers: AuditSet,
    member_signals: Signals,
    nonmember_signals: Signals,
    class_labels: list | None = None,
) -> list[Slice]:
    """The spec's slices that contain at least one record, dimension by dimension, values in order."""
    slices = []
    n_members = members.n
    for dim in build_dimensions(
        spec=spec,
        members=members,
        nonmembers=nonmembers,
        member_signals=member_signals,
        nonmember_signals=nonmember_signals,
        class_labels=class_labels,
    ):
        order = np.argsort(dim.codes, kind="stable")
        sorted_codes = dim.codes[order]
        bounds = np.searchsorted(sorted_codes, np.arange(len(dim.values) + 1))
        for code, value in enumerate(dim.values):
            pooled = order[bounds[code] : bounds[code + 1]]
            if pooled.size == 0:
                continue
            slices.append(
                Slice(
                    kind=dim.kind,
                    spec=dim.spec,
                    value=value,
                    member_index=pooled[pooled < n_members],
                    nonmember_index=pooled[pooled >= n_members] - n_members,
                    by_model_output=dim.by_model_output,
                )
            )
    return slices
