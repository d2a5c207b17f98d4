"""The run's notion of "now": UTC, or the time SOURCE_DATE_EPOCH fixes for reproducible documents.

SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/) is a whole number of seconds since
1970-01-01T00:00:00Z. The specification asks tools to fail on a malformed value rather than fall back to the
current time silently, so a bad value is refused with one clear line (exit code 2) wherever a date is needed:
the report's timestamp, the audit's `created_utc`, the waiver expiry date of the policy gate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime, timezone

from mia_audit.errors import InputError

__all__ = ["source_date_epoch", "utc_now", "utc_timestamp", "utc_today"]


def source_date_epoch(*, environ: Mapping[str, str] | None = None) -> datetime | None:
    """The moment SOURCE_DATE_EPOCH fixes, or None when it is unset or empty; InputError when malformed."""
    environ = os.environ if environ is None else environ
    value = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise InputError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not '{value}'")
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise InputError(f"SOURCE_DATE_EPOCH {value} is out of range for a date") from None


def utc_now(*, environ: Mapping[str, str] | None = None) -> datetime:
    """SOURCE_DATE_EPOCH's moment when set, else the current UTC time."""
    fixed = source_date_epoch(environ=environ)
    return fixed if fixed is not None else datetime.now(timezone.utc)


def utc_timestamp(*, environ: Mapping[str, str] | None = None) -> str:
    """ISO 8601 to the second, "YYYY-MM-DDTHH:MM:SSZ" (the form results.json and the report use)."""
    return utc_now(environ=environ).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def utc_today(*, environ: Mapping[str, str] | None = None) -> date:
    """Today's UTC date (SOURCE_DATE_EPOCH's when set): the date the policy gate judges waivers on."""
    return utc_now(environ=environ).date()
