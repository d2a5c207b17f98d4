"""Generic tables for results fields shown without knowing their schema (optional sections, the appendix's
resolved configuration)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mia_audit.report.format import ci, num

__all__ = ["GenericTable", "dump", "flatten", "generic_table"]


@dataclass(frozen=True)
class GenericTable:
    """Rows of an optional results field (slices, defenses, ...) shown without knowing its schema."""

    columns: list[str]
    rows: list[list[str]]


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (list, tuple)):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return ci(tuple(float(v) for v in value))
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_cell(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(item) for item in value)
    return str(value)


def generic_table(value: Any) -> GenericTable | None:
    """A list of records (or a mapping name → record) as a table; scalars and nested values as text."""
    value = dump(value)
    if not value:
        return None
    if isinstance(value, dict):
        if all(isinstance(item, dict) for item in value.values()):
            records = [{"name": key, **item} for key, item in value.items()]
        else:
            records = [{"field": key, "value": item} for key, item in value.items()]
    elif isinstance(value, list):
        records = [item if isinstance(item, dict) else {"value": item} for item in value]
    else:
        records = [{"value": value}]
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    return GenericTable(columns=columns, rows=[[_cell(record.get(key)) for key in columns] for record in records])


def flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        rows = []
        for key, item in value.items():
            rows.extend(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return rows
    return [(prefix, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)]
