"""`mia-audit check` and `mia-audit policy init|validate`: the release gate on an existing results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mia_audit.cli.app import (
    EXIT_INPUT,
    BaselineOption,
    JunitOption,
    PolicyOption,
    app,
    exit_codes,
    fail,
    policy_app,
)
from mia_audit.cli.console import make_console, verdict_table
from mia_audit.cli.files import check_junit_path, write_atomically, write_gate_artifacts
from mia_audit.clock import utc_today
from mia_audit.errors import InputError
from mia_audit.gate.inputs import read_gate_input
from mia_audit.gate.judge import prepare_gate
from mia_audit.gate.policy import PolicyError, load_policy
from mia_audit.gate.starter import STARTER_POLICY

__all__ = ["check", "policy_init", "policy_validate"]


@app.command()
def check(
    results: Annotated[Path, typer.Argument(help="A results.json written by `mia-audit run`.", show_default=False)],
    policy: PolicyOption = None,
    baseline: BaselineOption = None,
    junit: JunitOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results document with the new verdict on stdout.")
    ] = False,
) -> None:
    """Judge an existing results.json against a policy without re-running the audit (RESULTS is not modified)."""
    with exit_codes():
        check_junit_path(junit)
        gate = prepare_gate(policy_path=policy, baseline_path=baseline)
        current, raw = read_gate_input(path=results)
        verdict = gate.judge(current=current)
        raw["verdict"] = json.loads(verdict.model_dump_json())
        document = json.dumps(raw, indent=2, ensure_ascii=False)
        write_gate_artifacts(verdict=verdict, result=current.result, junit=junit)
    make_console(stderr=as_json).print(verdict_table(verdict))
    if as_json:
        sys.stdout.write(document + "\n")
    raise typer.Exit(verdict.exit_code)


@policy_app.command("init")
def policy_init(
    path: Annotated[Path, typer.Argument(help="Where to write it; '-' prints it.")] = Path("mia-policy.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter policy (the default policy, plus examples of every rule type)."""
    if str(path) == "-":
        sys.stdout.write(STARTER_POLICY)
        return
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it", EXIT_INPUT)
    try:
        write_atomically(path=path, text=STARTER_POLICY)
    except OSError as error:
        fail(f"{path}: cannot write the policy ({error.strerror or error})", EXIT_INPUT)
    sys.stderr.write(f"wrote {path}; check it with: mia-audit policy validate {path}\n")


@policy_app.command("validate")
def policy_validate(
    path: Annotated[Path, typer.Argument(help="The policy file to check.", show_default=False)],
) -> None:
    """Check a policy file; every problem is reported with its line and field (exit code 2)."""
    try:
        loaded = load_policy(path=path)
        today = utc_today()
    except PolicyError as error:
        for problem in error.problems:
            sys.stderr.write(f"mia-audit: error: {problem.describe(error.source)}\n")
        raise typer.Exit(EXIT_INPUT) from None
    except InputError as error:
        fail(str(error), EXIT_INPUT)
    spec = loaded.policy
    typer.echo(f"{path}: valid policy: {len(spec.rules)} rule(s), {len(spec.regressions)} regression rule(s), "
               f"{len(spec.waivers)} waiver(s)")
    for waiver in spec.waivers:
        if waiver.expires < today:
            typer.echo(f"note: the waiver for rule '{waiver.rule}' expired on {waiver.expires}; it no longer waives")
