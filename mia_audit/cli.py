"""The `mia-audit` command line: parses options, calls the workflow and the report, prints. No audit logic here.

Exit codes (`run` and `check`): 0 policy passed (or only warned), 1 policy failed, 2 usage or input error,
3 inconclusive, 4 internal error. Progress and messages go to stderr; stdout carries the tables, or the
results document alone with --json (which never changes the exit code).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mia_audit import __version__
from mia_audit.config import (
    OUTPUT_FORMATS,
    DefenseOptions,
    LabelOnlyOptions,
    ManifestOptions,
    RunConfig,
    ShadowOptions,
)
from mia_audit.errors import InputError
from mia_audit.files.results_file import read_results
from mia_audit.results import AuditResult
from mia_audit.slices.spec import SlicingSpec, parse_intersections
from mia_audit.gate.verdict import Verdict

app = typer.Typer(
    name="mia-audit",
    help="Measure how much a trained classifier leaks about its training records (membership inference).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)

policy_app = typer.Typer(help="Write and check policy files (the release gate).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_INTERNAL = 4


def _console(*, stderr: bool) -> Console:
    """Rich console; when not on a terminal (CI logs, pipes) wide enough that the table stays readable.

    NO_COLOR (https://no-color.org) turns off every escape sequence, not only colours.
    """
    plain = {"color_system": None} if os.environ.get("NO_COLOR") else {}
    console = Console(stderr=stderr, highlight=False, **plain)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=160, **plain)
    return console


class RichProgress:
    """ProgressSink drawing one transient bar per stage on stderr."""

    def __init__(self, *, console: Console, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self._task = None

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def begin(self, label: str, total: int | None = None) -> None:
        self.end()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def end(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None


def _split(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def write_atomically(*, path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees a half-written file."""
    write_bytes_atomically(path=path, data=text.encode("utf-8"))


def write_bytes_atomically(*, path: Path, data: bytes, mode: int | None = None) -> None:
    """`write_atomically` for bytes; `mode` sets the permissions before the file appears under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, _default_mode() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _default_mode() -> int:
    """What a plainly created file would get (0o666 minus the umask); mkstemp alone gives 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _formats(value: str, *, allowed: tuple[str, ...], option: str = "--format") -> tuple[str, ...]:
    chosen = _split(value.lower())
    unknown = [kind for kind in chosen if kind not in allowed]
    if unknown or not chosen:
        raise InputError(f"{option}: '{unknown[0] if unknown else value}' is not a comma-separated list of {', '.join(allowed)}")
    return tuple(kind for kind in allowed if kind in chosen)


def _load_context(path: Path | None):
    if path is None:
        return None, None
    from mia_audit.context import load_context

    return load_context(path=path)


def _render_reports(
    *, result: AuditResult, results_json: bytes, formats: tuple[str, ...], context, context_yaml, policy: Path | None = None
):
    """The requested report files in memory ({} when neither html nor pdf is asked for); the policy file, when
    one was given, is attached to the PDF beside results.json."""
    kinds = tuple(kind for kind in formats if kind in ("html", "pdf"))
    if not kinds:
        return {}
    from mia_audit.report import ReportInputs, render_documents
    from mia_audit.report.pdf import PdfAttachment
    from mia_audit.clock import utc_timestamp

    attachments = ()
    if policy is not None:
        attachments = (
            PdfAttachment(name="policy.yaml", data=policy.read_bytes(), description="release-gate policy applied"),
        )

    rendered = render_documents(
        inputs=ReportInputs(
            result=result,
            results_json=results_json,
            generated_utc=utc_timestamp(),
            context=context,
            context_yaml=context_yaml,
            extra_attachments=attachments,
        ),
        formats=kinds,
    )
    if rendered.refused_fetches:
        sys.stderr.write(
            f"mia-audit: warning: the report referenced {len(rendered.refused_fetches)} external resource(s); "
            "none was fetched\n"
        )
    return rendered.files


def _fmt_ci(value: float, ci: tuple[float, float], *, percent: bool = False) -> str:
    if percent:
        return f"{value:.2%} [{ci[0]:.2%}, {ci[1]:.2%}]"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def summary_table(result: AuditResult) -> Table:
    table = Table(title=f"Membership inference audit — {Path(result.model.path).name}", title_justify="left")
    for column in ("attack", "AUC [95% CI]", "TPR@0.1%FPR [95% CI]", "TPR@1%FPR", "advantage", "bal. acc.", "ε lb"):
        table.add_column(column, overflow="fold")
    for attack in result.attacks:
        low, one = attack.tpr_at_fpr["0.001"], attack.tpr_at_fpr["0.01"]
        flag = "" if low.flag == "ok" else f" ({low.flag})"
        marker = " *" if result.worst_case and attack.name == result.worst_case.attack else ""
        table.add_row(
            attack.name + marker,
            _fmt_ci(attack.auc, attack.auc_ci),
            _fmt_ci(low.tpr, low.ci, percent=True) + flag,
            f"{one.tpr:.2%}",
            f"{attack.advantage:+.3f}",
            f"{attack.balanced_accuracy:.3f}",
            f"{attack.epsilon_lower_bound:.2f}",
        )
    gap = result.utility
    table.caption = (
        f"* worst case. member acc {gap.member_accuracy:.3f}, non-member acc {gap.nonmember_accuracy:.3f}, "
        f"gap {gap.generalization_gap:+.3f}; {result.data.members.n} members, {result.data.nonmembers.n} non-members"
    )
    return table


_OUTCOME_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "inconclusive": "magenta",
                   "skipped": "dim"}


