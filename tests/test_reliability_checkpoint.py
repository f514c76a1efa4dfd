"""Checkpoint integrity: records are framed and checksummed and carry the run's template digest;
a record that does not verify (corrupted bytes, a pickle of the wrong shape, another template's
record, a non-finite number) is dropped and counted, never reused as a result."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from parsl.dataflow.memoization import CheckpointCommand

from parsl_quantum.reliability import CheckpointMemoizer, template_digest
from parsl_quantum.reliability.checkpoint import (
    CheckpointRecord,
    encode_record,
    read_records,
    resumable_checkpoints,
)

KEY = template_digest({"kind": "circuit-cutting", "circuit": {"qubits": 8}})


def write_run(run_dir: Path, results: dict[str, Any], key: str = KEY) -> Path:
    """Checkpoint ``results`` (memo hash -> result) as a run with template digest ``key`` does,
    through the memoizer's own writer; returns the checkpoint file."""
    memoizer = CheckpointMemoizer(run_key=key)
    memoizer.start(run_dir=str(run_dir), config_run_dir=str(run_dir.parent))
    for i, (hashsum, result) in enumerate(results.items()):
        memoizer.checkpoint_one(CheckpointCommand({"id": i, "hashsum": hashsum}, result=result))  # type: ignore[arg-type]
    return run_dir / "checkpoint" / "tasks.pkl"


def load(run_dir: Path, key: str = KEY) -> tuple[dict[str, Any], int]:
    """What a resumed run with template digest ``key`` takes from ``run_dir``: the results by
    memo hash, and how many records it dropped."""
    memoizer = CheckpointMemoizer([str(run_dir / "checkpoint")], run_key=key)
    table = memoizer.load_checkpoints(memoizer.checkpoint_files)
    return {h: f.result() for h, f in table.items()}, memoizer.dropped


def test_an_empty_checkpoint_holds_nothing_and_drops_nothing(tmp_path: Path) -> None:
    (tmp_path / "000" / "checkpoint").mkdir(parents=True)
    (tmp_path / "000" / "checkpoint" / "tasks.pkl").write_bytes(b"")
    assert load(tmp_path / "000") == ({}, 0)


def test_records_round_trip(tmp_path: Path) -> None:
    values = {f"h{i}": np.full(3, 0.25 * i) for i in range(4)}
    write_run(tmp_path / "000", values)
    table, dropped = load(tmp_path / "000")
    assert dropped == 0 and set(table) == set(values)
    for h, v in values.items():
        np.testing.assert_array_equal(table[h], v)


def test_overwritten_bytes_drop_only_the_damaged_records(tmp_path: Path) -> None:
    values = {f"h{i}": np.full(64, 0.0125 * (i + 1)) for i in range(6)}
    path = write_run(tmp_path / "000", values)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x7f" * 64  # what made a resumed value 2e304 before
    path.write_bytes(bytes(data))
    table, dropped = load(tmp_path / "000")
    assert 1 <= dropped <= 2 and len(table) == len(values) - dropped
    for h, v in table.items():  # whatever was kept is exactly what was written
        np.testing.assert_array_equal(v, values[h])


def test_a_damaged_length_field_costs_one_record(tmp_path: Path) -> None:
    values = {f"h{i}": float(i) for i in range(3)}
    path = write_run(tmp_path / "000", values)
    data = bytearray(path.read_bytes())
    first = len(encode_record(CheckpointRecord("h0", KEY, 0.0)))
    data[first + 8] ^= 0xFF  # the second record's length
    path.write_bytes(bytes(data))
    assert load(tmp_path / "000") == ({"h0": 0.0, "h2": 2.0}, 1)


@pytest.mark.parametrize(
    "payload",
    [
        {"hash": "h9", "exception": None, "result": 1.0},  # Parsl's own record shape
        ["not", "a", "record"],
        {"hash": 9, "run": KEY, "result": 1.0},
    ],
    ids=["parsl-shape", "list", "non-string-hash"],
)
def test_a_valid_pickle_of_the_wrong_shape_is_dropped(tmp_path: Path, payload: Any) -> None:
    path = write_run(tmp_path / "000", {"h0": 1.5})
    with path.open("ab") as fh:
        pickle.dump(payload, fh)  # a bare pickle, as an older writer left it
    assert load(tmp_path / "000") == ({"h0": 1.5}, 1)


def test_another_templates_records_are_dropped(tmp_path: Path) -> None:
    write_run(tmp_path / "000", {"h0": 1.0, "h1": 2.0})
    other = template_digest({"kind": "circuit-cutting", "circuit": {"qubits": 9}})
    assert load(tmp_path / "000", key=other) == ({}, 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.array([0.5, np.nan])])
def test_a_non_finite_result_is_never_reused(tmp_path: Path, bad: Any) -> None:
    write_run(tmp_path / "000", {"good": 0.5, "bad": bad})
    assert load(tmp_path / "000") == ({"good": 0.5}, 1)


def test_a_torn_last_record_is_ignored_without_counting(tmp_path: Path) -> None:
    path = write_run(tmp_path / "000", {"h0": 1.0, "h1": 2.0})
    torn = encode_record(CheckpointRecord("h2", KEY, list(range(100))))
    with path.open("ab") as fh:
        fh.write(torn[: len(torn) // 2])  # a driver killed while writing
    assert load(tmp_path / "000") == ({"h0": 1.0, "h1": 2.0}, 0)
    records, dropped = read_records(path)
    assert [r.hash for r in records] == ["h0", "h1"] and dropped == 0


def test_resumable_checkpoints_lists_runs_that_checkpointed(tmp_path: Path) -> None:
    write_run(tmp_path / "000", {"h0": 1.0})
    (tmp_path / "001").mkdir()  # a later run that checkpointed nothing
    assert resumable_checkpoints(tmp_path) == [str((tmp_path / "000" / "checkpoint").resolve())]


def test_template_digest_ignores_key_order_and_sees_values() -> None:
    assert template_digest({"a": 1, "b": {"c": 2}}) == template_digest({"b": {"c": 2}, "a": 1})
    assert template_digest({"a": 1}) != template_digest({"a": 2})
