"""Each defense changes training or outputs the way its paper says (independent checks, tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mia_audit.seeds import SeedStreams
from mia_audit.defenses import TrainingPlan, parse_defenses, registered_defenses
from mia_audit.defenses.losses import flattened_targets, mixup_batch, per_class_mmd, relaxloss_objective, smooth_targets
from mia_audit.defenses.trainer import TrainRecipe, insert_dropout, make_training_data, train_with_plan
from mia_audit.errors import InputError


def test_issue_example_spec_parses_into_six_variants():
    variants = parse_defenses("label_smoothing:0.1,dropout:0.5,mixup,mmd_mixup,dp_sgd:epsilon=4,top_k:3")
    assert [v.defenses[0].name for v in variants] == [
        "label_smoothing", "dropout", "mixup", "mmd_mixup", "dp_sgd", "top_k"]
    assert variants[4].defenses[0].parameters.epsilon == 4
    assert variants[5].defenses[0].parameters.k == 3
    combo = parse_defenses("label_smoothing:0.2+top_k:1")[0]
    assert combo.plan().label_smoothing == 0.2 and len(combo.output) == 1


@pytest.mark.parametrize("spec, fragment", [("blur", "unknown defense 'blur'"), ("top_k:0", "k"),
                                            ("dropout:1.5", "p"), ("mixup:alpha", "alpha"),
                                            ("mixup+mixup", "twice"), ("label_only:3", "takes no value")])
def test_bad_specs_are_input_errors(spec, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_defenses(spec)


def test_every_defense_names_its_paper():
    for cls in registered_defenses().values():
        assert cls.reference and cls.title and cls.__doc__


def _probs(seed=0, n=40, k=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def test_top_k_rows_sum_to_one_with_k_nonzeros_and_keep_the_label():
    p = _probs()
    masked = parse_defenses("top_k:3")[0].apply_outputs(p)
    np.testing.assert_allclose(masked.sum(1), 1.0)
    assert np.all((masked > 0).sum(1) == 3)
    np.testing.assert_array_equal(masked.argmax(1), p.argmax(1))
    top3 = np.sort(p, axis=1)[:, -3:]
    np.testing.assert_allclose(np.sort(masked, axis=1)[:, -3:], top3 / top3.sum(1, keepdims=True))


def test_label_only_rounding_and_temperature():
    p = _probs()
    onehot = parse_defenses("label_only")[0].apply_outputs(p)
    assert np.all(onehot.sum(1) == 1) and np.array_equal(onehot.argmax(1), p.argmax(1))
    rounded = parse_defenses("rounding:1")[0].apply_outputs(p)
    np.testing.assert_array_equal(rounded, np.round(p, 1))
    hot = parse_defenses("temperature:3")[0].apply_outputs(p)
    np.testing.assert_allclose(hot.sum(1), 1.0)
    np.testing.assert_array_equal(hot.argmax(1), p.argmax(1))
    entropy = lambda q: -(q * np.log(q)).sum(1)  # noqa: E731
    assert np.all(entropy(hot) > entropy(p))
    by_hand = p ** (1 / 3) / (p ** (1 / 3)).sum(1, keepdims=True)
    np.testing.assert_allclose(hot, by_hand, rtol=1e-10)


def test_label_smoothing_targets():
    t = smooth_targets(torch.tensor([0, 2]), n_classes=4, epsilon=0.1)
    expected = torch.tensor([[0.925, 0.025, 0.025, 0.025], [0.025, 0.025, 0.925, 0.025]])
    torch.testing.assert_close(t, expected)


def test_mixup_mixes_pairs_with_one_lambda():
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    mx, my, lam = mixup_batch(x=x, targets=y, alpha=1.0, generator=torch.Generator().manual_seed(3))
    assert 0 <= lam <= 1
    # every mixed row is λ·row_i + (1−λ)·row_j for the same permutation j in x and y
    for i in range(6):
        js = [j for j in range(6) if torch.allclose(mx[i], lam * x[i] + (1 - lam) * x[j])]
        assert any(torch.allclose(my[i], lam * y[i] + (1 - lam) * y[j]) for j in js)
    lams = [mixup_batch(x=x, targets=y, alpha=1.0, generator=torch.Generator().manual_seed(s))[2] for s in range(400)]
    assert abs(np.mean(lams) - 0.5) < 0.05 and abs(np.var(lams) - 1 / 12) < 0.015  # Beta(1,1) = U(0,1)


def test_mmd_gradients_flow_through_training_batch_only():
    train = torch.softmax(torch.randn(8, 3, requires_grad=True), 1)
    train.retain_grad()
    val_logits = torch.randn(8, 3, requires_grad=True)
    val = torch.softmax(val_logits, 1)
    labels = torch.tensor([0, 1] * 4)
    loss = per_class_mmd(train_probs=train, train_labels=labels, val_probs=val, val_labels=labels)
    loss.backward()
    assert train.grad is not None and train.grad.abs().sum() > 0
    assert val_logits.grad is None
    same = per_class_mmd(train_probs=train.detach(), train_labels=labels, val_probs=train.detach(), val_labels=labels)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert loss.item() > 0


def test_relaxloss_ascends_below_target_and_flattens_posteriors():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert float(relaxloss_objective(logits=logits, labels=labels, alpha=1.0, epoch=0, n_classes=3)) == pytest.approx(-float(ce))
    assert float(relaxloss_objective(logits=logits, labels=labels, alpha=0.01, epoch=0, n_classes=3)) == pytest.approx(float(ce))
    flat = flattened_targets(probs=torch.softmax(logits, 1), labels=labels)
    p = torch.softmax(logits, 1)
    assert flat[0, 0] == pytest.approx(float(p[0, 0])) and flat[0, 1] == pytest.approx(float((1 - p[0, 0]) / 2))


def _mlp():
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))


def _data(n=120, seed=0, noisy=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    if noisy:
        y = rng.integers(0, 3, n)
    return x, y


def test_dropout_is_inserted_after_hidden_activations_only():
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))
    sites = insert_dropout(module, p=0.5)
    assert sites == ["1"]
    assert isinstance(module[1][1], nn.Dropout) and isinstance(module[3], nn.Softmax)
    assert insert_dropout(_mlp(), p=0.3) == ["1", "3"]


def test_dp_sgd_reports_the_opacus_accountant_epsilon():
    """The reported ε equals Opacus' RDP accountant for the noise multiplier, sample rate and steps used."""
    from opacus.accountants import RDPAccountant

    x, y = _data(n=128)
    data = make_training_data(x=x, y=y, n_classes=3)
    plan = parse_defenses("dp_sgd:epsilon=2;delta=1e-5;max_grad_norm=1.0")[0].plan()
    recipe = TrainRecipe(epochs=3, batch_size=32, learning_rate=0.05, optimizer="sgd")
    _, report = train_with_plan(make_module=_mlp, data=data, plan=plan, recipe=recipe, seeds=SeedStreams(run_seed=0))
    accountant = RDPAccountant()
    sample_rate = 32 / 128
    accountant.history = [(report.dp_noise_multiplier, sample_rate, int(3 / sample_rate))]
    assert report.dp_epsilon == pytest.approx(accountant.get_epsilon(1e-5), rel=0.05)
    assert report.dp_epsilon <= 2.0 + 1e-6
    assert report.dp_accountant == "rdp"


