"""Training-time defenses: each one configures the shared `TrainingPlan` (see `trainer.py`).

Every class names its paper; the trainer implements the mechanics once.
"""

from __future__ import annotations

from pydantic import Field

from mia_audit.defenses.base import DefenseParameters, TrainingDefense, TrainingPlan, register_defense


class WeightDecayParameters(DefenseParameters):
    weight_decay: float = Field(default=5e-4, gt=0, le=1)


@register_defense
class WeightDecay(TrainingDefense):
    """L2 regularisation through the optimizer's weight decay (Shokri et al. 2017 §VI; Krogh & Hertz 1991)."""

    name = "weight_decay"
    title = "Weight decay (L2)"
    reference = "Shokri et al. 2017, IEEE S&P §VI"
    parameters_model = WeightDecayParameters
    positional = "weight_decay"

    def configure(self, plan: TrainingPlan) -> None:
        plan.weight_decay = self.parameters.weight_decay


class DropoutParameters(DefenseParameters):
    p: float = Field(default=0.5, gt=0, lt=1)


@register_defense
class Dropout(TrainingDefense):
    """Dropout after every hidden activation of the architecture (Srivastava et al. 2014; evaluated
    against MIA by Salem et al. 2019 and seeds/002)."""

    name = "dropout"
    title = "Dropout"
    reference = "Srivastava et al. 2014, JMLR; Salem et al. 2019, NDSS; seeds/002"
    parameters_model = DropoutParameters
    positional = "p"

    def configure(self, plan: TrainingPlan) -> None:
        plan.dropout = self.parameters.p


class LabelSmoothingParameters(DefenseParameters):
    epsilon: float = Field(default=0.1, gt=0, lt=1)


@register_defense
class LabelSmoothing(TrainingDefense):
    """Train on targets (1 − ε)·onehot + ε/k (Szegedy et al. 2016); a low-cost MIA trade-off in seeds/002."""

    name = "label_smoothing"
    title = "Label smoothing"
    reference = "Szegedy et al. 2016, CVPR; seeds/002"
    parameters_model = LabelSmoothingParameters
    positional = "epsilon"

    def configure(self, plan: TrainingPlan) -> None:
        plan.label_smoothing = self.parameters.epsilon


class MixupParameters(DefenseParameters):
    alpha: float = Field(default=1.0, gt=0)


@register_defense
class Mixup(TrainingDefense):
    """Mix-up (Zhang et al. 2018): train on λ·(x_i, y_i) + (1 − λ)·(x_j, y_j), λ ~ Beta(α, α)
    (seeds/003 §4.1)."""

    name = "mixup"
    title = "Mix-up"
    reference = "Zhang et al. 2018, ICLR; Li, Li & Ribeiro 2021, CODASPY"
    parameters_model = MixupParameters
    positional = "alpha"

    def configure(self, plan: TrainingPlan) -> None:
        plan.mixup_alpha = self.parameters.alpha


class MmdParameters(DefenseParameters):
    weight: float = Field(default=1.0, gt=0)
    alpha: float = Field(default=1.0, gt=0)


@register_defense
class MmdMixup(TrainingDefense):
    """MMD + mix-up (Li, Li & Ribeiro 2021, seeds/003 §4.2): per-class MMD between the softmax outputs of a
    training batch and a validation batch of the same class, gradients through the training batch only,
    added to the mix-up loss."""

    name = "mmd_mixup"
    title = "MMD + mix-up"
    reference = "Li, Li & Ribeiro 2021, CODASPY"
    parameters_model = MmdParameters
    positional = "weight"

    def configure(self, plan: TrainingPlan) -> None:
        plan.mmd_weight = self.parameters.weight
        plan.mixup_alpha = self.parameters.alpha
        plan.needs_validation = True


class MmdOnlyParameters(DefenseParameters):
    weight: float = Field(default=1.0, gt=0)


@register_defense
class Mmd(TrainingDefense):
    """The MMD regulariser alone (Li, Li & Ribeiro 2021's ablation; their choice for binary features)."""

    name = "mmd"
    title = "MMD regulariser"
    reference = "Li, Li & Ribeiro 2021, CODASPY"
    parameters_model = MmdOnlyParameters
    positional = "weight"

    def configure(self, plan: TrainingPlan) -> None:
        plan.mmd_weight = self.parameters.weight
        plan.needs_validation = True


