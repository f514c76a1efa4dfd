"""cut_and_run_future: a cutting job as a node of a Parsl workflow, on real local pools."""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path

import parsl
import pytest
from parsl.dataflow.futures import AppFuture
from qiskit import QuantumCircuit

from parsl_quantum import configs
from parsl_quantum.circuits import efficient_su2_circuit, exact_values, parse_observable
from parsl_quantum.workflow.cut_and_run import CuttingResult
from parsl_quantum.workflow.futures import cut_and_run_future


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    """One cpu pool whose workers can import this module's apps."""
    run_dir = tmp_path_factory.mktemp("futures")
    here = str(Path(__file__).parent)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.getenv("PYTHONPATH")])))
        with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
            yield run_dir
    parsl.clear()


@parsl.python_app(executors=["cpu"])
def build_circuit(qubits: int, seed: int) -> QuantumCircuit:
    from parsl_quantum.circuits import efficient_su2_circuit

    return efficient_su2_circuit(qubits, 1, "linear", seed=seed)


@parsl.python_app(executors=["cpu"])
def difference(a: CuttingResult, b: CuttingResult) -> float:
    return a.value - b.value


def test_a_failing_job_fails_its_future(pools: Path) -> None:
    circuit = efficient_su2_circuit(6, 1, "linear", seed=1)
    future = cut_and_run_future(circuit, parse_observable("mean-z", 6), pools=["nope"])
    with pytest.raises(ValueError, match="unknown pool 'nope'"):
        future.result()


def test_it_waits_for_its_inputs_and_returns_at_once(pools: Path) -> None:
    gate: Future[QuantumCircuit] = Future()
    future = cut_and_run_future(gate, parse_observable("mean-z", 6), max_subcircuit_qubits=3)
    assert isinstance(future, AppFuture)
    assert not future.done()  # its circuit does not exist yet
    circuit = efficient_su2_circuit(6, 1, "linear", seed=2)
    gate.set_result(circuit)
    result = future.result()
    assert len(result.configuration["partitions"]) == 2
    assert result.value == pytest.approx(result.reference, abs=1e-8)


def test_two_jobs_chain_from_and_into_other_apps(pools: Path) -> None:
    obs = parse_observable("mean-z", 6)
    circuits = [build_circuit(6, 3), build_circuit(6, 4)]
    jobs = [
        cut_and_run_future(c, obs, max_subcircuit_qubits=3, reference="never") for c in circuits
    ]
    gap = difference(*jobs)
    exact = [
        exact_values(efficient_su2_circuit(6, 1, "linear", seed=s), [obs])[0].real for s in (3, 4)
    ]
    assert exact[0] is not None and exact[1] is not None
    assert gap.result() == pytest.approx(exact[0] - exact[1], abs=1e-8)
    assert all(job.result().tasks >= 2 for job in jobs)
