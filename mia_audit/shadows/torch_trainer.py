"""Train K shadow copies of a `TrainableGraph` at once: stacked parameters + `torch.func.vmap`.

All K models are evaluated by one vmapped call per step, each on its own mini-batch drawn from its own
training half (the keep-mask column), and updated by one optimiser over the stacked tensors. Adam, AdamW
and SGD act element-wise, and the summed loss gives each model exactly the gradient of its own mean
loss, so this is the same computation as K separate training runs — only without K times the Python,
autograd and optimiser overhead (`benchmarks/bench_shadows.py` measures the difference).

Reproducibility: model k's initial weights and batch order come from the seed streams
("shadow", k, ...) alone, so the result does not depend on how the K models are grouped (`models_per_batch`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mia_audit.seeds import SeedStreams
from mia_audit.shadows.graph import NotStackable, TrainableGraph, run_stacked
from mia_audit.shadows.recipe import TrainingRecipe

__all__ = ["CalibrationTarget", "TrainingReport", "train_torch_shadows"]

#: Records per evaluation chunk (bounds memory for K models × chunk × classes).
EVAL_CHUNK = 4096
#: Memory budget for one group of models trained together (parameters, Adam state, activations).
GROUP_BYTES = 1 << 30
#: Below this many floating-point operations per training step (all models of a group together) torch
#: runs on one thread: splitting small matrix products across threads gains little, and on a busy
#: machine (CI runners, shared cores) the threads' synchronisation made steps 5-10x slower in our runs.
SINGLE_THREAD_FLOPS = 5e9


@dataclass(frozen=True)
class CalibrationTarget:
    """What `epochs: auto` trains towards: the target model's fit on its own members."""

    member_accuracy: float
    median_member_loss: float


@dataclass(frozen=True)
class TrainingReport:
    epochs: int  # epochs trained (the largest over groups)
    calibrated: bool  # every group reached the calibration target before max_epochs
    in_accuracy: float  # mean over shadows of the accuracy on their own training records
    out_accuracy: float  # mean over shadows of the accuracy on the records they did not see
    median_in_loss: float  # mean over shadows of the median training-record loss


