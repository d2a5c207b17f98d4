"""The declarative slicing spec: which subpopulations the audit measures separately (DESIGN §2 step 6).

Kept free of numpy/scipy so the CLI can build a `RunConfig` before the heavy imports. The evaluation lives
in `mia_audit.slices.evaluate`.

Dimensions (each cuts the records into disjoint slices):

- `@class`    — by true class (on unless `by_class=False`);
- `@correct`  — by whether the model classifies the record correctly (on unless `by_correctness=False`);
- `@loss`     — by percentile bin of the record's cross-entropy loss over the pooled audit records
                (`bins` quantile bins; on unless `by_loss_percentile=False`), as TensorFlow Privacy's
                `SlicingSpec.by_percentiles`;
- a column    — any feature or meta column named in `columns`: categorical columns (non-numeric values, or
                at most `bins` distinct numbers) by value, numeric columns by `bins` quantile bins of the
                pooled values (outer bins open-ended, so no single record's minimum or maximum is shown);
- `A*B`       — the intersection of two dimensions from `intersections`, each a column name or one of the
                built-in names `@class`, `@correct`, `@loss` (e.g. `sex*@class`, `sex*age_band`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

BUILTIN_DIMENSIONS = ("@class", "@correct", "@loss")
MAX_CATEGORIES = 50


class SlicingSpec(BaseModel):
    """Which slices to evaluate and the evidence rules applied to them (recorded in results.json's config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    by_class: bool = True
    by_correctness: bool = True
    by_loss_percentile: bool = True
    columns: tuple[str, ...] = ()
    bins: int = Field(default=4, ge=2, le=100, description="quantile bins for numeric columns and for the loss")
    intersections: tuple[tuple[str, str], ...] = ()
    min_records: int = Field(
        default=20, ge=2, description="members AND non-members a slice needs to be tested; else insufficient_evidence"
    )
    fdr: float = Field(default=0.05, gt=0.0, lt=1.0, description="Benjamini–Hochberg false-discovery rate")
    subpopulation_fpr: float = Field(default=0.01, gt=0.0, lt=1.0, description="FPR of the subpopulation attack")
    n_worst: int = Field(default=3, ge=1, le=100, description="worst slices in the disparity summary")

    @field_validator("intersections")
    @classmethod
    def _pairs_differ(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for left, right in value:
            if left == right:
                raise ValueError(f"intersection '{left}*{right}' crosses a dimension with itself")
        return value


def parse_intersections(text: str | None) -> tuple[tuple[str, str], ...]:
    """`"sex*age_band,sex*@class"` → (("sex", "age_band"), ("sex", "@class")). Raises ValueError on bad syntax."""
    if not text:
        return ()
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        names = [name.strip() for name in item.split("*")]
        if len(names) != 2 or not all(names):
            raise ValueError(f"'{item}' is not of the form A*B (two dimensions joined by '*')")
        if names[0] == names[1]:
            raise ValueError(f"'{item}' crosses a dimension with itself")
        pairs.append((names[0], names[1]))
    return tuple(pairs)
