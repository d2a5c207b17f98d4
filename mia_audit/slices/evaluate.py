"""Slice-level leakage: the same attacks measured on subpopulations (DESIGN §2 step 6; seeds/001 step 6).

An average AUC of 0.55 can hide a class or a demographic group at 0.8. This module cuts the audit records
into slices by the declarative `SlicingSpec` (see `mia_audit.slices.spec` for the dimensions), evaluates every
attack present in the run's per-record scores on every slice — metric, label-only and, when present,
shadow/reference attacks alike, since all arrive as `AttackScores` — and summarises the disparity.

Evidence rules:
- a slice with fewer than `min_records` members or non-members is `insufficient_evidence`: reported with its
  counts, not tested and not ranked;
- every other slice × attack gets a one-sided Mann–Whitney p-value of "slice AUC > 0.5", adjusted by
  Benjamini–Hochberg over all of them, and is significant when the adjusted p ≤ `fdr`;
- slices are ranked by the lower bound of the AUC's 95% CI (DeLong), not the point estimate, so a tiny slice
  with a lucky AUC does not outrank a large, clearly leaking one.

Cost: each attack's scores are mapped once to distinct levels (one sort); a slice × attack is then a few
bincounts over those levels plus O(levels) arithmetic (`mia_audit.stats.level_counts`), with analytic intervals
instead of a per-slice bootstrap. benchmarks/bench_slices.py measures the overhead.

Privacy: slice values are category labels and quantile edges (aggregates); outer bins are open-ended so no
single record's minimum or maximum is shown. No record id or per-record score leaves this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mia_audit.attacks import AttackScores
from mia_audit.errors import InputError
from mia_audit.data.manifest import AuditSet
from mia_audit.evaluation.measure import fpr_key
from mia_audit.stats import FPR_LEVELS
from mia_audit.results import (
    AttackResult,
    ExposedSlice,
    SliceResult,
    SliceSummary,
    SubpopulationGain,
    SubpopulationResult,
    TprAtFpr,
    WorstSlice,
)
from mia_audit.data.signals import Signals
from mia_audit.stats.level_counts import LevelCounts, SliceStatistics, benjamini_hochberg, slice_statistics
from mia_audit.slices.spec import BUILTIN_DIMENSIONS, MAX_CATEGORIES, SlicingSpec, parse_intersections
from mia_audit.slices.subpopulation import Folds, fit_threshold_level, global_threshold_levels, subpopulation_attack

__all__ = [
    "Dimension",
    "Slice",
    "SliceEvaluation",
    "SlicingSpec",
    "build_slices",
    "evaluate_slices",
    "parse_intersections",
    "validate_slicing",
]

MISSING = "(missing)"
SINGLED_OUT_FPR = 0.001
METHODS = {
    "auc_ci": "DeLong et al. 1988 variance, Wald interval clipped to [0, 1] (no per-slice bootstrap)",
    "tpr_at_fpr_ci": (
        "threshold band: Clopper–Pearson bounds at the empirical thresholds admitting the binomial "
        "1.25%/98.75% quantiles of α·n0 false positives (conservative, includes threshold variability)"
    ),
    "p_value": "one-sided Mann–Whitney (normal approximation, tie and continuity corrected) of slice AUC > 0.5",
    "p_value_adjusted": "Benjamini–Hochberg over every slice × attack tested",
    "rank": "by the lower bound of the AUC's 95% CI; slices with insufficient evidence are not ranked",
    "worst": (
        "the top-ranked slice among classes, columns and their intersections; slices cut by the model's own "
        "output (correctness, loss percentile) are ranked but not chosen, because their within-slice AUC "
        "partly reflects the selection on the attack signal itself"
    ),
    "subpopulation": "2-fold cross-fitted per-slice threshold vs global threshold at the same FPR (see mia_audit.slices.subpopulation)",
    "members_singled_out": "members above the slice's own 0.1%-FPR threshold, distinct members across the worst slices",
}


# --------------------------------------------------------------------------------------------------
# Dimensions and slices
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceEvaluation:
    """`slices` for results.json (ranked first, worst first) and the disparity summary."""

    slices: list[SliceResult]
    summary: SliceSummary


@dataclass(frozen=True, eq=False)
class _AttackLevels:
    member: np.ndarray
    nonmember: np.ndarray
    count: int


def _levels(scores: AttackScores) -> _AttackLevels:
    """Each record's distinct-score level, 0 = the highest score (one sort per attack)."""
    members = np.asarray(scores.member_scores, dtype=np.float64)
    nonmembers = np.asarray(scores.nonmember_scores, dtype=np.float64)
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        raise ValueError("attack scores contain NaN")
    ascending, inverse = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    level = ascending.size - 1 - inverse.reshape(-1)
    return _AttackLevels(member=level[: members.size], nonmember=level[members.size :], count=int(ascending.size))


