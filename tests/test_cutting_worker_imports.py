"""Exact evaluation on a worker needs numpy and our cutting types, not Qiskit or Aer."""

from __future__ import annotations

import itertools
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from parsl.serialize import pack_apply_message, unpack_apply_message

from parsl_quantum.circuits import efficient_su2_circuit, parse_observable, prepare
from parsl_quantum.cutting import cut_by_labels
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.planner.partitioning import balanced_widths, block_labels

QISKIT_PACKAGES = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "qiskit_addon_cutting")

#: A fresh interpreter playing an HTEX worker: it imports the worker hook and the evaluate app's
#: module, runs a Parsl-packed task through the hook, and reports what it loaded.
WORKER = """
import json, sys
from parsl_quantum.executors._worker import execute_bound_task
import parsl_quantum.executors.subexperiments
result = execute_bound_task(open(sys.argv[1], "rb").read(), sys.argv[2], {})
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"values": result.values.tolist(), "method": result.method, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def program():
    circuit = prepare(efficient_su2_circuit(8, 2, "linear"))
    obs = parse_observable("mean-z", 8) + parse_observable("0.5*XIIIIIIY", 8)
    labels, _ = block_labels(circuit, balanced_widths(8, 2))
    return cut_by_labels(circuit, obs, labels).partitions[0]


def all_rows(program) -> np.ndarray:
    return np.array(list(itertools.product(*(range(len(s.options)) for s in program.sites))))


def run_worker(tmp_path: Path, payload: bytes, backend: str) -> dict:
    task = tmp_path / "task.bin"
    task.write_bytes(payload)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(task), backend],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def test_an_exact_task_runs_through_the_worker_hook_without_qiskit(program, tmp_path: Path) -> None:
    rows = all_rows(program)
    assert len(rows) > 1
    expected = evaluate_subexperiments(program, rows).values
    payload = pack_apply_message(evaluate_subexperiments, (program, rows), {"mode": "exact"})
    report = run_worker(tmp_path, payload, "aer")
    assert report["method"] == "batched-statevector"
    np.testing.assert_allclose(np.array(report["values"]), expected, atol=1e-12)
    assert "numpy" in report["loaded"]
    assert not set(QISKIT_PACKAGES) & set(report["loaded"])


def test_an_exact_task_on_an_empty_batch_loads_no_qiskit(program, tmp_path: Path) -> None:
    rows = np.zeros((0, len(program.sites)), dtype=np.int64)
    payload = pack_apply_message(evaluate_subexperiments, (program, rows), {})
    report = run_worker(tmp_path, payload, "aer")
    assert report["values"] == []
    assert not set(QISKIT_PACKAGES) & set(report["loaded"])


def test_an_unpickled_program_still_gives_its_circuit_for_sampling(program) -> None:
    copy = pickle.loads(pickle.dumps(program))
    assert copy.circuit == program.circuit
    assert copy.shape == program.shape and copy.cuts == program.cuts
    again = pickle.loads(pickle.dumps(copy))
    assert again.circuit == program.circuit
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = copy.missing  # noqa: B018 - the attribute access is what is tested


def test_a_program_crosses_parsls_serializer_whole_and_reprs_short(program) -> None:
    [_, (copy, _rows), _] = unpack_apply_message(
        pack_apply_message(evaluate_subexperiments, (program, all_rows(program)), {})
    )
    assert copy.shape == program.shape and copy.observables == program.observables
    assert [s.labels for s in copy.sites] == [s.labels for s in program.sites]
    for mine, theirs in zip(copy.segments, program.segments, strict=True):
        assert [g.qubits for g in mine] == [g.qubits for g in theirs]
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a.matrix, b.matrix)
    assert copy.circuit == program.circuit
    text = repr(program)
    assert text == (
        f"PartitionProgram(num_qubits={program.num_qubits}, gates={program.num_gates}, "
        f"sites={len(program.sites)}, observables={len(program.observables)})"
    )


BIND = """
import json
from parsl_quantum.backends import bind_worker_backend, bound_backends, worker_backend
bind_worker_backend("aer", max_concurrent_jobs=2)
first = worker_backend("aer")
same = worker_backend("aer") is first
bind_worker_backend("aer", max_concurrent_jobs=2)
kept = worker_backend("aer") is first
bind_worker_backend("aer", max_concurrent_jobs=3)
second = worker_backend("aer")
print(json.dumps({
    "limits": [first.max_concurrent_jobs, second.max_concurrent_jobs],
    "same": same,
    "kept": kept,
    "replaced": second is not first,
    "bound": {k: v.max_concurrent_jobs for k, v in bound_backends().items()},
}))
"""


def test_a_bound_backend_is_set_up_on_first_use_with_the_pool_options() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BIND], check=True, capture_output=True, text=True
    ).stdout
    report = json.loads(out)
    assert report["limits"] == [2, 3]
    assert report["same"] and report["kept"] and report["replaced"]
    assert report["bound"] == {"aer": 3}
