"""Attacks: registry, declared needs, orientation (higher = member), and the label-only noise attack."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from mia_audit.attacks import AttackContext, registered_attacks
from mia_audit.data.signals import compute_signals
from mia_audit.seeds import SeedStreams


def _context(*, member_x, nonmember_x, member_y, nonmember_y, oracle, seed=0, queries=400, noise_scale=0.5):
    def logits_for(x):
        z = oracle(x)
        return np.stack([np.zeros_like(z), z], axis=1)

    return AttackContext(
        members=compute_signals(outputs=logits_for(member_x[:, 0]), output_kind="logits", labels=member_y),
        nonmembers=compute_signals(outputs=logits_for(nonmember_x[:, 0]), output_kind="logits", labels=nonmember_y),
        member_features=member_x,
        nonmember_features=nonmember_x,
        capabilities=frozenset({"labels", "scores", "queries"}),
        seeds=SeedStreams(run_seed=seed),
        predict_labels=lambda x: (oracle(x[:, 0]) > 0).astype(np.int64),
        options={"queries": queries, "noise_scale": noise_scale},
    )


def test_registry_names_match_design():
    assert set(registered_attacks()) >= {
        "baseline", "top1_confidence", "true_label_probability", "loss", "entropy", "modified_entropy",
        "label_only_noise",
    }
    for cls in registered_attacks().values():
        assert cls.needs and cls.reference and cls.family


def test_metric_attacks_are_oriented_member_high():
    """A confident correct prediction must score higher than an unsure one for every metric attack."""
    sure = np.array([[0.0, 6.0]])
    unsure = np.array([[0.0, 0.2]])
    ctx = AttackContext(
        members=compute_signals(outputs=sure, output_kind="logits", labels=np.array([1])),
        nonmembers=compute_signals(outputs=unsure, output_kind="logits", labels=np.array([1])),
        member_features=np.zeros((1, 1)),
        nonmember_features=np.zeros((1, 1)),
        capabilities=frozenset({"labels", "scores"}),
        seeds=SeedStreams(run_seed=0),
    )
    for name in ("top1_confidence", "true_label_probability", "loss", "entropy", "modified_entropy"):
        scores = registered_attacks()[name]().score(ctx)
        assert scores.member_scores[0] > scores.nonmember_scores[0], name


def test_label_only_noise_matches_gaussian_probability():
    """Choquette-Choo et al. 2021: the score estimates P(label unchanged under noise) = Φ(|x| / σ).

    With a threshold classifier at 0 on one feature and noise σ = noise_scale · std(feature), a record at x
    keeps its label with probability Φ(|x|/σ); the attack's fraction over many queries must match it.
    """
    member_x = np.array([[3.0], [-3.0], [2.0]])
    nonmember_x = np.array([[0.1], [-0.2], [0.5]])
    y_m = (member_x[:, 0] > 0).astype(np.int64)
    y_n = (nonmember_x[:, 0] > 0).astype(np.int64)
    ctx = _context(member_x=member_x, nonmember_x=nonmember_x, member_y=y_m, nonmember_y=y_n,
                   oracle=lambda x: x * 10.0, queries=4000, noise_scale=0.5)
    scores = registered_attacks()["label_only_noise"]().score(ctx)
    sigma = 0.5 * np.concatenate([member_x, nonmember_x]).std()
    expected_m = norm.cdf(np.abs(member_x[:, 0]) / sigma)
    expected_n = norm.cdf(np.abs(nonmember_x[:, 0]) / sigma)
    np.testing.assert_allclose(scores.member_scores, expected_m, atol=0.03)
    np.testing.assert_allclose(scores.nonmember_scores, expected_n, atol=0.03)
    assert scores.member_scores.min() > scores.nonmember_scores.max()


def test_label_only_noise_is_seeded_and_spares_constant_features():
    x = np.array([[1.0, 5.0], [0.2, 5.0], [-0.3, 5.0], [2.0, 5.0]])
    y = (x[:, 0] > 0).astype(np.int64)
    seen = []

    def predict_labels(values):
        seen.append(values[:, 1].copy())
        return (values[:, 0] > 0).astype(np.int64)

    ctx = _context(member_x=x[:2], nonmember_x=x[2:], member_y=y[:2], nonmember_y=y[2:],
                   oracle=lambda v: v * 10, queries=50)
    ctx = AttackContext(**{**ctx.__dict__, "predict_labels": predict_labels})
    attack = registered_attacks()["label_only_noise"]()
    first = attack.score(ctx)
    assert np.all(np.concatenate(seen) == 5.0)  # zero spread → zero noise on that feature
    again = attack.score(ctx)
    np.testing.assert_array_equal(first.member_scores, again.member_scores)
    other = attack.score(AttackContext(**{**ctx.__dict__, "seeds": SeedStreams(run_seed=1)}))
    assert not np.array_equal(np.r_[first.member_scores, first.nonmember_scores],
                              np.r_[other.member_scores, other.nonmember_scores])
