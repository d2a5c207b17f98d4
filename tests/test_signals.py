"""Per-record signals against independent ground truth (REFERENCES.md golden vectors, scipy)."""

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from mia_audit.data.signals import compute_signals


def test_tf_privacy_data_structures_cross_entropy():
    """tensorflow/privacy data_structures_test.py: cross-entropy of logits train/test."""
    train = compute_signals(
        outputs=np.array([[-0.3, 1.5, 0.2], [2, 3, 0.5]]), output_kind="logits", labels=np.array([1, 0])
    )
    test = compute_signals(outputs=np.array([[2, 0.3, 0.2], [0.3, -0.5, 0.2]]), output_kind="logits", labels=np.array([0, 2]))
    np.testing.assert_allclose(train.loss, [0.36313551, 1.37153903], rtol=1e-7)
    np.testing.assert_allclose(test.loss, [0.29860897, 0.95618669], rtol=1e-7)


def test_tf_privacy_advanced_mia_signals():
    """tensorflow/privacy advanced_mia_test.py: confidence, cross-entropy, logit-scaled confidence, hinge."""
    s = compute_signals(outputs=np.array([[1.0, 2, -3], [-1, 1, 0]]), output_kind="logits", labels=np.array([1, 2]))
    np.testing.assert_allclose(s.true_label_probability, [0.72747516, 0.24472847], rtol=1e-7)
    np.testing.assert_allclose(s.loss, [0.31817543, 1.40760596], rtol=1e-7)
    np.testing.assert_allclose(s.logit_scaled_confidence, [0.98185009, -1.12692802], rtol=1e-7)
    np.testing.assert_allclose(s.hinge, [1, -1])


def test_probabilities_and_logits_agree():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 4)) * 3
    labels = rng.integers(0, 4, size=50)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    a = compute_signals(outputs=logits, output_kind="logits", labels=labels)
    b = compute_signals(outputs=p, output_kind="probabilities", labels=labels)
    for name in ("loss", "entropy", "modified_entropy", "logit_scaled_confidence", "top1_confidence"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(a.predicted, b.predicted)


def test_entropy_and_modified_entropy_by_hand():
    """Song & Mittal 2021: Mentr = −(1−p_y) log p_y − Σ_{i≠y} p_i log(1−p_i); H against scipy."""
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = np.array([0, 1])
    s = compute_signals(outputs=p, output_kind="probabilities", labels=labels)
    np.testing.assert_allclose(s.entropy, scipy_entropy(p, axis=1), rtol=1e-12)
    by_hand = [
        -(0.3 * np.log(0.7)) - (0.2 * np.log(0.8) + 0.1 * np.log(0.9)),
        -(0.7 * np.log(0.3)) - (0.1 * np.log(0.9) + 0.6 * np.log(0.4)),
    ]
    np.testing.assert_allclose(s.modified_entropy, by_hand, rtol=1e-12)


def test_float64_keeps_confident_members_apart():
    """DESIGN §4.1: confident members must not all tie at loss 0 (they would in float32)."""
    logits = np.array([[40.0, 0.0], [45.0, 0.0], [50.0, 0.0]], dtype=np.float32)
    s = compute_signals(outputs=logits, output_kind="logits", labels=np.array([0, 0, 0]))
    assert np.all(s.loss > 0)
    assert len(np.unique(s.loss)) == 3
    assert np.all(np.diff(s.logit_scaled_confidence) > 0)
    np.testing.assert_allclose(s.logit_scaled_confidence, [40, 45, 50], rtol=1e-9)


def test_argmax_takes_first_maximum_on_ties():
    s = compute_signals(outputs=np.array([[0.5, 0.5], [0.2, 0.8]]), output_kind="probabilities", labels=np.array([1, 1]))
    assert s.predicted.tolist() == [0, 1]
    assert s.correct.tolist() == [False, True]


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_no_nans_on_extreme_inputs(kind):
    outputs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if kind == "probabilities" else np.array([[800.0, -800, 0]] * 2)
    s = compute_signals(outputs=outputs, output_kind=kind, labels=np.array([0, 0]))
    for name in ("loss", "entropy", "modified_entropy", "logit_scaled_confidence", "hinge"):
        assert not np.isnan(getattr(s, name)).any(), name