def _accuracy(correct: np.ndarray, index: np.ndarray) -> float | None:
    return float(np.mean(correct[index])) if index.size else None


def _tpr_entries(stats_: SliceStatistics) -> dict[str, TprAtFpr]:
    return {
        fpr_key(alpha): TprAtFpr(
            tpr=band.tpr,
            ci=band.ci,
            achieved_fpr=band.achieved_fpr,
            achieved_fpr_ci=band.achieved_fpr_ci,
            n_nonmembers=stats_.n_nonmembers,
            flag=band.flag,
        )
        for alpha, band in stats_.tpr_at_fpr.items()
    }


def evaluate_slices(
    *,
    spec: SlicingSpec,
    slices: list[Slice],
    record_scores: dict[str, AttackScores],
    member_correct: np.ndarray,
    nonmember_correct: np.ndarray,
    global_results: list[AttackResult] | None = None,
    seed: int = 0,
    fpr_levels=FPR_LEVELS,
) -> SliceEvaluation:
    """Evaluate every slice × attack, apply the evidence rules, rank, and summarise the disparity."""
    member_correct = np.asarray(member_correct, dtype=bool)
    nonmember_correct = np.asarray(nonmember_correct, dtype=bool)
    folds = Folds.split(n_members=member_correct.size, n_nonmembers=nonmember_correct.size, seed=seed)
    tested: list[dict] = []
    insufficient: list[SliceResult] = []
    levels_by_attack: dict[str, _AttackLevels] = {}
    for attack, scores in record_scores.items():
        levels = _levels(scores)
        levels_by_attack[attack] = levels
        global_levels = global_threshold_levels(
            member_levels=levels.member,
            nonmember_levels=levels.nonmember,
            n_levels=levels.count,
            folds=folds,
            alpha=spec.subpopulation_fpr,
        )
        for piece in slices:
            common = dict(
                name=piece.name,
                kind=piece.kind,
                spec=piece.spec,
                value=piece.value,
                attack=attack,
                by_model_output=piece.by_model_output,
                n_members=int(piece.member_index.size),
                n_nonmembers=int(piece.nonmember_index.size),
                member_accuracy=_accuracy(member_correct, piece.member_index),
                nonmember_accuracy=_accuracy(nonmember_correct, piece.nonmember_index),
            )
            if common["member_accuracy"] is not None and common["nonmember_accuracy"] is not None:
                common["accuracy_gap"] = common["member_accuracy"] - common["nonmember_accuracy"]
            if min(piece.member_index.size, piece.nonmember_index.size) < spec.min_records:
                insufficient.append(SliceResult(**common, flag="insufficient_evidence"))
                continue
            member_levels = levels.member[piece.member_index]
            nonmember_levels = levels.nonmember[piece.nonmember_index]
            measured = slice_statistics(
                LevelCounts.from_levels(
                    member_levels=member_levels, nonmember_levels=nonmember_levels, n_levels=levels.count
                ),
                fpr_levels=fpr_levels,
            )
            outcome = subpopulation_attack(
                member_levels=member_levels,
                nonmember_levels=nonmember_levels,
                member_in_a=folds.members_a[piece.member_index],
                nonmember_in_a=folds.nonmembers_a[piece.nonmember_index],
                n_levels=levels.count,
                global_levels=global_levels,
                alpha=spec.subpopulation_fpr,
            )
            tested.append(
                dict(
                    common,
                    flag="ok",
                    auc=measured.auc,
                    auc_ci=measured.auc_ci,
                    advantage=measured.advantage,
                    tpr_at_fpr=_tpr_entries(measured),
                    p_value=measured.p_value,
                    subpopulation=SubpopulationResult(
                        fpr=outcome.fpr,
                        tpr_global=outcome.tpr_global,
                        fpr_global=outcome.fpr_global,
                        tpr_slice=outcome.tpr_slice,
                        fpr_slice=outcome.fpr_slice,
                        gain=outcome.gain,
                        raises_tpr=outcome.raises_tpr,
                        flag=outcome.flag,
                    ),
                    _slice=piece,
                )
            )

    adjusted = benjamini_hochberg([entry["p_value"] for entry in tested])
    for entry, p_adjusted in zip(tested, adjusted):
        entry["p_value_adjusted"] = float(p_adjusted)
        entry["significant"] = bool(p_adjusted <= spec.fdr)
    ranked = sorted(tested, key=lambda e: (-e["auc_ci"][0], -e["auc"], e["p_value"]))
    for rank, entry in enumerate(ranked, start=1):
        entry["rank"] = rank
    results = [SliceResult(**{k: v for k, v in entry.items() if k != "_slice"}) for entry in ranked]
    summary = _summary(
        spec=spec,
        ranked=ranked,
        results=results,
        n_slices=len(slices),
        n_insufficient=len({result.name for result in insufficient}),
        levels_by_attack=levels_by_attack,
        global_results=global_results or [],
    )
    return SliceEvaluation(slices=results + insufficient, summary=summary)


