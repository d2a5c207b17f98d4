"""One trainer for every retrained variant: reads a `TrainingPlan` and a recipe, trains a fresh module.

Mechanics live here once; which mechanics are on is decided by the defenses (see `training.py`):
label smoothing and mix-up change the targets, MMD and adversarial regularisation add terms, RelaxLoss
replaces the objective, DP-SGD wraps the optimizer with Opacus, early stopping watches the validation
loss, distillation trains a student on reference data, pruning prunes and fine-tunes at the end.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mia_audit.defenses.base import TrainingPlan
from mia_audit.defenses.losses import (
    mixup_batch,
    per_class_mmd,
    relaxloss_objective,
    smooth_targets,
    soft_cross_entropy,
)
from mia_audit.errors import InputError
from mia_audit.seeds import SeedStreams

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU)


@dataclass(frozen=True)
class TrainRecipe:
    """Optimisation settings shared by the retrained baseline and every defended variant."""

    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0


@dataclass
class TrainingReport:
    """What training actually did, for the report (never per-record data)."""

    epochs_run: int = 0
    dropout_sites: list[str] = field(default_factory=list)
    dp_epsilon: float | None = None
    dp_noise_multiplier: float | None = None
    dp_accountant: str | None = None
    pruned_fraction: float = 0.0
    notes: list[str] = field(default_factory=list)


class SeededDropout(nn.Dropout):
    """Inverted dropout (Srivastava et al. 2014) whose masks come from an explicit generator, not torch's
    global RNG, so a defended variant retrains identically for the same run seed."""

    def __init__(self, p: float, *, generator: torch.Generator) -> None:
        super().__init__(p=float(p))
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


def insert_dropout(module: nn.Module, *, p: float, generator: torch.Generator | None = None) -> list[str]:
    """Put dropout (p) after every hidden activation module; return where (module paths).

    The last activation before the output (e.g. a final Softmax/Sigmoid head) is left alone; dropout is
    only inserted after activations that have a following layer. Masks are drawn from `generator`.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    sites = [name for name, child in module.named_modules() if isinstance(child, ACTIVATIONS) and name]
    if sites and _is_output_head(module, sites[-1]):
        sites = sites[:-1]
    for name in sites:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        activation = getattr(parent, attr)
        setattr(parent, attr, nn.Sequential(activation, SeededDropout(p, generator=generator)))
    return sites


def _is_output_head(module: nn.Module, name: str) -> bool:
    names = [n for n, child in module.named_modules() if n and not list(child.children())]
    return bool(names) and names[-1] == name


def initialize(module: nn.Module, *, generator: torch.Generator) -> None:
    """Fresh weights from `generator` (never torch's global RNG).

    A module that knows its own initialisation (`reset_parameters_from`, e.g. a converted graph) uses it;
    otherwise Linear and Conv layers get PyTorch's default scheme, U(−1/√fan_in, 1/√fan_in) for weights
    and biases (kaiming-uniform with a = √5), drawn from the generator.
    """
    own = getattr(module, "reset_parameters_from", None)
    if own is not None:
        own(generator)
        return
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = layer.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)


def _optimizer(params, recipe: TrainRecipe, plan: TrainingPlan) -> torch.optim.Optimizer:
    weight_decay = plan.weight_decay or recipe.weight_decay
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.learning_rate, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=recipe.learning_rate, weight_decay=weight_decay)


class _AttackModel(nn.Module):
    """Nasr et al. 2018's inference model h(f(x), y): sorted probabilities and the one-hot label → P(member)."""

    def __init__(self, n_classes: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * n_classes, 64), nn.ReLU(), nn.Linear(64, 1))
        initialize(self, generator=generator)

    def forward(self, probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([probs.sort(dim=1, descending=True).values, onehot], dim=1)).squeeze(1)


@dataclass
class TrainingData:
    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    validation: tuple[torch.Tensor, torch.Tensor] | None = None
    reference: torch.Tensor | None = None


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def make_training_data(
    *, x: np.ndarray, y: np.ndarray, n_classes: int, validation=None, reference=None
) -> TrainingData:
    return TrainingData(
        x=_tensor(x),
        y=torch.as_tensor(np.asarray(y, dtype=np.int64)),
        n_classes=n_classes,
        validation=None if validation is None else (_tensor(validation[0]), torch.as_tensor(validation[1])),
        reference=None if reference is None else _tensor(reference),
    )


