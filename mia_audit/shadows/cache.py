"""On-disk cache of shadow-model outputs, so a re-run (other slices, re-rendering) does not retrain.

Location, first that applies: `--cache-dir DIR`; `$MIA_AUDIT_CACHE_DIR`; `$XDG_CACHE_HOME/mia-audit`;
`~/.cache/mia-audit`. Never inside `--out` unless the user points `--cache-dir` there. `--no-cache`
turns it off (nothing read, nothing written).

Key: SHA-256 over the model file's SHA-256, the pool (features, labels and the member / non-member /
population split), the resolved recipe, the number of shadows, the seed, the output kind, and the
versions of mia-audit's shadow code, torch and scikit-learn. Any change retrains.

One entry = one `.npz` file (keep-mask and shadow outputs) written atomically (temp file + rename) with
owner-only permissions: the entries hold per-record model outputs of the audited data, so they are as
sensitive as the data; delete the folder to remove them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_FORMAT", "cache_key", "default_cache_dir", "load_entry", "store_entry"]

#: Bump when the meaning of cached arrays changes.
CACHE_FORMAT = "shadow-outputs-v2"  # v2: named seed streams


def default_cache_dir() -> Path:
    env = os.environ.get("MIA_AUDIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mia-audit"


def cache_key(*, parts: dict[str, Any], arrays: list[np.ndarray]) -> str:
    """SHA-256 over a JSON description and the raw bytes of the arrays (shape and dtype included)."""
    digest = hashlib.sha256()
    digest.update(CACHE_FORMAT.encode())
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def _entry_path(directory: Path, key: str) -> Path:
    return directory / f"shadows-{key[:40]}.npz"


def load_entry(*, directory: Path, key: str) -> dict[str, Any] | None:
    """The cached arrays and metadata for `key`, or None (missing, unreadable or for another key)."""
    path = _entry_path(directory, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            entry = {name: data[name] for name in data.files}
        meta = json.loads(str(entry.pop("meta")))
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("key") != key:
        return None
    entry["meta"] = meta
    return entry


def store_entry(*, directory: Path, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path | None:
    """Write one entry atomically; a cache that cannot be written is skipped (returns None), never fatal."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".shadows-", suffix=".npz.tmp")
        try:
            os.chmod(temporary, 0o600)
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, meta=np.array(json.dumps({**meta, "key": key})), **arrays)
            path = _entry_path(directory, key)
            os.replace(temporary, path)
            return path
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return None
