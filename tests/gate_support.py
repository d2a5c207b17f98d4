"""Shared material for the policy-gate tests: the real sample audit, run once, and edited copies of it.

The sample's results.json comes from the real CLI on the committed model and manifests (--bootstrap 200);
edge cases (too few non-members, slices, a baseline) are edited copies of that document.
"""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from mia_audit.cli import app
from tests.conftest import SAMPLES

runner = CliRunner()
_CACHE: dict[str, object] = {}

# Environment for CLI calls in tests: never write into a real CI job's summary, never inherit NO_COLOR.
CLEAN_ENV = {"GITHUB_STEP_SUMMARY": None, "NO_COLOR": None, "FORCE_COLOR": None, "SOURCE_DATE_EPOCH": None}


def sample_run(tmp_path_factory) -> tuple[dict, Path, object]:
    """(results document, path of the results.json written, CLI result) of the sample audit, run once.

    Metric and label-only attacks only (`--shadow-models 0`): the gate's logic is what these tests judge."""
    if "document" not in _CACHE:
        out = tmp_path_factory.mktemp("gate-sample") / "out"
        result = runner.invoke(
            app,
            ["run", str(SAMPLES / "digits_mlp.onnx"), "--members", str(SAMPLES / "members.csv"),
             "--nonmembers", str(SAMPLES / "nonmembers.csv"), "--out", str(out), "--bootstrap", "200", "--json",
             "--quiet", "--format", "json", "--shadow-models", "0"],
            env=CLEAN_ENV,
        )
        assert result.exit_code in (0, 1, 3), result.stderr
        _CACHE["document"] = json.loads(result.stdout)
        _CACHE["path"] = out / "results.json"
        _CACHE["result"] = result
    return copy.deepcopy(_CACHE["document"]), _CACHE["path"], _CACHE["result"]


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


def write_policy(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def attacks_by_name(document: dict) -> dict[str, dict]:
    return {attack["name"]: attack for attack in document["attacks"]}


def with_nonmembers(document: dict, n: int) -> dict:
    """A copy claiming `n` non-members, with the evidence flags §4.3 gives that count (numbers unchanged)."""
    edited = copy.deepcopy(document)
    edited["data"]["nonmembers"]["n"] = n
    for attack in edited["attacks"]:
        attack["n_nonmembers"] = n
        for key, point in attack["tpr_at_fpr"].items():
            alpha = float(key)
            point["n_nonmembers"] = n
            point["flag"] = "not_estimable" if n * alpha < 1 else "low_evidence" if n * alpha < 10 else "ok"
    return edited


def hand_written_slices() -> list[dict]:
    """Per-slice results as a slice-measuring run would add them (numbers chosen by hand)."""
    def tpr(value, ci, flag, n):
        return {"tpr": value, "ci": ci, "achieved_fpr": 0.0, "achieved_fpr_ci": [0.0, 0.01], "n_nonmembers": n,
                "flag": flag}

    return [
        {"spec": "label", "value": 3, "attack": "loss", "auc": 0.62, "auc_ci": [0.57, 0.68], "advantage": 0.30,
         "advantage_ci": [0.22, 0.38], "epsilon_lower_bound": 1.1, "n_members": 30, "n_nonmembers": 150,
         "flag": "ok",
         "tpr_at_fpr": {"0.001": tpr(0.0, [0.0, 0.1], "not_estimable", 150),
                        "0.01": tpr(0.10, [0.0, 0.2], "low_evidence", 150),
                        "0.1": tpr(0.30, [0.15, 0.45], "ok", 150)}},
        {"spec": "label", "value": 7, "attack": "loss", "auc": 0.53, "auc_ci": [0.50, 0.56], "advantage": 0.08,
         "advantage_ci": [0.03, 0.13], "epsilon_lower_bound": 0.2, "n_members": 31, "n_nonmembers": 148,
         "flag": "ok",
         "tpr_at_fpr": {"0.001": tpr(0.0, [0.0, 0.0], "not_estimable", 148),
                        "0.01": tpr(0.0, [0.0, 0.03], "low_evidence", 148),
                        "0.1": 0.12}},  # a bare number is accepted too
        {"spec": "label", "value": 3, "attack": "entropy", "auc": 0.58, "auc_ci": [0.52, 0.64], "advantage": 0.2,
         "advantage_ci": [0.1, 0.3], "n_members": 30, "n_nonmembers": 150, "flag": "ok", "tpr_at_fpr": {}},
        {"spec": "site", "value": "north", "attack": "loss", "auc": 0.51, "auc_ci": [0.49, 0.53],
         "advantage": 0.02, "advantage_ci": [0.0, 0.05], "n_members": 12, "n_nonmembers": 9,
         "flag": "not_estimable", "tpr_at_fpr": {}},
    ]