def train_with_plan(
    *,
    make_module: Callable[[], nn.Module],
    data: TrainingData,
    plan: TrainingPlan,
    recipe: TrainRecipe,
    seeds: SeedStreams,
) -> tuple[nn.Module, TrainingReport]:
    """Train a freshly initialised module on `data.x, data.y` with every mechanism `plan` switches on.

    Every random choice comes from `seeds`: initial weights ("init"), batch order, mix-up and MMD draws
    ("batches"), dropout masks ("dropout"), DP-SGD's Poisson sampling and noise ("dp-sampling",
    "dp-noise"); torch's global RNG is never used.
    """
    _check_plan(plan, data)
    report = TrainingReport()
    if plan.distillation_temperature is not None:
        return _distill(make_module=make_module, data=data, plan=plan, recipe=recipe, seeds=seeds, report=report)
    module = make_module()
    initialize(module, generator=seeds.torch("init"))
    if plan.dropout > 0:
        # A converted graph inserts dropout nodes itself; a plain torch module gets dropout after activations.
        inserter = getattr(module, "insert_dropout", None)
        dropout_generator = seeds.torch("dropout")
        report.dropout_sites = (
            inserter(plan.dropout, generator=dropout_generator)
            if inserter
            else insert_dropout(module, p=plan.dropout, generator=dropout_generator)
        )
        if not report.dropout_sites:
            report.notes.append("dropout: the architecture has no hidden activation module; nothing inserted")
    _fit(module=module, data=data, plan=plan, recipe=recipe, seeds=seeds, report=report)
    if plan.prune_fraction > 0:
        _prune_and_finetune(module=module, data=data, plan=plan, recipe=recipe, seeds=seeds, report=report)
    module.eval()
    return module, report


def _check_plan(plan: TrainingPlan, data: TrainingData) -> None:
    if plan.dp_epsilon is not None and plan.mixup_alpha is not None:
        raise InputError("--defenses: dp_sgd cannot be combined with mix-up (a mixed record carries two people's data, "
                         "which breaks per-record accounting)")
    if plan.dp_epsilon is not None and (plan.mmd_weight or plan.adversarial_weight or plan.relaxloss_alpha is not None):
        raise InputError("--defenses: dp_sgd cannot be combined with MMD, adversarial regularisation or RelaxLoss "
                         "(their loss couples the records of a batch, which per-record clipping cannot bound)")
    if plan.dp_epsilon is not None and plan.distillation_temperature is not None:
        raise InputError("--defenses: dp_sgd cannot be combined with distillation in this version")
    if plan.needs_validation and data.validation is None:
        raise InputError("--defenses: this defense needs held-out validation records (--validation or --population)")
    if plan.needs_reference and data.reference is None:
        raise InputError("--defenses: this defense needs reference records (--population or --validation)")


def _batches(n: int, batch_size: int, generator: torch.Generator):
    return torch.randperm(n, generator=generator).split(batch_size)


def _fit(
    *, module: nn.Module, data: TrainingData, plan: TrainingPlan, recipe: TrainRecipe, seeds: SeedStreams,
    report: TrainingReport, epochs: int | None = None,
) -> None:
    generator = seeds.torch("batches")
    optimizer = _optimizer(module.parameters(), recipe, plan)
    epochs = recipe.epochs if epochs is None else epochs
    loader_batches = None
    engine = None
    target = module
    if plan.dp_epsilon is not None:
        module, optimizer, loader_batches, engine = _make_private(
            module=module, optimizer=optimizer, data=data, plan=plan, recipe=recipe, epochs=epochs, seeds=seeds
        )
        report.dp_noise_multiplier = float(optimizer.noise_multiplier)
    attack_model = attack_optimizer = None
    if plan.adversarial_weight > 0:
        attack_model = _AttackModel(data.n_classes, generator=seeds.torch("attack-model"))
        attack_optimizer = torch.optim.Adam(attack_model.parameters(), lr=1e-3)

    best_state, best_loss, stale = None, float("inf"), 0
    for epoch in range(epochs):
        module.train()
        batches = loader_batches() if loader_batches is not None else _batches(len(data.y), recipe.batch_size, generator)
        for batch in batches:
            if len(batch) == 0:
                continue
            x, y = data.x[batch], data.y[batch]
            if attack_model is not None:
                _attack_step(module, attack_model, attack_optimizer, x, y, data, generator)
            optimizer.zero_grad()
            if engine is not None:
                _per_sample_gradients(module=target, x=x, y=y, n_classes=data.n_classes, plan=plan)
            else:
                loss = _batch_loss(module=module, x=x, y=y, data=data, plan=plan, epoch=epoch, generator=generator,
                                   attack_model=attack_model)
                loss.backward()
            optimizer.step()
        report.epochs_run = epoch + 1
        if plan.early_stopping_patience is not None and data.validation is not None:
            val_loss = _validation_loss(target, data)
            if val_loss < best_loss - 1e-6:
                best_loss, stale = val_loss, 0
                best_state = copy.deepcopy(target.state_dict())
            else:
                stale += 1
                if stale >= plan.early_stopping_patience:
                    break
    if best_state is not None:
        target.load_state_dict(best_state)
        report.notes.append(f"early stopping: kept the weights of the best validation loss ({best_loss:.4f})")
    if engine is not None:
        report.dp_epsilon = float(engine.get_epsilon(plan.dp_delta))
        report.dp_accountant = engine.accountant.mechanism()


