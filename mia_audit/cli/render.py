"""`mia-audit render` (the report again from a results.json alone) and `mia-audit version`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mia_audit import __version__
from mia_audit.cli.app import EXIT_OK, ContextOption, app, exit_codes
from mia_audit.cli.files import parse_formats, read_context, render_reports, write_bytes_atomically
from mia_audit.files.results_file import read_results

__all__ = ["render", "version"]


@app.command()
def render(
    results: Annotated[Path, typer.Argument(help="A results.json written by mia-audit run.", show_default=False)],
    context: ContextOption = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder [default: the folder of RESULTS].")
    ] = None,
    output_formats: Annotated[str, typer.Option("--format", help="Comma-separated outputs: html, pdf.")] = "html,pdf",
) -> None:
    """Re-render report.html and report.pdf from a results.json alone (no model, no data)."""
    target = out if out is not None else results.parent
    with exit_codes():
        formats = parse_formats(output_formats, allowed=("html", "pdf"))
        report_context, context_yaml = read_context(context)
        read = read_results(path=results)
        files = render_reports(
            result=read.result, results_json=read.data, formats=formats, context=report_context,
            context_yaml=context_yaml,
        )
        for name, data in files.items():
            write_bytes_atomically(path=target / name, data=data)
    for name in files:
        typer.echo(f"report: {target / name}")
    raise typer.Exit(EXIT_OK)


@app.command()
def version() -> None:
    """Print the tool version."""
    typer.echo(__version__)
