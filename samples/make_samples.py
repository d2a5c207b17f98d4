"""Regenerate the committed sample: an overfit MLP on scikit-learn's bundled digits data, exported to ONNX.

No downloads: `sklearn.datasets.load_digits` ships with scikit-learn. The model is deliberately overfit
(small training set, no regularisation, many epochs) so that the audit finds real leakage.

    python samples/make_samples.py            # writes samples/digits_mlp.onnx, members.csv, nonmembers.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

SEED = 20261125
N_MEMBERS = 300


class DigitsMLP(torch.nn.Module):
    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x, y = digits.data[order].astype(np.float32), digits.target[order].astype(np.int64)
    return x[:N_MEMBERS], y[:N_MEMBERS], x[N_MEMBERS:], y[N_MEMBERS:]


def train(x: np.ndarray, y: np.ndarray, seed: int) -> DigitsMLP:
    torch.manual_seed(seed)
    model = DigitsMLP(x.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    features, labels = torch.from_numpy(x / 16.0), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(300):
        for batch in torch.randperm(len(labels), generator=generator).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(features[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    return model


class Scaled(torch.nn.Module):
    """The exported graph takes raw pixel intensities (0–16) as written in the manifests."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x / 16.0)


def write_manifest(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"pixel_{i}" for i in range(x.shape[1])] + ["label"])
        for features, label in zip(x, y):
            writer.writerow([f"{v:g}" for v in features] + [int(label)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    x_in, y_in, x_out, y_out = split(SEED)
    model = Scaled(train(x_in, y_in, SEED)).eval()
    with torch.no_grad():
        member_acc = (model(torch.from_numpy(x_in)).argmax(1).numpy() == y_in).mean()
        nonmember_acc = (model(torch.from_numpy(x_out)).argmax(1).numpy() == y_out).mean()
    torch.onnx.export(
        model,
        (torch.zeros(1, x_in.shape[1]),),
        str(args.out / "digits_mlp.onnx"),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    write_manifest(args.out / "members.csv", x_in, y_in)
    write_manifest(args.out / "nonmembers.csv", x_out, y_out)
    print(f"members {len(y_in)} (accuracy {member_acc:.3f}), non-members {len(y_out)} (accuracy {nonmember_acc:.3f})")


if __name__ == "__main__":
    main()
