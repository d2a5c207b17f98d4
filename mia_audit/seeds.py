"""Named seed streams: every random choice of a run draws from a stream named by its purpose.

A stream is identified by the run seed and a path of names and indices, e.g.
``("bootstrap", "loss")`` or ``("shadow", "init", 7)``. Its entropy is NumPy's `SeedSequence` over the
run seed and a SHA-256 digest of the path, so streams are independent of each other and of the order in
which they are asked for: adding or removing an attack never changes another attack's numbers, and a
shadow model's weights depend on its index alone, not on how models are grouped or scheduled.

`child(...)` gives a namespace (every step-7 variant audits under its own), `numpy(...)` a NumPy
`Generator`, `integer(...)` an integer seed for APIs that take one (scikit-learn's ``random_state``,
functions with a ``seed`` argument), `torch(...)` a `torch.Generator` (passed explicitly: nothing in
mia-audit touches torch's global RNG).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["SeedStreams"]

Part = str | int


def _path_words(path: tuple[Part, ...]) -> list[int]:
    """The path as 32-bit words: a SHA-256 digest of its canonical text (type-tagged, so 1 ≠ "1")."""
    text = "/".join(f"{type(part).__name__}:{part}" for part in path)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


@dataclass(frozen=True)
class SeedStreams:
    """The run seed and a namespace; hands out independent, reproducible random streams by name."""

    run_seed: int
    namespace: tuple[Part, ...] = ()

    def child(self, *parts: Part) -> "SeedStreams":
        """Streams under a sub-namespace (e.g. one defended variant's whole re-audit)."""
        return SeedStreams(run_seed=self.run_seed, namespace=self.namespace + tuple(parts))

    def sequence(self, *parts: Part) -> np.random.SeedSequence:
        if not parts:
            raise ValueError("a seed stream needs a name")
        seed_words = [self.run_seed & 0xFFFF_FFFF, (self.run_seed >> 32) & 0xFFFF_FFFF, int(self.run_seed < 0)]
        return np.random.SeedSequence(entropy=seed_words + _path_words(self.namespace + tuple(parts)))

    def numpy(self, *parts: Part) -> np.random.Generator:
        """A fresh NumPy generator for this purpose."""
        return np.random.default_rng(self.sequence(*parts))

    def integer(self, *parts: Part, bits: int = 63) -> int:
        """A non-negative integer seed below 2**bits (32 for scikit-learn's ``random_state``)."""
        if not 1 <= bits <= 63:
            raise ValueError("bits must lie in 1..63")
        word = int(self.sequence(*parts).generate_state(1, dtype=np.uint64)[0])
        return word >> (64 - bits)

    def torch(self, *parts: Part) -> "torch.Generator":
        """A fresh CPU `torch.Generator` for this purpose."""
        import torch

        return torch.Generator().manual_seed(self.integer(*parts))
