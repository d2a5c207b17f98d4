"""The `mia-audit` command line: parses options, calls the workflow and the report, prints. No audit logic here.

- `app`: the Typer application, exit codes, and how errors become one line and an exit code;
- `run`: `mia-audit run` — options → RunConfig → audit → outputs → summary;
- `gate_commands`: `mia-audit check` and `mia-audit policy init|validate`;
- `render`: `mia-audit render` and `mia-audit version`;
- `console`: the tables and progress bars printed; `files`: option parsing helpers, atomic writes, report files.

`mia_audit.cli:app` is the console-script entry point.
"""

from mia_audit.cli import run, gate_commands, render  # noqa: F401, I001 — register the commands in help order
from mia_audit.cli.app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m mia_audit`
    app()