def verdict_table(verdict: Verdict) -> Table:
    """One row per rule; free text (paths, reasons, waivers) is escaped so it is never read as markup."""
    from rich.markup import escape

    from mia_audit.gate.ci_artifacts import threshold_text, value_text, waiver_text
    from mia_audit.gate.metric_catalog import METRICS

    style = _OUTCOME_STYLES[verdict.verdict]
    table = Table(title=f"Policy gate — [{style}]{verdict.verdict.upper()}[/] ({escape(verdict.policy)})",
                  title_justify="left")
    for column in ("rule", "target", "metric", "value [95% CI]", "thresholds", "outcome", "why"):
        table.add_column(escape(column), overflow="fold")
    for line in verdict.rules:
        outcome = f"[{_OUTCOME_STYLES[line.outcome]}]{line.outcome}[/]"
        if line.waiver is not None and line.waiver.status != "not_needed":
            outcome += f" ({escape(waiver_text(line))})"
        cells = (line.id, line.target, f"{METRICS[line.metric].label} ({line.on})", value_text(line),
                 threshold_text(line))
        table.add_row(*map(escape, cells), outcome, escape(line.reason))
    table.caption = escape(f"{verdict.summary}; exit code {verdict.exit_code}")
    return table


def _check_junit_path(junit: Path | None) -> None:
    if junit is not None and junit.is_dir():
        raise InputError(f"--junit {junit}: is a folder; give a file name such as {junit / 'junit.xml'}")


def _write_gate_artifacts(*, verdict: Verdict, result: AuditResult, junit: Path | None) -> None:
    """JUnit XML when asked for, and the Markdown summary when $GITHUB_STEP_SUMMARY is set."""
    from mia_audit.gate.ci_artifacts import append_step_summary, junit_xml, step_summary_markdown

    if junit is not None:
        write_atomically(path=junit, text=junit_xml(verdict=verdict, result=result))
    try:
        append_step_summary(markdown=step_summary_markdown(verdict=verdict, result=result))
    except OSError as error:
        sys.stderr.write(f"mia-audit: warning: could not append to $GITHUB_STEP_SUMMARY: {error}\n")


