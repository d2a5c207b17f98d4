"""Reading a results.json back: `mia-audit render` and `mia-audit check` (and a policy's baseline) use this one
reader, so a file is refused for the same reasons with the same one-line messages (exit code 2).

A results file is accepted when it is UTF-8 JSON, an object, of this tool's schema major version
(`mia_audit.results.SCHEMA_VERSION`; later minor versions only add fields), and valid against `AuditResult`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mia_audit import __version__
from mia_audit.errors import InputError
from mia_audit.files.yaml_source import format_location
from mia_audit.results import SCHEMA_VERSION, AuditResult

__all__ = ["ResultsFile", "read_results"]


@dataclass(frozen=True)
class ResultsFile:
    """A validated results.json: the result, the parsed document and its exact bytes (attached to the PDF)."""

    path: Path
    result: AuditResult
    document: dict
    data: bytes


def _document(path: Path) -> tuple[dict, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the results file ({error.strerror or error})") from None
    try:
        document = json.loads(data.decode("utf-8-sig"))  # a BOM (Windows editors) is not an error
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a JSON document (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        detail = error.msg[0].lower() + error.msg[1:]
        raise InputError(
            f"{path}: not a JSON document (line {error.lineno}, column {error.colno}: not valid JSON, {detail})"
        ) from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: not a mia-audit results document (expected a JSON object)")
    return document, data


def read_results(*, path: Path, lenient: tuple[str, ...] = ()) -> ResultsFile:
    """Read and validate a results.json; InputError names the file and what is wrong, in one line.

    `lenient` names top-level fields left out of validation for a caller that reads them itself (the policy
    gate reads `slices` leniently, so that slices written by another tool or version can still be judged).
    """
    document, data = _document(path)
    version = str(document.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise InputError(
            f"{path}: results schema version '{version or 'missing'}' is not readable by mia-audit {__version__} "
            f"(schema {SCHEMA_VERSION})"
        )
    try:
        result = AuditResult.model_validate({key: value for key, value in document.items() if key not in lenient})
    except ValidationError as error:
        first = error.errors()[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise InputError(f"{path}: key '{format_location(first['loc']) or '(top level)'}': {message}") from None
    return ResultsFile(path=path, result=result, document=document, data=data)
