"""`mia-audit run`: the options, the run configuration they make, the audit, its files and the summary.

The command reads top to bottom: options → `RunConfig` (`run_config`) → policy gate prepared → audit →
verdict → every output rendered in memory (`render_outputs`) → written atomically (`write_outputs`) → summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import typer
from pydantic import ValidationError

from mia_audit.cli.app import BaselineOption, ContextOption, JunitOption, PolicyOption, app, exit_codes
from mia_audit.cli.console import RichProgress, make_console, print_run_summary
from mia_audit.cli.files import (
    check_junit_path,
    parse_formats,
    read_context,
    render_reports,
    split_list,
    write_bytes_atomically,
    write_gate_artifacts,
)
from mia_audit.config import (
    OUTPUT_FORMATS,
    DefenseOptions,
    LabelOnlyOptions,
    ManifestOptions,
    RunConfig,
    ShadowOptions,
    config_error_line,
)
from mia_audit.errors import InputError
from mia_audit.gate.inputs import gate_input
from mia_audit.gate.judge import prepare_gate
from mia_audit.results import AuditResult
from mia_audit.slices.spec import SlicingSpec, parse_intersections

__all__ = ["RunOutputs", "render_outputs", "run", "run_config", "write_outputs"]


@app.command()
def run(
    model: Annotated[Path, typer.Argument(help="Trained model: .onnx or TorchScript (.pt/.ts).", show_default=False)],
    members: Annotated[Path, typer.Option("--members", help="CSV manifest of records in the training set.")],
    nonmembers: Annotated[
        Path, typer.Option("--nonmembers", help="CSV manifest of same-distribution records not in training.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("mia-report"),
    label_column: Annotated[str, typer.Option(help="Column holding the true label.")] = "label",
    id_column: Annotated[Optional[str], typer.Option(help="Record id column (never fed to the model).")] = None,
    group_column: Annotated[
        Optional[str],
        typer.Option(help="Data-subject id column (never fed to the model); adds the subject-level audit."),
    ] = None,
    meta_columns: Annotated[
        Optional[str], typer.Option(help="Comma-separated columns kept for slicing, not fed to the model.")
    ] = None,
    input_column: Annotated[
        Optional[str], typer.Option(help="Column of .npy tensor paths (inside the manifest's folder) instead of features.")
    ] = None,
    model_format: Annotated[Optional[str], typer.Option(help="Force the model format (onnx, torchscript).")] = None,
    output_kind: Annotated[
        str, typer.Option(help="Model outputs: auto, logits or probabilities.", case_sensitive=False)
    ] = "auto",
    batch_size: Annotated[
        Optional[int], typer.Option(min=1, help="Inference batch size [default: auto, about 32 MiB of input].")
    ] = None,
    drop_overlap: Annotated[
        bool, typer.Option("--drop-overlap", help="Drop non-members that duplicate a member record.")
    ] = False,
    allow_overlap: Annotated[
        bool, typer.Option("--allow-overlap", help="Audit even if non-members duplicate member records.")
    ] = False,
    exposure: Annotated[
        str, typer.Option(help="What the deployed model exposes: scores (probabilities) or labels.")
    ] = "scores",
    attacks: Annotated[Optional[str], typer.Option(help="Comma-separated attacks to run (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice of the run.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for the 95% CIs.")] = 1000,
    delta: Annotated[float, typer.Option(help="δ used in the empirical ε lower bound.")] = 1e-5,
    label_only_queries: Annotated[int, typer.Option(min=1, help="Noisy queries per record (label-only attack).")] = 16,
    label_only_noise: Annotated[
        float, typer.Option(help="Noise scale in feature standard deviations (label-only attack).")
    ] = 0.3,
    output_formats: Annotated[
        str, typer.Option("--format", help="Comma-separated outputs: json, html, pdf.")
    ] = ",".join(OUTPUT_FORMATS),
    context: ContextOption = None,
    export_record_scores: Annotated[
        bool,
        typer.Option(
            "--export-record-scores",
            help="Also write per-record scores (and ids) to a separate RESTRICTED file. Personal data: handle as such.",
        ),
    ] = False,
    slices: Annotated[
        bool, typer.Option("--slices/--no-slices", help="Measure every attack on slices (class, correctness, loss, columns).")
    ] = True,
    slice_columns: Annotated[
        Optional[str], typer.Option(help="Comma-separated feature or meta columns to slice by.")
    ] = None,
    slice_bins: Annotated[
        int, typer.Option(min=2, max=100, help="Quantile bins for numeric slice columns and the loss.")
    ] = 4,
    slice_intersections: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated pairs A*B to slice by both (columns, or @class, @correct, @loss)."),
    ] = None,
    slice_min_records: Annotated[
        int, typer.Option(min=2, help="Members and non-members a slice needs to be tested and ranked.")
    ] = 20,
    shadow_models: Annotated[
        int, typer.Option(min=0, max=1024, help="Shadow models for Shokri, ML-Leaks, LiRA and RMIA (0 = off; else at least 4).")
    ] = 16,
    population: Annotated[
        Optional[Path],
        typer.Option(help="CSV of same-distribution records, neither members nor non-members: trains shadows only."),
    ] = None,
    shadow_recipe: Annotated[
        Optional[Path], typer.Option(help="YAML recipe for the shadow models (estimator, architecture, training).")
    ] = None,
    cache_dir: Annotated[
        Optional[Path], typer.Option(help="Shadow-output cache folder [default: ~/.cache/mia-audit].")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the shadow cache.")] = False,
    defenses: Annotated[
        Optional[str],
        typer.Option(help="Step 7: defended variants to retrain and re-audit, e.g. label_smoothing:0.1,dp_sgd:epsilon=4,top_k:3 (a+b combines)."),
    ] = None,
    validation: Annotated[
        Optional[Path], typer.Option(help="Held-out records (neither members nor non-members) for defenses that need them.")
    ] = None,
    defense_shadow_models: Annotated[
        int, typer.Option(min=0, max=256, help="Adaptive shadows per defended training recipe (0 = metric attacks only).")
    ] = 4,
    export_defended: Annotated[
        Optional[Path], typer.Option(help="Write each retrained defended variant as ONNX into this folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print results.json on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    policy: PolicyOption = None,
    baseline: BaselineOption = None,
    junit: JunitOption = None,
) -> None:
    """Audit MODEL against member and non-member manifests; write results.json and the report into --out; apply
    the policy (the exit code is its verdict)."""
    options = SimpleNamespace(**locals())  # every option above, by name
    with exit_codes():
        formats = parse_formats(output_formats, allowed=OUTPUT_FORMATS)
        report_context, context_yaml = read_context(context)
        config = run_config(options, formats=formats)
        check_junit_path(junit)
        gate = prepare_gate(policy_path=policy, baseline_path=baseline)  # a bad policy stops before the audit
        audit = _audit(config, quiet=quiet)
        verdict = gate.judge(current=gate_input(result=audit.result, source=str(out / "results.json")))
        result = audit.result.model_copy(update={"verdict": verdict})
        outputs = render_outputs(audit=audit, result=result, formats=formats, context=report_context,
                                 context_yaml=context_yaml, policy=policy, export_record_scores=export_record_scores)
        written = write_outputs(outputs, out=out)
        write_gate_artifacts(verdict=verdict, result=result, junit=junit)
    restricted = None if outputs.restricted is None else out / outputs.restricted
    print_run_summary(result=result, verdict=verdict, written=written, junit=junit, restricted=restricted,
                      as_json=as_json)
    if as_json:
        sys.stdout.write(outputs.document + "\n")
    raise typer.Exit(verdict.exit_code)


def _check_options(options: SimpleNamespace) -> None:
    """Refusals the option types cannot express (InputError, exit code 2)."""
    if options.drop_overlap and options.allow_overlap:
        raise InputError("--drop-overlap and --allow-overlap exclude each other")
    if options.output_kind.lower() not in ("auto", "logits", "probabilities"):
        raise InputError(f"--output-kind: '{options.output_kind}' is not one of auto, logits, probabilities")
    if options.exposure not in ("scores", "labels"):
        raise InputError(f"--exposure: '{options.exposure}' is not one of scores, labels")
    if not 0 <= options.delta < 1:
        raise InputError("--delta must be in [0, 1)")
    if options.label_only_noise <= 0:
        raise InputError("--label-only-noise must be positive")


def run_config(options: SimpleNamespace, *, formats: tuple[str, ...]) -> RunConfig:
    """The validated run configuration from `run`'s options; InputError names the option that is wrong."""
    _check_options(options)
    try:
        intersections = parse_intersections(options.slice_intersections)
    except ValueError as error:
        raise InputError(f"--slice-intersections: {error}") from None
    o = options
    try:
        return RunConfig(
            model_path=o.model,
            members_path=o.members,
            nonmembers_path=o.nonmembers,
            out_dir=o.out,
            model_format=o.model_format,
            output_kind=o.output_kind.lower(),
            batch_size=o.batch_size,
            manifest=ManifestOptions(
                label_column=o.label_column,
                id_column=o.id_column,
                group_column=o.group_column,
                meta_columns=split_list(o.meta_columns),
                input_column=o.input_column,
            ),
            overlap="drop" if o.drop_overlap else "allow" if o.allow_overlap else "refuse",
            exposure=o.exposure,
            attacks=split_list(o.attacks) or None,
            seed=o.seed,
            n_bootstrap=o.bootstrap,
            delta=o.delta,
            label_only=LabelOnlyOptions(queries=o.label_only_queries, noise_scale=o.label_only_noise),
            policy_path=o.policy,
            baseline_path=o.baseline,
            formats=formats,
            context_path=o.context,
            export_record_scores=o.export_record_scores,
            slicing=SlicingSpec(
                enabled=o.slices,
                columns=split_list(o.slice_columns),
                bins=o.slice_bins,
                intersections=intersections,
                min_records=o.slice_min_records,
            ),
            shadow=ShadowOptions(
                n_models=o.shadow_models,
                population_path=o.population,
                recipe_path=o.shadow_recipe,
                cache_dir=o.cache_dir,
                use_cache=not o.no_cache,
            ),
            defense=DefenseOptions(
                spec=o.defenses,
                validation_path=o.validation,
                n_shadow_models=o.defense_shadow_models,
                export_dir=o.export_defended,
            ),
        )
    except ValidationError as error:  # the configuration's own refusals (e.g. too few shadow models)
        raise InputError(config_error_line(error)) from None