def slice_lines(result: AuditResult, *, top: int = 3) -> list[str]:
    """The worst slices (by the AUC's lower CI bound) and the subject-level worst case, for the summary."""
    lines = []
    if result.slice_summary is not None:
        summary = result.slice_summary
        worst = summary.worst_slices[:top]
        lines.append(
            f"slices: {summary.n_tested} slice × attack pairs tested, {summary.n_significant} significant "
            f"(Benjamini–Hochberg, FDR {summary.fdr:g}), {summary.n_insufficient} slices with too few records"
        )
        if worst:
            lines.append("worst slices (ranked by the lower 95% CI bound of the AUC):")
        for number, entry in enumerate(worst, start=1):
            lines.append(
                f"  {number}. {entry.name} ({entry.attack}): AUC {_fmt_ci(entry.auc, entry.auc_ci)}, "
                f"adjusted p {entry.p_value_adjusted:.2g}{'' if entry.significant else ' (not significant)'}, "
                f"{entry.n_members} members / {entry.n_nonmembers} non-members"
            )
    if result.subjects is not None and result.subjects.worst_case is not None:
        worst = result.subjects.worst_case
        lines.append(
            f"subjects ('{result.subjects.group_column}'): worst {worst.attack} AUC {_fmt_ci(worst.auc, worst.auc_ci)} "
            f"over {result.subjects.n_member_subjects} member / {result.subjects.n_nonmember_subjects} "
            "non-member subjects"
        )
    return lines


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"mia-audit: error: {message}\n")
    raise typer.Exit(code)


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
    context: Annotated[
        Optional[Path], typer.Option("--context", help="context.yaml with the controller's facts for the report.")
    ] = None,
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
    policy: Annotated[
        Optional[Path], typer.Option("--policy", help="Policy file (YAML); without it the built-in default policy applies.")
    ] = None,
    baseline: Annotated[
        Optional[Path], typer.Option("--baseline", help="Previous results.json for the policy's regression rules.")
    ] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write the verdict as JUnit XML here.")] = None,
) -> None:
    """Audit MODEL against member and non-member manifests; write results.json and the report into --out; apply
    the policy (the exit code is its verdict)."""
    written: list[Path] = []
    try:
        formats = _formats(output_formats, allowed=OUTPUT_FORMATS)
        report_context, context_yaml = _load_context(context)
        if drop_overlap and allow_overlap:
            raise InputError("--drop-overlap and --allow-overlap exclude each other")
        if output_kind.lower() not in ("auto", "logits", "probabilities"):
            raise InputError(f"--output-kind: '{output_kind}' is not one of auto, logits, probabilities")
        if exposure not in ("scores", "labels"):
            raise InputError(f"--exposure: '{exposure}' is not one of scores, labels")
        if not 0 <= delta < 1:
            raise InputError("--delta must be in [0, 1)")
        if label_only_noise <= 0:
            raise InputError("--label-only-noise must be positive")
        if 0 < shadow_models < 4:
            raise InputError(
                f"--shadow-models {shadow_models}: use 0 (off) or at least 4 (LiRA needs two shadows with and two "
                "without each record)"
            )
        try:
            intersections = parse_intersections(slice_intersections)
        except ValueError as error:
            raise InputError(f"--slice-intersections: {error}") from None
        from mia_audit.gate.inputs import gate_input
        from mia_audit.gate.judge import prepare_gate

        _check_junit_path(junit)
        gate = prepare_gate(policy_path=policy, baseline_path=baseline)  # a bad policy stops before the audit
        config = RunConfig(
            model_path=model,
            members_path=members,
            nonmembers_path=nonmembers,
            out_dir=out,
            model_format=model_format,
            output_kind=output_kind.lower(),
            batch_size=batch_size,
            manifest=ManifestOptions(
                label_column=label_column,
                id_column=id_column,
                group_column=group_column,
                meta_columns=_split(meta_columns),
                input_column=input_column,
            ),
            overlap="drop" if drop_overlap else "allow" if allow_overlap else "refuse",
            exposure=exposure,
            attacks=_split(attacks) or None,
            seed=seed,
            n_bootstrap=bootstrap,
            delta=delta,
            label_only=LabelOnlyOptions(queries=label_only_queries, noise_scale=label_only_noise),
            policy_path=policy,
            baseline_path=baseline,
            formats=formats,
            context_path=context,
            export_record_scores=export_record_scores,
            slicing=SlicingSpec(
                enabled=slices,
                columns=_split(slice_columns),
                bins=slice_bins,
                intersections=intersections,
                min_records=slice_min_records,
            ),
            shadow=ShadowOptions(
                n_models=shadow_models,
                population_path=population,
                recipe_path=shadow_recipe,
                cache_dir=cache_dir,
                use_cache=not no_cache,
            ),
            defense=DefenseOptions(
                spec=defenses,
                validation_path=validation,
                n_shadow_models=defense_shadow_models,
                export_dir=export_defended,
            ),
        )
        from mia_audit.workflow import run_audit  # heavy imports (torch, onnxruntime) after parsing

        console = _console(stderr=True)
        with RichProgress(console=console, enabled=not quiet and console.is_terminal) as progress:
            audit = run_audit(config=config, progress=progress)
        verdict = gate.judge(current=gate_input(result=audit.result, source=str(out / "results.json")))
        result = audit.result.model_copy(update={"verdict": verdict})
        document = result.to_json()
        results_json = (document + "\n").encode("utf-8")
        files = _render_reports(
            result=result,
            results_json=results_json,
            formats=formats,
            context=report_context,
            context_yaml=context_yaml,
            policy=policy,
        )
        restricted = None
        if export_record_scores:
            from mia_audit.files.export import RESTRICTED_FILE_NAME, record_scores_csv

            restricted = (RESTRICTED_FILE_NAME, record_scores_csv(run=audit).encode("utf-8"))
        # Everything is rendered in memory first: a failure above leaves nothing half-written.
        if "json" in formats:
            write_bytes_atomically(path=out / "results.json", data=results_json)
            written.append(out / "results.json")
        for name, data in files.items():
            write_bytes_atomically(path=out / name, data=data)
            written.append(out / name)
        if restricted is not None:
            write_bytes_atomically(path=out / restricted[0], data=restricted[1], mode=0o600)
        _write_gate_artifacts(verdict=verdict, result=result, junit=junit)
    except InputError as error:
        _fail(str(error), EXIT_INPUT)
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 — the CLI's last line of defence
        if os.environ.get("MIA_AUDIT_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (set MIA_AUDIT_DEBUG=1 for a traceback)", EXIT_INTERNAL)

    for warning in result.warnings:
        sys.stderr.write(f"mia-audit: warning: {warning}\n")
    summary_console = _console(stderr=as_json)
    summary_console.print(summary_table(result))
    for line in slice_lines(result):
        summary_console.print(line, markup=False, highlight=False)
    summary_console.print(verdict_table(verdict))
    for path in written:
        summary_console.print(f"{'results' if path.suffix == '.json' else 'report'}: {path}")
    if junit:
        summary_console.print(f"JUnit: {junit}")
    if restricted is not None:
        sys.stderr.write(
            f"mia-audit: per-record scores written to {out / restricted[0]} (RESTRICTED: personal data about the "
            "audited records; owner-only permissions; never attach it to the report)\n"
        )
    if as_json:
        sys.stdout.write(document + "\n")
    raise typer.Exit(verdict.exit_code)


