"""Model format registry: each adapter registers its name, file suffixes and a content sniffer.

`load_model` picks the adapter by explicit format, else by file suffix, else by sniffing the
first bytes of the file. Adding a format is one decorated class; nothing here names a format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mia_audit.errors import ModelLoadError
from mia_audit.models.base import ModelAdapter, short_reason

__all__ = ["register_adapter", "available_formats", "load_model", "adapter_class"]

A = TypeVar("A", bound=type[ModelAdapter])

#: Bytes read from the head of a file for content sniffing.
SNIFF_BYTES = 64

_ADAPTERS: dict[str, type[ModelAdapter]] = {}
_SUFFIXES: dict[str, str] = {}


def register_adapter(name: str, *, suffixes: tuple[str, ...] | list[str]) -> Callable[[A], A]:
    """Class decorator registering a `ModelAdapter` subclass under `name` for these file suffixes.

    The class may define a classmethod `sniff(head: bytes) -> bool` that says whether a file whose
    first bytes are `head` looks like its format; it is used when the suffix is not registered.
    """
    name = name.lower()
    normalized = [s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes]

    def decorator(cls: A) -> A:
        if name in _ADAPTERS:
            raise ValueError(f"model format {name!r} is already registered by {_ADAPTERS[name].__name__}")
        taken = [s for s in normalized if s in _SUFFIXES]
        if taken:
            raise ValueError(f"suffix {taken[0]!r} is already registered for format {_SUFFIXES[taken[0]]!r}")
        for suffix in normalized:
            _SUFFIXES[suffix] = name
        cls.format_name = name
        _ADAPTERS[name] = cls
        return cls

    return decorator


def available_formats() -> list[str]:
    """Names of the registered model formats, in registration order."""
    return list(_ADAPTERS)


def adapter_class(name: str) -> type[ModelAdapter]:
    """The adapter class registered under `name` (case-insensitive); ModelLoadError if unknown."""
    try:
        return _ADAPTERS[name.lower()]
    except KeyError:
        raise ModelLoadError(
            f"unknown model format {name!r}; available formats: {', '.join(available_formats())}"
        ) from None


def _sniff(path: Path) -> str:
    """Name of the format whose sniffer accepts the file's first bytes."""
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read model file ({short_reason(exc)})") from None
    matches = [name for name, cls in _ADAPTERS.items() if getattr(cls, "sniff", None) and cls.sniff(head)]
    if not matches:
        raise ModelLoadError(
            f"{path}: cannot tell the model format from its content; "
            f"pass the format explicitly (one of: {', '.join(available_formats())})"
        )
    return matches[0]


def load_model(*, path: Path, model_format: str | None = None) -> ModelAdapter:
    """Load the model at `path` with the adapter for `model_format` (default: from suffix or content).

    Raises `ModelLoadError` (one line naming the file) when the file is missing, unreadable,
    corrupt or of an unsupported kind.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: model file not found")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read model file ({short_reason(exc)})") from None
    if size == 0:
        raise ModelLoadError(f"{path}: model file is empty")

    if model_format is not None:
        cls = adapter_class(model_format)
    else:
        name = _SUFFIXES.get(path.suffix.lower()) or _sniff(path)
        cls = _ADAPTERS[name]
    try:
        return cls(path=path)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a safety net: never a traceback for a bad file
        raise ModelLoadError(
            f"{path}: cannot load it as a {cls.format_name} model ({short_reason(exc)})"
        ) from None
