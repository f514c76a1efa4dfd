"""The distributed-simulation mini-app: sliced tensor-network contraction as Parsl tasks, checked
against Aer's statevector, and the MPI path's skip reason."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import parsl
import pytest
from conftest import RunTemplate
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from miniapps import distributed_sim as ds
from parsl_quantum import configs


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("distsim")
    with parsl.load(configs.local(run_dir, pools=("cpu",), monitoring=False)):
        yield run_dir


# --- pure functions, no Parsl --------------------------------------------------------------


def test_quimb_conversion_keeps_qiskit_qubit_order() -> None:
    qc = random_circuit(5, 6, max_operands=2, seed=3)
    sv = Statevector(qc).data
    circ = ds.to_quimb(qc)
    for bits in ("00000", "10110", "01011"):
        index = sum(int(b) << i for i, b in enumerate(bits))
        assert abs(complex(circ.amplitude(bits, optimize="greedy")) - sv[index]) < 1e-10
    obs = SparsePauliOp.from_sparse_list([("XZ", [3, 1], 1.0)], 5)  # Z_1 X_3
    expected = Statevector(qc).expectation_value(obs).real
    value = circ.local_expectation(ds.local_operator("ZX", (1, 3)), (1, 3), optimize="greedy")
    assert abs(value - expected) < 1e-10


def test_slices_sum_to_the_unsliced_contraction() -> None:
    qc = ds.grid_circuit(3, 4, 8, seed=2)
    tn = ds.build_network(qc, "amplitude", bitstring="011010010110")
    plan = ds.plan_slices(tn, task_memory_mb=2**-10, max_repeats=8)  # 1 KiB per task
    assert plan.nslices > 1
    assert plan.width_sliced < plan.width_unsliced
    assert 2**plan.width_sliced * ds.ITEMSIZE <= 2**10 / 4
    assert plan.flops_sliced >= plan.flops_unsliced  # slicing repeats some work
    total = sum(ds.contract_slices(plan.tree, plan.arrays, [i]).value for i in range(plan.nslices))
    exact = complex(tn.contract(all, output_inds=()))
    assert abs(total * 10**plan.exponent - exact) < 1e-12


def test_reference_method_choice() -> None:
    assert ds.reference_method(ds.grid_circuit(4, 5, 2)) == "statevector"
    assert ds.reference_method(ds.grid_circuit(1, 30, 4)) == "matrix_product_state"
    assert ds.reference_method(ds.grid_circuit(5, 6, 4)) is None  # 2D and too wide
    assert ds.reference_method(ds.grid_circuit(5, 6, 4), "statevector") == "statevector"
    assert ds.reference_method(ds.grid_circuit(2, 2, 2), "none") is None


def test_params_from_an_empty_template_body_are_the_defaults() -> None:
    assert ds.DistributedSimParams.from_template({"circuit": {}}) == ds.DistributedSimParams()


def test_params_from_a_full_template_body() -> None:
    body = {
        "circuit": {"rows": 2, "cols": 3, "depth": 4, "seed": 9, "qasm": "c.qasm"},
        "quantity": "expectation",
        "bitstring": "010",
        "observable": {"pauli": "XY", "qubits": [0, 2]},
        "task_memory_mb": 0.5,
        "slices_per_task": 3,
        "search": {"max_repeats": 4, "max_time": 2.5},
        "reference": "none",
        "mpi": {"enabled": True, "ranks": 4, "launcher_options": "--oversubscribe"},
    }
    assert ds.DistributedSimParams.from_template(body) == ds.DistributedSimParams(
        rows=2,
        cols=3,
        depth=4,
        seed=9,
        qasm="c.qasm",
        quantity="expectation",
        bitstring="010",
        pauli="XY",
        qubits=(0, 2),
        task_memory_mb=0.5,
        slices_per_task=3,
        max_repeats=4,
        max_time=2.5,
        reference="none",
        mpi_pool="mpi",
        mpi_ranks=4,
        mpi_launcher_options="--oversubscribe",
    )
    # MPI named but not enabled: no MPI pool
    assert (
        ds.DistributedSimParams.from_template({"circuit": {}, "mpi": {"pool": "x"}}).mpi_pool
        is None
    )


def test_params_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.DistributedSimParams().rows = 2  # type: ignore[misc]


def test_params_fill_in_inputs_for_degenerate_widths() -> None:
    params = ds.DistributedSimParams(seed=3)
    assert params.inputs_for(1) == (ds.default_bitstring(1, 3), "Z", (0,))
    assert params.inputs_for(2)[1:] == ("ZZ", (0, 1))
    assert params.inputs_for(7)[1:] == ("ZZ", (2, 3))
    given = ds.DistributedSimParams(bitstring="10", pauli="X", qubits=(1,))
    assert given.inputs_for(2) == ("10", "X", (1,))


# --- on the local CPU pool -----------------------------------------------------------------


def test_sliced_amplitude_matches_statevector(pools: Path) -> None:
    run_dir = pools / "amplitude"
    params = ds.DistributedSimParams(rows=3, cols=4, depth=10, seed=5, max_repeats=8)
    result = ds.run(params=params, task_memory_mb=2**-8, slices_per_task=2, run_dir=run_dir)
    qc = ds.grid_circuit(3, 4, 10, seed=5)
    bits = ds.default_bitstring(12, 5)
    exact = Statevector(qc).data[sum(int(b) << i for i, b in enumerate(bits))]
    assert result.nslices > 2 and result.tasks == -(-result.nslices // 2)
    assert abs(result.value - exact) < 1e-12 * max(1.0, abs(exact)) + 1e-14
    assert result.reference_method == "statevector"
    assert result.rel_error is not None and result.rel_error < 1e-9
    # the point of slicing: no task needs what the state vector needs (4 KiB budget < 64 KiB)
    assert result.max_intermediate_bytes <= result.task_memory_bytes / 4
    assert result.peak_task_bytes <= result.task_memory_bytes + result.input_bytes
    assert result.task_memory_bytes < result.statevector_bytes
    with (run_dir / "tasks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["kind"] == "tn-slices" for r in rows) == result.tasks
    assert sum(r["kind"] == "reference" for r in rows) == 1
    assert (run_dir / "distributed_sim.png").stat().st_size > 10_000


def test_sliced_local_expectation_matches_statevector(pools: Path) -> None:
    qc = ds.grid_circuit(3, 3, 6, seed=8)
    result = ds.run(
        qc,
        quantity="expectation",
        pauli="ZX",
        qubits=(3, 4),
        task_memory_mb=2**-12,
        max_repeats=8,
        run_dir=pools / "expectation",
    )
    obs = SparsePauliOp.from_sparse_list([("XZ", [4, 3], 1.0)], 9)
    exact = Statevector(qc).expectation_value(obs).real
    assert result.nslices > 1
    assert abs(result.value.imag) < 1e-12
    assert abs(result.value.real - exact) < 1e-10
    assert result.abs_error is not None and result.abs_error < 1e-10


def test_mpi_path_is_skipped_with_the_reason(pools: Path, run_template: RunTemplate) -> None:
    reason = ds.mpi_unavailable_reason("cpu")
    assert reason is not None and "not a Parsl MPIExecutor" in reason
    run_dir = pools / "template"
    out = run_template(
        "distributed-simulation.yaml",
        ["circuit.rows=2", "circuit.cols=3", "circuit.depth=4", "mpi.enabled=true", "mpi.pool=cpu"],
        run_dir,
    )
    assert out["mpi"]["ran"] is False
    assert "not a Parsl MPIExecutor" in out["mpi"]["skipped"]
    assert out["abs_error"] < 1e-12
    # the headline of an amplitude is its probability; the complex value is kept beside it
    amp = complex(out["complex_value"]["real"], out["complex_value"]["imag"])
    assert out["value"] == pytest.approx(abs(amp) ** 2) and out["value"] > 0
    assert out["value"] == pytest.approx(out["reference"], rel=1e-9)