@app.command()
def check(
    results: Annotated[Path, typer.Argument(help="A results.json written by `mia-audit run`.", show_default=False)],
    policy: Annotated[
        Optional[Path], typer.Option("--policy", help="Policy file (YAML); without it the built-in default policy applies.")
    ] = None,
    baseline: Annotated[
        Optional[Path], typer.Option("--baseline", help="Previous results.json for the policy's regression rules.")
    ] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write the verdict as JUnit XML here.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results document with the new verdict on stdout.")
    ] = False,
) -> None:
    """Judge an existing results.json against a policy without re-running the audit (RESULTS is not modified)."""
    try:
        from mia_audit.gate.inputs import read_gate_input
        from mia_audit.gate.judge import prepare_gate

        _check_junit_path(junit)
        gate = prepare_gate(policy_path=policy, baseline_path=baseline)
        current, raw = read_gate_input(path=results)
        verdict = gate.judge(current=current)
        raw["verdict"] = json.loads(verdict.model_dump_json())
        document = json.dumps(raw, indent=2, ensure_ascii=False)
        _write_gate_artifacts(verdict=verdict, result=current.result, junit=junit)
    except InputError as error:
        _fail(str(error), EXIT_INPUT)
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001
        if os.environ.get("MIA_AUDIT_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (set MIA_AUDIT_DEBUG=1 for a traceback)", EXIT_INTERNAL)
    console = _console(stderr=as_json)
    console.print(verdict_table(verdict))
    if as_json:
        sys.stdout.write(document + "\n")
    raise typer.Exit(verdict.exit_code)