def _singled_out(piece: Slice, levels: _AttackLevels, alpha: float) -> np.ndarray:
    """Member indices (audit rows) above the slice's own FPR-α threshold, fitted on the whole slice."""
    member_levels = levels.member[piece.member_index]
    threshold = fit_threshold_level(
        member_levels=member_levels,
        nonmember_levels=levels.nonmember[piece.nonmember_index],
        n_levels=levels.count,
        alpha=alpha,
    )
    return piece.member_index[member_levels <= threshold]


_FLAG_ORDER = {"ok": 0, "low_evidence": 1, "not_estimable": 2}


def _summary(
    *,
    spec: SlicingSpec,
    ranked: list[dict],
    results: list[SliceResult],
    n_slices: int,
    n_insufficient: int,
    levels_by_attack: dict[str, _AttackLevels],
    global_results: list[AttackResult],
) -> SliceSummary:
    by_attack = {result.name: result for result in global_results}
    # The worst slice is a subpopulation (class, column, their intersections): a slice cut by the model's own
    # output (correctness, loss percentile) is tested and ranked, but its within-slice AUC partly reflects the
    # selection on the attack signal itself, so it only stands in when no other slice was tested.
    candidates = [(entry, result) for entry, result in zip(ranked, results) if not result.by_model_output]
    if not candidates:
        candidates = list(zip(ranked, results))
    worst = None
    if candidates:
        top = candidates[0][1]
        reference = by_attack.get(top.attack)
        worst = WorstSlice(
            name=top.name,
            attack=top.attack,
            n_members=top.n_members,
            n_nonmembers=top.n_nonmembers,
            auc=top.auc,
            auc_ci=top.auc_ci,
            p_value_adjusted=top.p_value_adjusted,
            significant=top.significant,
            global_auc=None if reference is None else reference.auc,
            global_auc_ci=None if reference is None else reference.auc_ci,
            auc_difference=None if reference is None else top.auc - reference.auc,
        )

    # The worst slices: each slice once, with its worst (top-ranked) attack.
    exposed: list[ExposedSlice] = []
    singled_out: set[int] = set()
    flag = "ok"
    seen: set[str] = set()
    key = fpr_key(SINGLED_OUT_FPR)
    for entry, result in candidates:
        if result.name in seen or len(exposed) >= spec.n_worst:
            continue
        seen.add(result.name)
        flagged = _singled_out(entry["_slice"], levels_by_attack[result.attack], SINGLED_OUT_FPR)
        singled_out.update(flagged.tolist())
        headline = result.tpr_at_fpr[key]
        flag = max(flag, headline.flag, key=_FLAG_ORDER.__getitem__)
        exposed.append(
            ExposedSlice(
                name=result.name,
                attack=result.attack,
                n_members=result.n_members,
                n_nonmembers=result.n_nonmembers,
                auc=result.auc,
                auc_ci=result.auc_ci,
                p_value_adjusted=result.p_value_adjusted,
                significant=result.significant,
                **{"tpr_at_fpr_0.001": headline, "members_singled_out_at_0.001": int(flagged.size)},
            )
        )

    gains = sorted(
        (r for r in results if r.subpopulation is not None and r.subpopulation.raises_tpr),
        key=lambda r: -r.subpopulation.gain,
    )
    return SliceSummary(
        n_slices=n_slices,
        n_tested=len(results),
        n_insufficient=n_insufficient,
        n_significant=sum(r.significant for r in results),
        min_records=spec.min_records,
        fdr=spec.fdr,
        methods=dict(METHODS),
        worst=worst,
        worst_slices=exposed,
        members_singled_out_flag=flag,
        n_subpopulation_gains=len(gains),
        subpopulation_gains=[
            SubpopulationGain(
                name=r.name,
                attack=r.attack,
                tpr_global=r.subpopulation.tpr_global,
                tpr_slice=r.subpopulation.tpr_slice,
                gain=r.subpopulation.gain,
            )
            for r in gains[:10]
        ],
        **{"members_singled_out_at_0.001": len(singled_out)},
    )
