"""The resolved run configuration: everything the CLI parsed, validated once, recorded in results.json.

Every random choice in a run derives from `seed` so the same inputs and seed give the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mia_audit.slices.spec import SlicingSpec

Exposure = Literal["scores", "labels"]
OutputKindOption = Literal["auto", "logits", "probabilities"]
OverlapPolicy = Literal["refuse", "drop", "allow"]
OutputFormat = Literal["json", "html", "pdf"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("json", "html", "pdf")


#: LiRA needs at least two shadows trained with and two without each record to estimate a spread.
MIN_SHADOW_MODELS = 4


def _shadow_count(value: int, *, option: str) -> int:
    if 0 < value < MIN_SHADOW_MODELS:
        raise ValueError(
            f"{option} {value}: use 0 (off) or at least {MIN_SHADOW_MODELS} (LiRA needs two shadows trained with "
            "and two without each record)"
        )
    return value


def config_error_line(error: Exception) -> str:
    """One line for a pydantic validation error of the run configuration (the CLI's exit-2 message)."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        message = str(first.get("msg", error)).removeprefix("Value error, ")
        where = ".".join(str(part) for part in first.get("loc", ()))
        return message if message.startswith("--") else f"{where}: {message}"
    return str(error)


class ManifestOptions(BaseModel):
    """How to read the member and non-member CSV manifests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label_column: str = "label"
    id_column: str | None = None
    group_column: str | None = None
    meta_columns: tuple[str, ...] = ()
    input_column: str | None = None


class LabelOnlyOptions(BaseModel):
    """Choquette-Choo et al. 2021 noise-robustness attack settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queries: int = Field(default=16, ge=1, le=1000)
    noise_scale: float = Field(default=0.3, gt=0.0)


class ShadowOptions(BaseModel):
    """Workflow step 5: shadow / reference models (Shokri, ML-Leaks, LiRA, RMIA)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_models: int = Field(default=16, ge=0, le=1024)  # 0 = off; otherwise at least MIN_SHADOW_MODELS
    population_path: Path | None = None
    recipe_path: Path | None = None
    cache_dir: Path | None = None  # None = $MIA_AUDIT_CACHE_DIR, $XDG_CACHE_HOME/mia-audit or ~/.cache/mia-audit
    use_cache: bool = True

    @field_validator("n_models")
    @classmethod
    def _enough_shadows(cls, value: int) -> int:
        return _shadow_count(value, option="--shadow-models")


class DefenseOptions(BaseModel):
    """Workflow step 7: defended variants to retrain / wrap and re-audit (`--defenses`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str | None = None  # e.g. "label_smoothing:0.1,dropout:0.5,mixup,dp_sgd:epsilon=4,top_k:3"
    validation_path: Path | None = None
    n_shadow_models: int = Field(default=4, ge=0, le=256)  # adaptive shadows per training recipe (0 = off)
    export_dir: Path | None = None


class RunConfig(BaseModel):
    """Everything that determines a run's numbers (paths are recorded, contents are hashed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: Path
    members_path: Path
    nonmembers_path: Path
    out_dir: Path = Path("mia-report")
    model_format: str | None = None
    output_kind: OutputKindOption = "auto"
    batch_size: int | None = Field(default=None, ge=1)  # None = auto (about 32 MiB of input per batch)
    manifest: ManifestOptions = ManifestOptions()
    overlap: OverlapPolicy = "refuse"
    exposure: Exposure = "scores"
    attacks: tuple[str, ...] | None = None  # None = every registered attack whose needs are met
    seed: int = 0
    n_bootstrap: int = Field(default=1000, ge=1, le=100_000)
    delta: float = Field(default=1e-5, ge=0.0, lt=1.0)
    label_only: LabelOnlyOptions = LabelOnlyOptions()
    policy_path: Path | None = None  # None = the built-in default policy
    baseline_path: Path | None = None  # previous results.json for the policy's regression rules
    # documents (issue 3): which outputs to write, the optional report context, the restricted export
    formats: tuple[OutputFormat, ...] = OUTPUT_FORMATS
    context_path: Path | None = None
    export_record_scores: bool = False
    slicing: SlicingSpec = SlicingSpec()  # slices and subpopulations (step 6); see mia_audit.slices.spec
    shadow: ShadowOptions = ShadowOptions()
    defense: DefenseOptions = DefenseOptions()

