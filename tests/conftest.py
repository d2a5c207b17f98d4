"""Shared fixtures: the committed sample (an overfit digits MLP) and small manifests cut from it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_shadow_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Shadow-model outputs are cached under a per-session folder, never in the user's ~/.cache."""
    import os

    os.environ["MIA_AUDIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("shadow-cache"))


@pytest.fixture()
def sample_dir() -> Path:
    return SAMPLES


@pytest.fixture()
def small_audit(tmp_path: Path) -> dict[str, Path]:
    """The sample model with 120 members and 150 non-members, copied into a private folder."""
    model = shutil.copy(SAMPLES / "digits_mlp.onnx", tmp_path / "model.onnx")
    header, member_rows = read_rows(SAMPLES / "members.csv")
    _, nonmember_rows = read_rows(SAMPLES / "nonmembers.csv")
    return {
        "model": Path(model),
        "members": write_rows(tmp_path / "members.csv", header, member_rows[:120]),
        "nonmembers": write_rows(tmp_path / "nonmembers.csv", header, nonmember_rows[:150]),
        "dir": tmp_path,
    }


@pytest.fixture(scope="session")
def sample_audit_run():
    """The real audit of the committed sample (200 bootstrap resamples), run once per session, no files written."""
    from mia_audit.config import RunConfig
    from mia_audit.workflow import run_audit

    config = RunConfig(
        model_path=SAMPLES / "digits_mlp.onnx",
        members_path=SAMPLES / "members.csv",
        nonmembers_path=SAMPLES / "nonmembers.csv",
        n_bootstrap=200,
    )
    return run_audit(config=config)