def test_opacus_golden_vector():
    """pytorch/opacus accountants_test.py (REFERENCES.md): noise 1.5, q 0.04, 2250 steps, δ 1e-5 → RDP ε 7.329."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(1.5, 0.04, 2250)]
    assert accountant.get_epsilon(1e-5) == pytest.approx(7.32911117143, rel=1e-6)


def test_pruning_zeroes_the_requested_fraction_and_early_stopping_stops():
    x, y = _data()
    data = make_training_data(x=x, y=y, n_classes=3, validation=_data(seed=1, n=60))
    recipe = TrainRecipe(epochs=8, batch_size=32)
    module, report = train_with_plan(make_module=_mlp, data=data, plan=TrainingPlan(prune_fraction=0.6), recipe=recipe, seeds=SeedStreams(run_seed=0))
    assert report.pruned_fraction == pytest.approx(0.6, abs=0.01)
    noisy = make_training_data(x=_data(noisy=True)[0], y=_data(noisy=True)[1], n_classes=3,
                               validation=_data(seed=2, n=60, noisy=True))
    _, report = train_with_plan(make_module=_mlp, data=noisy, plan=TrainingPlan(early_stopping_patience=3),
                                recipe=TrainRecipe(epochs=200, batch_size=16, learning_rate=1e-2), seeds=SeedStreams(run_seed=0))
    assert report.epochs_run < 200


def test_distillation_student_learns_from_reference_only():
    """DMP: the shipped student's training forward passes see reference records only, never a member."""
    x, y = _data()
    reference = _data(seed=5, n=200)[0]

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _mlp()
            self.training_inputs = []

        def forward(self, values):
            if self.training:
                self.training_inputs.append(values.detach().numpy().copy())
            return self.inner(values)

    modules = []

    def make():
        modules.append(Recording())
        return modules[-1]

    data = make_training_data(x=x, y=y, n_classes=3, reference=reference)
    plan = parse_defenses("distillation:2")[0].plan()
    student, report = train_with_plan(make_module=make, data=data, plan=plan, recipe=TrainRecipe(epochs=2), seeds=SeedStreams(run_seed=0))
    teacher = modules[0]
    assert student is modules[1]
    student_rows = {tuple(r) for r in np.concatenate(student.training_inputs).round(5)}
    teacher_rows = {tuple(r) for r in np.concatenate(teacher.training_inputs).round(5)}
    assert student_rows == {tuple(r) for r in reference.round(5)}
    assert teacher_rows == {tuple(r) for r in x.round(5)}
    assert not student_rows & {tuple(r) for r in x.round(5)}
    assert any("reference records" in note for note in report.notes)


def test_needs_are_checked():
    x, y = _data()
    data = make_training_data(x=x, y=y, n_classes=3)
    with pytest.raises(InputError, match="validation"):
        train_with_plan(make_module=_mlp, data=data, plan=parse_defenses("mmd_mixup")[0].plan(), recipe=TrainRecipe(), seeds=SeedStreams(run_seed=0))
    with pytest.raises(InputError, match="mix-up"):
        train_with_plan(make_module=_mlp, data=data, plan=parse_defenses("dp_sgd+mixup")[0].plan(), recipe=TrainRecipe(), seeds=SeedStreams(run_seed=0))