@policy_app.command("init")
def policy_init(
    path: Annotated[Path, typer.Argument(help="Where to write it; '-' prints it.")] = Path("mia-policy.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter policy (the default policy, plus examples of every rule type)."""
    from mia_audit.gate.starter import STARTER_POLICY

    if str(path) == "-":
        sys.stdout.write(STARTER_POLICY)
        return
    if path.exists() and not force:
        _fail(f"{path} already exists; pass --force to overwrite it", EXIT_INPUT)
    try:
        write_atomically(path=path, text=STARTER_POLICY)
    except OSError as error:
        _fail(f"{path}: cannot write the policy ({error.strerror or error})", EXIT_INPUT)
    sys.stderr.write(f"wrote {path}; check it with: mia-audit policy validate {path}\n")


@policy_app.command("validate")
def policy_validate(
    path: Annotated[Path, typer.Argument(help="The policy file to check.", show_default=False)],
) -> None:
    """Check a policy file; every problem is reported with its line and field (exit code 2)."""
    from mia_audit.clock import utc_today
    from mia_audit.gate.policy import PolicyError, load_policy

    try:
        loaded = load_policy(path=path)
        today = utc_today()
    except PolicyError as error:
        for problem in error.problems:
            sys.stderr.write(f"mia-audit: error: {problem.describe(error.source)}\n")
        raise typer.Exit(EXIT_INPUT) from None
    except InputError as error:
        _fail(str(error), EXIT_INPUT)
    spec = loaded.policy
    typer.echo(f"{path}: valid policy: {len(spec.rules)} rule(s), {len(spec.regressions)} regression rule(s), "
               f"{len(spec.waivers)} waiver(s)")
    for waiver in spec.waivers:
        if waiver.expires < today:
            typer.echo(f"note: the waiver for rule '{waiver.rule}' expired on {waiver.expires}; it no longer waives")


@app.command()
def render(
    results: Annotated[Path, typer.Argument(help="A results.json written by mia-audit run.", show_default=False)],
    context: Annotated[
        Optional[Path], typer.Option("--context", help="context.yaml with the controller's facts for the report.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder [default: the folder of RESULTS].")
    ] = None,
    output_formats: Annotated[str, typer.Option("--format", help="Comma-separated outputs: html, pdf.")] = "html,pdf",
) -> None:
    """Re-render report.html and report.pdf from a results.json alone (no model, no data)."""
    target = out if out is not None else results.parent
    try:
        formats = _formats(output_formats, allowed=("html", "pdf"))
        report_context, context_yaml = _load_context(context)
        read = read_results(path=results)
        result, raw = read.result, read.data
        files = _render_reports(
            result=result, results_json=raw, formats=formats, context=report_context, context_yaml=context_yaml
        )
        for name, data in files.items():
            write_bytes_atomically(path=target / name, data=data)
    except InputError as error:
        _fail(str(error), EXIT_INPUT)
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 — the CLI's last line of defence
        if os.environ.get("MIA_AUDIT_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (set MIA_AUDIT_DEBUG=1 for a traceback)", EXIT_INTERNAL)
    for name in files:
        typer.echo(f"report: {target / name}")
    raise typer.Exit(EXIT_OK)


@app.command()
def version() -> None:
    """Print the tool version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry for `python -m mia_audit`
    app()
