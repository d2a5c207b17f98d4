"""Issue 10: one evaluation core for the audit and step 7, named seed streams, reproducible retraining.

What is checked here could fail on a second copy of the core or on position-dependent seeds:
- an attack's numbers do not depend on which other attacks ran or in which order they were asked for;
- step 7 runs exactly the attacks the user selected, on every row;
- dropout and DP-SGD retraining give identical rows for the same seed, whatever torch's global RNG holds;
- seed streams are independent by name and reproducible.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from mia_audit.cli import app
from mia_audit.config import DefenseOptions, RunConfig, ShadowOptions, SlicingSpec
from mia_audit.seeds import SeedStreams
from mia_audit.workflow import run_audit

runner = CliRunner()


def _config(audit: dict, **overrides) -> RunConfig:
    base = dict(
        model_path=audit["model"],
        members_path=audit["members"],
        nonmembers_path=audit["nonmembers"],
        n_bootstrap=60,
        slicing=SlicingSpec(enabled=False),
        shadow=ShadowOptions(n_models=0, use_cache=False),
    )
    base.update(overrides)
    return RunConfig(**base)


def _attack(run, name: str) -> dict:
    return next(a.model_dump(mode="json") for a in run.result.attacks if a.name == name)


# --- seed streams ---------------------------------------------------------------------------------------


def test_seed_streams_are_reproducible_and_independent_by_name():
    seeds = SeedStreams(run_seed=7)
    first = seeds.numpy("bootstrap", "loss").random(5)
    np.testing.assert_array_equal(first, SeedStreams(run_seed=7).numpy("bootstrap", "loss").random(5))
    assert not np.array_equal(first, seeds.numpy("bootstrap", "entropy").random(5))
    assert not np.array_equal(first, SeedStreams(run_seed=8).numpy("bootstrap", "loss").random(5))
    # a child namespace is the same as the longer path, and differs from the parent's stream
    np.testing.assert_array_equal(seeds.child("audit").numpy("x").random(3), seeds.child("audit").numpy("x").random(3))
    assert seeds.child("audit").integer("x") != seeds.integer("x")
    # indices are typed: shadow 1 is not shadow "1"
    assert seeds.integer("shadow", 1) != seeds.integer("shadow", "1")
    # negative run seeds are valid and distinct from their absolute value
    assert SeedStreams(run_seed=-3).integer("x") != SeedStreams(run_seed=3).integer("x")


def test_seed_stream_integers_fit_the_requested_width_and_torch_generators_repeat():
    seeds = SeedStreams(run_seed=0)
    values = [seeds.integer("shadow", k, bits=32) for k in range(200)]
    assert all(0 <= v < 2**32 for v in values) and len(set(values)) == 200
    a = torch.rand(4, generator=seeds.torch("init"))
    b = torch.rand(4, generator=SeedStreams(run_seed=0).torch("init"))
    assert torch.equal(a, b)


# --- attack numbers do not depend on the other attacks ----------------------------------------------------


@pytest.fixture(scope="module")
def loss_runs(tmp_path_factory):
    """The sample model on 120 members / 150 non-members: loss alone, in two orders, and in a full run."""
    from tests.conftest import SAMPLES, read_rows, write_rows

    folder = tmp_path_factory.mktemp("core")
    header, member_rows = read_rows(SAMPLES / "members.csv")
    _, nonmember_rows = read_rows(SAMPLES / "nonmembers.csv")
    audit = {
        "model": SAMPLES / "digits_mlp.onnx",
        "members": write_rows(folder / "m.csv", header, member_rows[:120]),
        "nonmembers": write_rows(folder / "n.csv", header, nonmember_rows[:150]),
    }
    full_shadows = ShadowOptions(n_models=4, use_cache=False, recipe_path=None)
    return {
        "alone": run_audit(config=_config(audit, attacks=("loss",))),
        "loss_first": run_audit(config=_config(audit, attacks=("loss", "baseline", "entropy"))),
        "loss_last": run_audit(config=_config(audit, attacks=("entropy", "baseline", "loss"))),
        "full": run_audit(config=_config(audit, shadow=full_shadows)),
    }


def test_loss_attack_is_bit_identical_alone_in_any_order_and_in_a_full_run(loss_runs):
    alone = _attack(loss_runs["alone"], "loss")
    for other in ("loss_first", "loss_last", "full"):
        assert _attack(loss_runs[other], "loss") == alone, other
    full_names = [a.name for a in loss_runs["full"].result.attacks]
    assert {"lira_online", "rmia", "label_only_noise"} <= set(full_names)  # the full run really ran more


def test_results_are_listed_in_registry_order_whatever_the_request_order(loss_runs):
    first = [a.name for a in loss_runs["loss_first"].result.attacks]
    last = [a.name for a in loss_runs["loss_last"].result.attacks]
    assert first == last == ["baseline", "loss", "entropy"]


# --- step 7 ---------------------------------------------------------------------------------------------


def test_defense_rows_run_only_the_selected_attacks(small_audit):
    recipe = small_audit["dir"] / "recipe.yaml"
    recipe.write_text("training: {epochs: 15, batch_size: 32}\n")
    out = small_audit["dir"] / "out"
    result = runner.invoke(app, [
        "run", str(small_audit["model"]), "--members", str(small_audit["members"]),
        "--nonmembers", str(small_audit["nonmembers"]), "--out", str(out), "--format", "json", "--quiet",
        "--no-slices", "--bootstrap", "40", "--shadow-models", "0", "--no-cache", "--shadow-recipe", str(recipe),
        "--defenses", "top_k:3,label_smoothing:0.1", "--defense-shadow-models", "4", "--attacks", "loss,baseline",
    ])
    assert result.exit_code in (0, 1, 3), result.output
    document = json.loads((out / "results.json").read_text())
    rows = document["defenses"]["rows"]
    assert [row["role"] for row in rows] == ["original", "retrained_baseline", "variant", "variant"]
    for row in rows:
        assert row["status"] == "done", row
        assert sorted(a["name"] for a in row["attacks"]) == ["baseline", "loss"], row["label"]


def _defended(audit: dict, tmp_path) -> list[dict]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("training: {epochs: 6, batch_size: 32}\n")
    config = _config(
        audit,
        attacks=("loss", "baseline", "lira_offline"),
        shadow=ShadowOptions(n_models=0, use_cache=False, recipe_path=recipe),
        defense=DefenseOptions(spec="dropout:0.3,dp_sgd:epsilon=8", n_shadow_models=4),
    )
    run = run_audit(config=config)
    return [row.model_dump(mode="json") for row in run.result.defenses.rows]


def test_dropout_and_dp_sgd_retraining_is_reproducible_and_ignores_torch_global_rng(small_audit, tmp_path):
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    first = _defended(small_audit, tmp_path)
    assert torch.equal(torch.random.get_rng_state(), before), "step 7 consumed torch's global RNG"
    torch.manual_seed(12345)  # a different global state must not matter
    second = _defended(small_audit, tmp_path)
    labels = [row["label"] for row in first]
    assert any(label.startswith("dropout") for label in labels) and any(label.startswith("dp_sgd") for label in labels)
    assert all(row["status"] == "done" for row in first), [row.get("reason") for row in first]
    assert first == second
    dp_row = next(row for row in first if row["label"].startswith("dp_sgd"))
    assert dp_row["dp_epsilon"] is not None and dp_row["dp_epsilon"] <= 8.0 + 1e-6


# --- configuration ----------------------------------------------------------------------------------------


def test_too_few_shadow_models_is_refused_by_the_config_and_the_cli_alike(small_audit):
    with pytest.raises(ValidationError, match=r"--shadow-models 2: use 0 \(off\) or at least 4"):
        ShadowOptions(n_models=2)
    result = runner.invoke(app, [
        "run", str(small_audit["model"]), "--members", str(small_audit["members"]),
        "--nonmembers", str(small_audit["nonmembers"]), "--out", str(small_audit["dir"] / "o"),
        "--shadow-models", "2",
    ])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--shadow-models 2: use 0 (off) or at least 4" in lines[0]
    assert "Traceback" not in result.stderr
