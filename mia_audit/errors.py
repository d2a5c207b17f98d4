"""Errors the CLI turns into one clear line and an exit code.

`InputError` is for anything the user can fix (a file, a column, a row): exit code 2.
Messages name the file, the column and the first offending row where they apply, and never
contain raw feature values or per-record scores beyond the single offending cell's description.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: missing file, malformed manifest, model/data mismatch. Exit code 2."""

    exit_code = 2


class ModelLoadError(InputError):
    """The model file is missing, corrupt or of an unsupported kind."""
