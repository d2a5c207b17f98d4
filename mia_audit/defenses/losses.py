"""Loss pieces of the training-time defenses, as small pure torch functions (tested one by one)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.stats import beta as beta_dist


def smooth_targets(labels: torch.Tensor, *, n_classes: int, epsilon: float) -> torch.Tensor:
    """(1 − ε)·onehot(y) + ε/k (Szegedy et al. 2016). ε = 0 gives one-hot targets."""
    onehot = F.one_hot(labels, n_classes).to(torch.float32)
    return onehot * (1.0 - epsilon) + epsilon / n_classes


def soft_cross_entropy(*, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-record cross-entropy against probability targets: −Σ_i t_i log softmax(z)_i."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)


def mixup_batch(
    *, x: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Zhang et al. 2018: x̃ = λ x + (1 − λ) x[π], ỹ = λ y + (1 − λ) y[π] with λ ~ Beta(α, α), π a permutation."""
    # λ by inverting a uniform from the seeded generator (torch's Beta sampler would use the global RNG).
    lam = float(beta_dist.ppf(torch.rand((), generator=generator).item(), alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm], lam


def gaussian_mmd2(*, p: torch.Tensor, q: torch.Tensor, bandwidths: tuple[float, ...] = (0.05, 0.2, 1.0)) -> torch.Tensor:
    """Biased estimate of MMD² (Gretton et al. 2012) between rows of p and q with a sum of Gaussian kernels."""

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    return kernel(p, p).mean() + kernel(q, q).mean() - 2 * kernel(p, q).mean()


def per_class_mmd(
    *, train_probs: torch.Tensor, train_labels: torch.Tensor, val_probs: torch.Tensor, val_labels: torch.Tensor
) -> torch.Tensor:
    """Li, Li & Ribeiro 2021 §4.2: MMD between training and validation softmax outputs of the same class,
    averaged over classes present on both sides. Validation outputs are detached: gradients flow through
    the training batch only (the validation records must not be fitted)."""
    val_probs = val_probs.detach()
    terms = []
    for cls in torch.unique(train_labels):
        mine, theirs = train_probs[train_labels == cls], val_probs[val_labels == cls]
        if len(mine) and len(theirs):
            terms.append(gaussian_mmd2(p=mine, q=theirs))
    if not terms:
        return train_probs.sum() * 0.0
    return torch.stack(terms).mean()


def flattened_targets(*, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RelaxLoss posterior flattening (Chen, Yu & Fritz 2022): keep p_y, spread 1 − p_y evenly over the
    other classes (targets are constants, no gradient)."""
    n_classes = probs.shape[1]
    p_y = probs.detach().gather(1, labels[:, None])
    rest = (1.0 - p_y) / max(n_classes - 1, 1)
    targets = rest.expand(-1, n_classes).clone()
    targets.scatter_(1, labels[:, None], p_y)
    return targets


def relaxloss_objective(
    *, logits: torch.Tensor, labels: torch.Tensor, alpha: float, epoch: int, n_classes: int
) -> torch.Tensor:
    """Chen, Yu & Fritz 2022, Algorithm 1. Above the target loss α: ordinary descent. Below it: on even
    epochs gradient *ascent* (minimise −loss); on odd epochs posterior flattening on the correctly
    classified records (the others keep ordinary cross-entropy)."""
    loss = F.cross_entropy(logits, labels)
    if loss.item() >= alpha:
        return loss
    if epoch % 2 == 0:
        return -loss
    probs = F.softmax(logits, dim=1)
    correct = logits.argmax(1) == labels
    targets = torch.where(correct[:, None], flattened_targets(probs=probs, labels=labels), F.one_hot(labels, n_classes).float())
    return soft_cross_entropy(logits=logits, targets=targets).mean()
