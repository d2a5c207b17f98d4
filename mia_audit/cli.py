"""The `mia-audit` command line: parses options, calls the workflow, prints. No audit logic here.

Exit codes: 0 audit completed, 2 usage or input error, 4 internal error (policy verdicts 1 and 3 arrive
with the gating feature). Progress and messages go to stderr; stdout carries the summary table, or the
results document alone with --json.
"""

from __future__ import annotations

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
from mia_audit.config import LabelOnlyOptions, ManifestOptions, RunConfig, ShadowOptions
from mia_audit.errors import InputError
from mia_audit.results import AuditResult

app = typer.Typer(
    name="mia-audit",
    help="Measure how much a trained classifier leaks about its training records (membership inference).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_INTERNAL = 4


def _console(*, stderr: bool) -> Console:
    """Rich console; when not on a terminal (CI logs, pipes) wide enough that the table stays readable."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=160)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
        Optional[str], typer.Option(help="Data-subject id column (never fed to the model).")
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
    as_json: Annotated[bool, typer.Option("--json", help="Also print results.json on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Audit MODEL against member and non-member manifests; write results.json into --out."""
    try:
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
            shadow=ShadowOptions(
                n_models=shadow_models,
                population_path=population,
                recipe_path=shadow_recipe,
                cache_dir=cache_dir,
                use_cache=not no_cache,
            ),
        )
        from mia_audit.workflow import run_audit  # heavy imports (torch, onnxruntime) after parsing

        console = _console(stderr=True)
        with RichProgress(console=console, enabled=not quiet and console.is_terminal) as progress:
            audit = run_audit(config=config, progress=progress)
        result = audit.result
        document = result.to_json()
        write_atomically(path=out / "results.json", text=document + "\n")
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
    summary_console.print(f"results: {out / 'results.json'}")
    if as_json:
        sys.stdout.write(document + "\n")
    raise typer.Exit(EXIT_OK)


@app.command()
def version() -> None:
    """Print the tool version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry for `python -m mia_audit`
    app()
