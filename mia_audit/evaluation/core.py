"""Steps 3–6 as one function: a model's outputs on the audit records (+ reference evidence) in, results out.

`evaluate()` is the single place where attacks are run and measured. The main audit calls it once for the
audited model; step 7 calls it once per defended variant, on that variant's outputs and its adaptive
shadows. The ideas come from TensorFlow Privacy's `run_attacks(attack_input, slicing_spec, attack_types)`
(one entry point over a container of signals) and ML Privacy Meter (the target is one more model whose
outputs sit beside the reference models'); the code is ours.

Attacks run in the registry's order whatever order they were asked for in, and every attack draws its
randomness (noise queries, cross-fitting folds, bootstrap resamples) from streams named after it, so an
attack's numbers never depend on which other attacks ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mia_audit.attacks import AttackContext, AttackScores, registered_attacks
from mia_audit.data.audit_data import AuditData
from mia_audit.data.signals import Signals
from mia_audit.evaluation.measure import attack_result
from mia_audit.results import AttackResult
from mia_audit.seeds import SeedStreams
from mia_audit.shadows.evidence import ReferenceOutputs, ShadowEvidence

__all__ = ["Evaluation", "EvaluationOptions", "TargetOutputs", "evaluate", "needs_shadows"]


@dataclass(frozen=True, eq=False)
class TargetOutputs:
    """The audited model (or a defended variant) as the attacker sees it: signals per side, a label oracle."""

    members: Signals
    nonmembers: Signals
    capabilities: frozenset[str]  # what the deployment offers: labels, scores, queries
    population: Signals | None = None  # needed only by shadow / reference attacks
    predict_labels: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class EvaluationOptions:
    """How results are measured: bootstrap resamples, δ of the ε bound, and attack settings."""

    n_bootstrap: int
    delta: float
    attack_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Per-attack results (with CIs), the per-record scores they came from, and why any attack did not run."""

    results: list[AttackResult]
    scores: dict[str, AttackScores]
    not_run: dict[str, str]


def needs_shadows(name: str) -> bool:
    """Whether an attack reads shadow / reference models (workflow step 5)."""
    return "shadow_models" in registered_attacks()[name].needs


class _Silent:
    def begin(self, label: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def end(self) -> None: ...


def _shadow_evidence(*, outputs: TargetOutputs, data: AuditData, shadows: ReferenceOutputs) -> ShadowEvidence:
    target = [outputs.members, outputs.nonmembers]
    if data.population is not None:
        if outputs.population is None:
            raise ValueError("shadow attacks need the target's outputs on the population records")
        target.append(outputs.population)
    if shadows.keep.shape[0] != data.n_pool:
        raise ValueError(f"reference outputs cover {shadows.keep.shape[0]} records, the pool has {data.n_pool}")
    return ShadowEvidence(
        keep=shadows.keep,
        log_probs=shadows.log_probs,
        phi=shadows.phi,
        labels=data.pool_labels,
        target_log_probs=np.concatenate([signals.log_probs for signals in target]),
        target_phi=np.concatenate([signals.logit_scaled_confidence for signals in target]),
        n_members=data.members.n,
        n_nonmembers=data.nonmembers.n,
        n_population=data.n_population,
    )


def evaluate(
    *,
    outputs: TargetOutputs,
    data: AuditData,
    attacks: Sequence[str],
    seeds: SeedStreams,
    options: EvaluationOptions,
    shadows: ReferenceOutputs | None = None,
    progress: Any = None,
) -> Evaluation:
    """Run the requested attacks whose needs are met, and measure each (DESIGN §4.3).

    `seeds` is this evaluation's namespace; attack `a` scores with `seeds.child("attack", a)` and is
    bootstrapped with `seeds.integer("measure", a)`.
    """
    sink = progress or _Silent()
    registry = registered_attacks()
    unknown = sorted(set(attacks) - set(registry))
    if unknown:
        raise ValueError(f"unknown attack(s): {', '.join(unknown)}")
    wanted = set(attacks)
    names = [name for name in registry if name in wanted]
    capabilities = outputs.capabilities | ({"shadow_models"} if shadows is not None else set())
    evidence = None if shadows is None else _shadow_evidence(outputs=outputs, data=data, shadows=shadows)
    scores: dict[str, AttackScores] = {}
    not_run: dict[str, str] = {}
    sink.begin("Running attacks", total=len(names))
    for name in names:
        missing = registry[name].missing(capabilities)
        if missing:
            not_run[name] = f"needs {', '.join(sorted(missing))}"
        else:
            context = AttackContext(
                members=outputs.members,
                nonmembers=outputs.nonmembers,
                member_features=data.members.features,
                nonmember_features=data.nonmembers.features,
                capabilities=capabilities,
                seeds=seeds.child("attack", name),
                predict_labels=outputs.predict_labels,
                options=options.attack_options,
                shadows=evidence,
            )
            scores[name] = registry[name]().score(context)
        sink.advance()
    sink.end()
    sink.begin("Measuring (bootstrap CIs)", total=len(scores))
    results = []
    for name, attack_scores in scores.items():
        results.append(
            attack_result(
                attack=registry[name],
                scores=attack_scores,
                seed=seeds.integer("measure", name),
                n_bootstrap=options.n_bootstrap,
                delta=options.delta,
            )
        )
        sink.advance()
    sink.end()
    return Evaluation(results=results, scores=scores, not_run=not_run)