def _batch_loss(*, module, x, y, data, plan, epoch, generator, attack_model) -> torch.Tensor:
    if plan.relaxloss_alpha is not None:
        return relaxloss_objective(logits=module(x), labels=y, alpha=plan.relaxloss_alpha, epoch=epoch, n_classes=data.n_classes)
    targets = smooth_targets(y, n_classes=data.n_classes, epsilon=plan.label_smoothing)
    inputs = x
    if plan.mixup_alpha is not None:
        inputs, targets, _ = mixup_batch(x=x, targets=targets, alpha=plan.mixup_alpha, generator=generator)
    loss = soft_cross_entropy(logits=module(inputs), targets=targets).mean()
    if plan.mmd_weight > 0:
        vx, vy = data.validation
        pick = torch.randint(0, len(vy), (min(len(vy), max(len(y), 32)),), generator=generator)
        with torch.no_grad():
            val_probs = F.softmax(module(vx[pick]), dim=1)
        train_probs = F.softmax(module(x), dim=1)
        loss = loss + plan.mmd_weight * per_class_mmd(train_probs=train_probs, train_labels=y, val_probs=val_probs, val_labels=vy[pick])
    if attack_model is not None:
        probs = F.softmax(module(x), dim=1)
        gain = F.logsigmoid(attack_model(probs, F.one_hot(y, data.n_classes).float())).mean()
        loss = loss + plan.adversarial_weight * gain
    return loss


def _attack_step(module, attack_model, attack_optimizer, x, y, data, generator) -> None:
    """One update of Nasr et al.'s inference model: members (this batch) vs reference records."""
    ref = data.reference[torch.randint(0, len(data.reference), (len(y),), generator=generator)]
    with torch.no_grad():
        member_probs = F.softmax(module(x), dim=1)
        ref_logits = module(ref)
        ref_probs = F.softmax(ref_logits, dim=1)
        ref_labels = ref_logits.argmax(1)  # reference records carry no labels: use the model's own
    onehot = lambda labels: F.one_hot(labels, data.n_classes).float()  # noqa: E731
    logits = torch.cat([attack_model(member_probs, onehot(y)), attack_model(ref_probs, onehot(ref_labels))])
    target = torch.cat([torch.ones(len(y)), torch.zeros(len(ref))])
    attack_optimizer.zero_grad()
    F.binary_cross_entropy_with_logits(logits, target).backward()
    attack_optimizer.step()


def _validation_loss(module: nn.Module, data: TrainingData) -> float:
    module.eval()
    with torch.no_grad():
        vx, vy = data.validation
        return float(F.cross_entropy(module(vx), vy))


