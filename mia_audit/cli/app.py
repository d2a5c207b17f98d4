"""The Typer application, its exit codes, and the one place errors become an exit code and one line.

Exit codes (`run` and `check`): 0 policy passed (or only warned), 1 policy failed, 2 usage or input error,
3 inconclusive, 4 internal error. Progress and messages go to stderr; stdout carries the tables, or the
results document alone with --json (which never changes the exit code).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from mia_audit.errors import InputError

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

# Options shared by several commands, declared once.
PolicyOption = Annotated[
    Optional[Path], typer.Option("--policy", help="Policy file (YAML); without it the built-in default policy applies.")
]
BaselineOption = Annotated[
    Optional[Path], typer.Option("--baseline", help="Previous results.json for the policy's regression rules.")
]
JunitOption = Annotated[Optional[Path], typer.Option("--junit", help="Also write the verdict as JUnit XML here.")]
ContextOption = Annotated[
    Optional[Path], typer.Option("--context", help="context.yaml with the controller's facts for the report.")
]

__all__ = [
    "EXIT_INPUT", "EXIT_INTERNAL", "EXIT_OK", "BaselineOption", "ContextOption", "JunitOption", "PolicyOption", "app",
    "exit_codes", "fail", "policy_app",
]


def fail(message: str, code: int) -> None:
    """One line on stderr, then exit with `code`."""
    sys.stderr.write(f"mia-audit: error: {message}\n")
    raise typer.Exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """Bad input → one line, exit 2; any other failure → one line, exit 4 (a traceback with MIA_AUDIT_DEBUG=1)."""
    try:
        yield
    except InputError as error:
        fail(str(error), EXIT_INPUT)
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 — the CLI's last line of defence
        if os.environ.get("MIA_AUDIT_DEBUG"):
            raise
        fail(f"internal error: {type(error).__name__}: {error} (set MIA_AUDIT_DEBUG=1 for a traceback)", EXIT_INTERNAL)
