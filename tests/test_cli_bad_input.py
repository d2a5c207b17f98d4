"""DESIGN §7 bad input: one clear line naming file, column and row; exit code 2; no traceback; nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mia_audit.cli import app
from tests.conftest import read_rows, write_rows

runner = CliRunner()


def invoke(paths: dict[str, Path], *extra: str, model: Path | None = None, members: Path | None = None,
           nonmembers: Path | None = None):
    out = paths["dir"] / "out"
    args = [
        "run",
        str(model or paths["model"]),
        "--members", str(members or paths["members"]),
        "--nonmembers", str(nonmembers or paths["nonmembers"]),
        "--out", str(out),
        "--bootstrap", "50",
        "--label-only-queries", "2",
        "--format", "json",  # these tests are about the audit; the report has its own tests
        *extra,
    ]
    return runner.invoke(app, args), out


def assert_refused(result, out: Path, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists(), "nothing may be written on bad input"


def edit_cell(path: Path, *, column: str, row: int, value: str) -> Path:
    header, rows = read_rows(path)
    rows[row][header.index(column)] = value
    return write_rows(path, header, rows)


def test_missing_model_file(small_audit):
    result, out = invoke(small_audit, model=small_audit["dir"] / "nope.onnx")
    assert_refused(result, out, "nope.onnx", "not found")


def test_missing_manifest(small_audit):
    result, out = invoke(small_audit, members=small_audit["dir"] / "missing.csv")
    assert_refused(result, out, "missing.csv", "not found")


def test_missing_label_column(small_audit):
    result, out = invoke(small_audit, "--label-column", "diagnosis")
    assert_refused(result, out, "members.csv", "'diagnosis'", "--label-column")


def test_feature_count_mismatch(small_audit):
    header, rows = read_rows(small_audit["members"])
    write_rows(small_audit["members"], header[1:], [row[1:] for row in rows])
    _, nrows = read_rows(small_audit["nonmembers"])
    write_rows(small_audit["nonmembers"], header[1:], [row[1:] for row in nrows])
    result, out = invoke(small_audit)
    assert_refused(result, out, "members.csv", "expects 64 input features", "63 feature columns")


def test_manifests_with_different_columns(small_audit):
    header, rows = read_rows(small_audit["nonmembers"])
    write_rows(small_audit["nonmembers"], header[1:], [row[1:] for row in rows])
    result, out = invoke(small_audit)
    assert_refused(result, out, "nonmembers.csv", "feature columns differ")


@pytest.mark.parametrize("value, expected", [("abc", "non-numeric"), ("", "empty value"), ("nan", "nan is not a finite"),
                                             ("inf", "inf is not a finite")])
def test_bad_feature_value_names_column_and_row(small_audit, value, expected):
    edit_cell(small_audit["nonmembers"], column="pixel_5", row=6, value=value)
    result, out = invoke(small_audit)
    assert_refused(result, out, "nonmembers.csv", "column 'pixel_5'", "row 7 (line 8)", expected)


def test_label_outside_model_classes(small_audit):
    edit_cell(small_audit["members"], column="label", row=3, value="12")
    result, out = invoke(small_audit)
    assert_refused(result, out, "members.csv", "column 'label'", "row 4", "'12'", "0..9")


def test_non_integer_label(small_audit):
    edit_cell(small_audit["members"], column="label", row=0, value="cat")
    result, out = invoke(small_audit)
    assert_refused(result, out, "members.csv", "row 1", "'cat'")


def test_empty_manifest(small_audit):
    small_audit["nonmembers"].write_text("")
    result, out = invoke(small_audit)
    assert_refused(result, out, "nonmembers.csv", "empty")


def test_header_only_manifest(small_audit):
    header, _ = read_rows(small_audit["nonmembers"])
    write_rows(small_audit["nonmembers"], header, [])
    result, out = invoke(small_audit)
    assert_refused(result, out, "nonmembers.csv", "no records")


def test_ragged_row(small_audit):
    text = small_audit["members"].read_text().splitlines()
    text[5] = text[5] + ",99"
    small_audit["members"].write_text("\n".join(text) + "\n")
    result, out = invoke(small_audit)
    assert_refused(result, out, "members.csv", "row 5 (line 6)", "65 fields" if False else "fields")


def test_corrupt_model_file(small_audit):
    corrupt = small_audit["dir"] / "corrupt.onnx"
    corrupt.write_bytes(small_audit["model"].read_bytes()[:5000])
    result, out = invoke(small_audit, model=corrupt)
    assert_refused(result, out, "corrupt.onnx")


def test_unsupported_model_file(small_audit):
    other = small_audit["dir"] / "model.pkl"
    other.write_bytes(b"\x80\x04\x95 not a model at all")
    result, out = invoke(small_audit, model=other)
    assert_refused(result, out, "model.pkl")


def test_overlap_is_refused_by_default_with_count(small_audit):
    header, rows = read_rows(small_audit["members"])
    _, nrows = read_rows(small_audit["nonmembers"])
    write_rows(small_audit["nonmembers"], header, nrows + rows[:3])
    result, out = invoke(small_audit)
    assert_refused(result, out, "3 non-member record(s) also appear among the members", "--drop-overlap")


def test_drop_overlap_warns_and_runs(small_audit):
    header, rows = read_rows(small_audit["members"])
    _, nrows = read_rows(small_audit["nonmembers"])
    write_rows(small_audit["nonmembers"], header, nrows + rows[:3])
    result, out = invoke(small_audit, "--drop-overlap", "--shadow-models", "0")
    assert result.exit_code == 3, result.stderr  # the audit ran; 150 non-members leave the default policy inconclusive
    assert "warning: 3 non-member record(s)" in result.stderr
    data = json.loads((out / "results.json").read_text())["data"]
    assert data["n_overlap"] == 3 and data["n_dropped_overlap"] == 3 and data["nonmembers"]["n"] == 150


def test_existing_results_are_not_touched_on_bad_input(small_audit):
    out = small_audit["dir"] / "out"
    out.mkdir()
    (out / "results.json").write_text("previous run")
    edit_cell(small_audit["members"], column="label", row=0, value="99")
    result, _ = invoke(small_audit)
    assert result.exit_code == 2
    assert (out / "results.json").read_text() == "previous run"
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_tensor_paths_escaping_the_manifest_folder_are_refused(tmp_path, small_audit):
    import numpy as np

    (tmp_path / "data").mkdir()
    np.save(tmp_path / "secret.npy", np.zeros(64))
    np.save(tmp_path / "data" / "ok.npy", np.zeros(64))
    members = write_rows(tmp_path / "data" / "m.csv", ["path", "label"], [["ok.npy", "0"], ["../secret.npy", "1"]])
    nonmembers = write_rows(tmp_path / "data" / "n.csv", ["path", "label"], [["ok.npy", "2"]])
    result, out = invoke(small_audit, "--input-column", "path", members=members, nonmembers=nonmembers)
    assert_refused(result, out, "m.csv", "column 'path'", "row 2", "escapes")


def test_fractional_value_for_an_integer_input_model(tmp_path):
    """dtype mismatch: a model declaring int64 inputs gets a non-integer feature."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["logits"], to=TensorProto.FLOAT)],
        "int_input",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [None, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "int_model.onnx"
    onnx.save(model, path)
    members = write_rows(tmp_path / "m.csv", ["a", "b", "label"], [["1", "2", "1"], ["3", "0", "0"]])
    nonmembers = write_rows(tmp_path / "n.csv", ["a", "b", "label"], [["1", "5", "1"], ["4", "2.5", "0"]])
    paths = {"model": path, "members": members, "nonmembers": nonmembers, "dir": tmp_path}
    result, out = invoke(paths)
    assert_refused(result, out, "n.csv", "column 'b'", "row 2", "integer")


def test_single_member_is_refused(small_audit):
    header, rows = read_rows(small_audit["members"])
    write_rows(small_audit["members"], header, rows[:1])
    result, out = invoke(small_audit)
    assert_refused(result, out, "members.csv", "1 record(s)", "at least 2")