def _audit(config: RunConfig, *, quiet: bool):
    from mia_audit.workflow import run_audit  # heavy imports (torch, onnxruntime) after parsing

    console = make_console(stderr=True)
    with RichProgress(console=console, enabled=not quiet and console.is_terminal) as progress:
        return run_audit(config=config, progress=progress)


@dataclass(frozen=True)
class RunOutputs:
    """Every file of a run, rendered in memory first: a failure before writing leaves nothing half-written."""

    document: str  # results.json's text, also printed with --json
    files: dict[str, bytes]  # file name → content, in writing order
    restricted: str | None = None  # the RESTRICTED per-record file among `files` (owner-only permissions)


def render_outputs(
    *, audit, result: AuditResult, formats: tuple[str, ...], context, context_yaml, policy: Path | None,
    export_record_scores: bool,
) -> RunOutputs:
    """results.json, the reports and (on request) the restricted per-record scores, as bytes."""
    document = result.to_json()
    results_json = (document + "\n").encode("utf-8")
    files = {"results.json": results_json} if "json" in formats else {}
    files.update(render_reports(result=result, results_json=results_json, formats=formats, context=context,
                                context_yaml=context_yaml, policy=policy))
    restricted = None
    if export_record_scores:
        from mia_audit.files.export import RESTRICTED_FILE_NAME, record_scores_csv

        restricted = RESTRICTED_FILE_NAME
        files[restricted] = record_scores_csv(run=audit).encode("utf-8")
    return RunOutputs(document=document, files=files, restricted=restricted)


def write_outputs(outputs: RunOutputs, *, out: Path) -> list[Path]:
    """Write every file atomically into `out`; returns those to announce (not the restricted one)."""
    written = []
    for name, data in outputs.files.items():
        if name == outputs.restricted:
            write_bytes_atomically(path=out / name, data=data, mode=0o600)
        else:
            write_bytes_atomically(path=out / name, data=data)
            written.append(out / name)
    return written