class _Progress:
    def advance(self, amount: int = 1) -> None: ...


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` intra-op threads (None: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def forward_flops(*, graph: TrainableGraph, record: torch.Tensor) -> float:
    """Floating-point operations of one forward pass on one record (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = graph.init_params(generator=torch.Generator().manual_seed(0))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        graph.run(params, graph.init_running(), record, training=False)
    return float(max(counter.get_total_flops(), 2 * graph.n_parameters))


def _batch_order(*, members: np.ndarray, steps: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices: a permutation of the model's records, wrapped round to fill every batch."""
    order = rng.permutation(members)
    need = steps * batch
    if order.size < need:
        order = np.resize(order, need)  # repeats from the start of this epoch's permutation
    return order[:need]


def _loss_per_model(*, head: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K, B, C) head values and (K, B) labels → (K, B) per-record training loss."""
    k, b = y.shape
    if head in ("ce", "softmax", "log_softmax"):
        return F.cross_entropy(out.reshape(k * b, -1), y.reshape(-1), reduction="none").view(k, b)
    if head in ("sigmoid", "binary_logit"):
        logit = out.reshape(k, b)
        return F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype), reduction="none")
    probs = out.reshape(k, b, -1)
    logp = torch.log(torch.clamp(probs / probs.sum(-1, keepdim=True), min=1e-12))
    return F.nll_loss(logp.reshape(k * b, -1), y.reshape(-1), reduction="none").view(k, b)


def _predicted(*, head: str, out: torch.Tensor) -> torch.Tensor:
    if head in ("sigmoid", "binary_logit"):
        return (out.reshape(out.shape[0], out.shape[1]) > 0).to(torch.int64)
    return out.reshape(out.shape[0], out.shape[1], -1).argmax(-1)


def _optimizer(params: list[torch.Tensor], recipe: TrainingRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def group_size(*, graph: TrainableGraph, n_models: int, batch: int, record_values: int, recipe: TrainingRecipe) -> int:
    """How many models train together: all of them unless parameters + optimiser state + a rough
    activation estimate exceed about 1 GiB (then fewer per group)."""
    if recipe.models_per_batch is not None:
        return min(n_models, recipe.models_per_batch)
    per_model = 4 * (4 * graph.n_parameters + 16 * batch * max(record_values, 1) + 16 * batch * 1024)
    return int(max(1, min(n_models, GROUP_BYTES // max(per_model, 1))))


class _Group:
    """K models trained together with vmap."""

    def __init__(
        self, *, graph: TrainableGraph, models: list[int], seeds: SeedStreams, recipe: TrainingRecipe, probe: torch.Tensor
    ) -> None:
        self.graph = graph
        self.models = models
        inits = [graph.init_params(generator=seeds.torch("shadow", k, "init")) for k in models]
        self.params = {name: torch.stack([p[name] for p in inits]).requires_grad_(True) for name in inits[0]}
        running = graph.init_running()
        self.running = {name: value.unsqueeze(0).repeat(len(models), *([1] * value.dim())) for name, value in running.items()}
        self.optimizer = _optimizer(list(self.params.values()), recipe)
        head_input = graph.head_input

        def train_fn(params, running, xb):
            return graph.run(params, running, xb, training=True, output=head_input)

        def eval_fn(params, running, xb, output):
            return graph.run(params, running, xb, training=False, output=output)[0]

        self._train = torch.func.vmap(train_fn, in_dims=(0, 0, 0))
        self._eval = eval_fn
        self.stacked = self._stacked_agrees(probe)

    def _stacked_agrees(self, probe: torch.Tensor) -> bool:
        """Use the stacked (vmap-free) evaluation when the graph has one and it matches vmap's results."""
        try:
            with torch.no_grad():
                fast = run_stacked(self.graph, self.params, probe, x_stacked=False, output=self.graph.head_input)
        except NotStackable:
            return False
        with torch.no_grad():
            slow = torch.func.vmap(lambda p, r: self._eval(p, r, probe, self.graph.head_input), in_dims=(0, 0))(
                self.params, self.running
            )
        return fast.shape == slow.shape and bool(torch.allclose(fast, slow, rtol=1e-4, atol=1e-5))

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if self.stacked:
            out, updates = run_stacked(self.graph, self.params, xb, x_stacked=True, output=self.graph.head_input), {}
        else:
            out, updates = self._train(self.params, self.running, xb)
        loss = _loss_per_model(head=self.graph.head, out=out, y=yb).mean(dim=1).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if updates:
            self.running = {**self.running, **{name: value.detach() for name, value in updates.items()}}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, *, output: str) -> torch.Tensor:
        """(K, N, ...) values of `output` for every record, in inference mode."""
        if self.stacked:
            parts = [
                run_stacked(self.graph, self.params, x[start : start + EVAL_CHUNK], x_stacked=False, output=output)
                for start in range(0, x.shape[0], EVAL_CHUNK)
            ]
            return torch.cat(parts, dim=1)
        fn = torch.func.vmap(lambda p, r, xb: self._eval(p, r, xb, output), in_dims=(0, 0, None))
        parts = [fn(self.params, self.running, x[start : start + EVAL_CHUNK]) for start in range(0, x.shape[0], EVAL_CHUNK)]
        return torch.cat(parts, dim=1)


def _fit_stats(*, graph: TrainableGraph, head_out: torch.Tensor, y: torch.Tensor, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per model: accuracy on IN records, accuracy on OUT records, median IN loss."""
    k = head_out.shape[0]
    labels = y.unsqueeze(0).expand(k, -1)
    loss = _loss_per_model(head=graph.head, out=head_out, y=labels).numpy()
    correct = (_predicted(head=graph.head, out=head_out) == labels).numpy()
    mask = keep.T  # (K, N)
    in_acc = np.array([correct[i][mask[i]].mean() for i in range(k)])
    out_acc = np.array([correct[i][~mask[i]].mean() if (~mask[i]).any() else np.nan for i in range(k)])
    in_loss = np.array([np.median(loss[i][mask[i]]) for i in range(k)])
    return in_acc, out_acc, in_loss


def train_torch_shadows(
    *,
    graph: TrainableGraph,
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray,
    recipe: TrainingRecipe,
    seeds: SeedStreams,
    calibration: CalibrationTarget | None,
    progress: _Progress | None = None,
) -> tuple[np.ndarray, TrainingReport]:
    """Train one shadow per keep-mask column and return every shadow's raw output on every record.

    Returns (N, K, k_out) float64 model outputs (the graph's own output: logits or probabilities, as the
    audited model gives them) and a `TrainingReport`. With `recipe.epochs == "auto"` and a calibration
    target, each group stops once its mean training accuracy is within `accuracy_tolerance` of the
    target's member accuracy and its mean median training loss is at most the target's median member
    loss; checks every `check_every` epochs, at most `max_epochs`.
    """
    n, n_models = keep.shape
    x_t = torch.from_numpy(np.ascontiguousarray(x)).to(graph.input_dtype)
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
    batch = recipe.batch_size
    members = [np.flatnonzero(keep[:, k]) for k in range(n_models)]
    steps = max(1, math.ceil(max(m.size for m in members) / batch))
    auto = recipe.epochs == "auto" and calibration is not None
    max_epochs = recipe.max_epochs if recipe.epochs == "auto" else int(recipe.epochs)
    record_values = int(np.prod(x.shape[1:], dtype=np.int64))
    size = group_size(graph=graph, n_models=n_models, batch=batch, record_values=record_values, recipe=recipe)

    flops = 3.0 * forward_flops(graph=graph, record=x_t[:1]) * batch * size
    with torch_threads(1 if flops < SINGLE_THREAD_FLOPS else None):
        return _train_groups(
            graph=graph, x_t=x_t, y_t=y_t, keep=keep, members=members, steps=steps, batch=batch, auto=auto,
            max_epochs=max_epochs, size=size, recipe=recipe, seeds=seeds, calibration=calibration, progress=progress,
        )


def _train_groups(
    *, graph, x_t, y_t, keep, members, steps, batch, auto, max_epochs, size, recipe, seeds, calibration, progress
) -> tuple[np.ndarray, TrainingReport]:
    n, n_models = keep.shape
    outputs: list[torch.Tensor] = []
    epochs_used: list[int] = []
    calibrated = True
    stats: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n_models, size):
        models = list(range(start, min(n_models, start + size)))
        group = _Group(graph=graph, models=models, seeds=seeds, recipe=recipe, probe=x_t[:8])
        rngs = [seeds.numpy("shadow", k, "batches") for k in models]
        group_keep = keep[:, models]
        done_epochs = max_epochs
        reached = not auto
        for epoch in range(max_epochs):
            order = np.stack(
                [_batch_order(members=members[k], steps=steps, batch=batch, rng=rng) for k, rng in zip(models, rngs)]
            )
            order_t = torch.from_numpy(order)
            for s in range(steps):
                index = order_t[:, s * batch : (s + 1) * batch]
                group.step(x_t[index], y_t[index])
            if progress is not None:
                progress.advance(len(models))
            if auto and (epoch + 1) % recipe.check_every == 0:
                assert calibration is not None
                in_acc, _, in_loss = _fit_stats(
                    graph=graph, head_out=group.evaluate(x_t, output=graph.head_input), y=y_t, keep=group_keep
                )
                if (
                    in_acc.mean() >= calibration.member_accuracy - recipe.accuracy_tolerance
                    and in_loss.mean() <= calibration.median_member_loss
                ):
                    done_epochs = epoch + 1
                    reached = True
                    if progress is not None:
                        progress.advance(len(models) * (max_epochs - done_epochs))
                    break
        calibrated = calibrated and reached
        epochs_used.append(done_epochs)
        stats.append(
            _fit_stats(graph=graph, head_out=group.evaluate(x_t, output=graph.head_input), y=y_t, keep=group_keep)
        )
        out = group.evaluate(x_t, output=graph.output_name)
        outputs.append(out.reshape(out.shape[0], n, -1))
    raw = torch.cat(outputs, dim=0).permute(1, 0, 2).to(torch.float64).numpy()
    in_acc = np.concatenate([s[0] for s in stats])
    out_acc = np.concatenate([s[1] for s in stats])
    in_loss = np.concatenate([s[2] for s in stats])
    report = TrainingReport(
        epochs=max(epochs_used),
        calibrated=calibrated if auto else False,
        in_accuracy=float(in_acc.mean()),
        out_accuracy=float(np.nanmean(out_acc)),
        median_in_loss=float(in_loss.mean()),
    )
    return np.ascontiguousarray(raw), report