class RelaxLossParameters(DefenseParameters):
    alpha: float = Field(default=0.5, gt=0, description="target training loss level")


@register_defense
class RelaxLoss(TrainingDefense):
    """RelaxLoss (Chen, Yu & Fritz 2022, ICLR): keep the training loss near a target level α — descend
    above it; below it alternate gradient ascent and posterior flattening of correctly classified records."""

    name = "relaxloss"
    title = "RelaxLoss"
    reference = "Chen, Yu & Fritz 2022, ICLR"
    parameters_model = RelaxLossParameters
    positional = "alpha"

    def configure(self, plan: TrainingPlan) -> None:
        plan.relaxloss_alpha = self.parameters.alpha


class EarlyStoppingParameters(DefenseParameters):
    patience: int = Field(default=5, ge=1)


@register_defense
class EarlyStopping(TrainingDefense):
    """Stop when the validation loss has not improved for `patience` epochs and keep the best weights
    (Caruana et al. 2001; an overfitting control listed in seeds/000 and seeds/001)."""

    name = "early_stopping"
    title = "Early stopping"
    reference = "Caruana, Lawrence & Giles 2001, NeurIPS; seeds/001"
    parameters_model = EarlyStoppingParameters
    positional = "patience"

    def configure(self, plan: TrainingPlan) -> None:
        plan.early_stopping_patience = self.parameters.patience
        plan.needs_validation = True


class AdversarialParameters(DefenseParameters):
    weight: float = Field(default=1.0, gt=0)


@register_defense
class AdversarialRegularization(TrainingDefense):
    """Adversarial regularisation (Nasr, Shokri & Houmansadr 2018, CCS): a min-max game where an
    inference model learns to tell training outputs from reference outputs and the classifier is
    penalised by that model's gain."""

    name = "adv_reg"
    title = "Adversarial regularisation"
    reference = "Nasr, Shokri & Houmansadr 2018, CCS"
    parameters_model = AdversarialParameters
    positional = "weight"

    def configure(self, plan: TrainingPlan) -> None:
        plan.adversarial_weight = self.parameters.weight
        plan.needs_reference = True


class DpSgdParameters(DefenseParameters):
    epsilon: float = Field(default=4.0, gt=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)


@register_defense
class DpSgd(TrainingDefense):
    """DP-SGD (Abadi et al. 2016, CCS) through Opacus (Yousefpour et al. 2021): per-sample gradient clipping
    and Gaussian noise calibrated by Opacus' accountant to the target (ε, δ); the accountant's ε is reported."""

    name = "dp_sgd"
    title = "DP-SGD (Opacus)"
    reference = "Abadi et al. 2016, CCS; Yousefpour et al. 2021 (Opacus)"
    parameters_model = DpSgdParameters
    positional = "epsilon"

    def configure(self, plan: TrainingPlan) -> None:
        plan.dp_epsilon = self.parameters.epsilon
        plan.dp_delta = self.parameters.delta
        plan.dp_max_grad_norm = self.parameters.max_grad_norm


class DistillationParameters(DefenseParameters):
    temperature: float = Field(default=4.0, gt=0)


@register_defense
class Distillation(TrainingDefense):
    """Distillation for membership privacy, DMP (Shejwalkar & Houmansadr 2021, AAAI): a teacher trained on
    the members labels disjoint reference data with its soft predictions; the shipped student learns only
    from those, never from the members themselves."""

    name = "distillation"
    title = "Knowledge distillation (DMP)"
    reference = "Shejwalkar & Houmansadr 2021, AAAI; Hinton et al. 2015"
    parameters_model = DistillationParameters
    positional = "temperature"

    def configure(self, plan: TrainingPlan) -> None:
        plan.distillation_temperature = self.parameters.temperature
        plan.needs_reference = True


class PruningParameters(DefenseParameters):
    fraction: float = Field(default=0.5, gt=0, lt=1)


@register_defense
class Pruning(TrainingDefense):
    """Model compression by global magnitude pruning of weights, then fine-tuning with the mask fixed
    (Wang et al. 2021, "Against Membership Inference Attack: Pruning is All You Need", IJCAI)."""

    name = "pruning"
    title = "Pruning"
    reference = "Wang et al. 2021, IJCAI"
    parameters_model = PruningParameters
    positional = "fraction"

    def configure(self, plan: TrainingPlan) -> None:
        plan.prune_fraction = self.parameters.fraction