def _make_private(*, module, optimizer, data, plan, recipe, epochs, seeds):
    """Opacus DP-SGD with a target (ε, δ): Poisson sampling, the RDP accountant, per-record clipping and noise.

    Per-record gradients are computed here with torch.func (vmap of grad over a functional call), so any
    architecture works, also one converted from an ONNX graph; Opacus' optimizer clips, adds noise and
    accounts (grad_sample_mode "no_op"). Layers that mix the records of a batch (BatchNorm) are refused.
    """
    from opacus import PrivacyEngine

    mixing = [name for name, child in module.named_modules() if isinstance(child, nn.modules.batchnorm._BatchNorm)]
    if mixing or getattr(module, "mixes_batch", False):
        where = ", ".join(mixing) or "the converted graph"
        raise InputError(
            f"--defenses: dp_sgd: the architecture has BatchNorm ({where}), which mixes records within a batch and "
            "breaks per-record clipping; mia-audit does not change layers silently (retrain with GroupNorm)"
        )
    dataset = torch.utils.data.TensorDataset(data.x, data.y)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=recipe.batch_size, generator=seeds.torch("dp-sampling")
    )
    engine = PrivacyEngine(accountant="rdp", secure_mode=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped, optimizer, private_loader = engine.make_private_with_epsilon(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=plan.dp_epsilon,
            target_delta=plan.dp_delta,
            epochs=epochs,
            max_grad_norm=plan.dp_max_grad_norm,
            grad_sample_mode="no_op",
            noise_generator=seeds.torch("dp-noise"),
        )
    sampler = private_loader.batch_sampler

    def batches():
        return [torch.as_tensor(list(indices), dtype=torch.long) for indices in sampler]

    return wrapped, optimizer, batches, engine


def _per_sample_gradients(*, module: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, plan: TrainingPlan) -> None:
    """Set `p.grad_sample` (one gradient per record) for Opacus' DP optimizer, via torch.func."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    buffers = dict(module.named_buffers())

    def record_loss(parameters, xi, ti):
        logits = torch.func.functional_call(module, (parameters, buffers), (xi.unsqueeze(0),))
        return soft_cross_entropy(logits=logits, targets=ti.unsqueeze(0)).sum()

    targets = smooth_targets(y, n_classes=n_classes, epsilon=plan.label_smoothing)
    grads = torch.func.vmap(torch.func.grad(record_loss), in_dims=(None, 0, 0))(params, x, targets)
    for name, p in module.named_parameters():
        p.grad_sample = grads[name]


def _distill(*, make_module, data, plan, recipe, seeds, report) -> tuple[nn.Module, TrainingReport]:
    """DMP (Shejwalkar & Houmansadr 2021): teacher on members; student only on reference data labelled with
    the teacher's temperature-softened predictions."""
    teacher_plan = replace(plan, distillation_temperature=None, needs_reference=False)
    teacher, _ = train_with_plan(
        make_module=make_module, data=data, plan=teacher_plan, recipe=recipe, seeds=seeds.child("teacher")
    )
    temperature = plan.distillation_temperature
    with torch.no_grad():
        soft = F.softmax(teacher(data.reference) / temperature, dim=1)
    student = make_module()
    initialize(student, generator=seeds.torch("student", "init"))
    optimizer = _optimizer(student.parameters(), recipe, plan)
    generator = seeds.torch("student", "batches")
    for epoch in range(recipe.epochs):
        student.train()
        for batch in _batches(len(soft), recipe.batch_size, generator):
            optimizer.zero_grad()
            logits = student(data.reference[batch]) / temperature
            loss = soft_cross_entropy(logits=logits, targets=soft[batch]).mean() * temperature**2
            loss.backward()
            optimizer.step()
        report.epochs_run = epoch + 1
    report.notes.append(
        f"distillation: student trained on {len(soft)} reference records labelled by a teacher trained on the members"
    )
    student.eval()
    return student, report


def _prune_and_finetune(*, module, data, plan, recipe, seeds, report) -> None:
    """Wang et al. 2021: global L1 magnitude pruning of Linear/Conv weights, fine-tuned with the mask fixed."""
    from torch.nn.utils import prune

    targets = [(m, "weight") for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if not targets:
        report.notes.append("pruning: no Linear or Conv layer to prune")
        return
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=plan.prune_fraction)
    finetune = replace(plan, prune_fraction=0.0, early_stopping_patience=None)
    _fit(module=module, data=data, plan=finetune, recipe=recipe, seeds=seeds.child("finetune"), report=TrainingReport(),
         epochs=max(1, recipe.epochs // 4))
    for layer, name in targets:
        prune.remove(layer, name)
    total = sum(layer.weight.numel() for layer, _ in targets)
    zeros = sum(int((layer.weight == 0).sum()) for layer, _ in targets)
    report.pruned_fraction = zeros / total
