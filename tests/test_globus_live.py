"""Against a real Globus Compute endpoint: runs only when ``GLOBUS_COMPUTE_ENDPOINT`` names one.

The endpoint must have parsl-quantum installed in the same Python minor version as this client;
credentials come from the Globus Compute SDK's saved login or ``GLOBUS_COMPUTE_CLIENT_ID`` /
``GLOBUS_COMPUTE_CLIENT_SECRET``. A multi-user endpoint built from the parsl-quantum template
serves the ``cpu`` pool with its defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import parsl
import pytest
from parsl.app.app import python_app
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.configs.globus import globus
from parsl_quantum.cutting import cut_by_labels
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.remote import submit

ENDPOINT = os.environ.get("GLOBUS_COMPUTE_ENDPOINT", "").strip()

pytestmark = [
    pytest.mark.globus_live,
    pytest.mark.skipif(
        not ENDPOINT,
        reason="needs a live Globus Compute endpoint: set GLOBUS_COMPUTE_ENDPOINT=<endpoint id> "
        "and log in with the Globus Compute SDK",
    ),
]


def partition() -> tuple[PartitionProgram, np.ndarray]:
    circuit = efficient_su2(4, entanglement="linear", reps=1)
    circuit = circuit.assign_parameters(np.linspace(0.1, 1.0, circuit.num_parameters))
    problem = cut_by_labels(circuit.decompose(), SparsePauliOp(["ZZZZ"]), [0, 0, 1, 1])
    program = problem.partitions[0]
    dims = [len(s.options) for s in program.sites]
    return program, np.indices(dims).reshape(len(dims), -1).T


def test_submit_runs_on_the_live_endpoint() -> None:
    from globus_compute_sdk import Executor

    program, rows = partition()
    with Executor(endpoint_id=ENDPOINT) as gce:
        result = submit(evaluate_subexperiments, program, rows, executor=gce).result(timeout=600)
    local = evaluate_subexperiments(program, rows)
    np.testing.assert_allclose(result.values, local.values, rtol=0, atol=1e-10)


def test_parsl_pool_runs_on_the_live_endpoint(tmp_path: Path) -> None:
    program, rows = partition()
    config = globus(run_dir=tmp_path, monitoring=False)  # cpu pool from $GLOBUS_COMPUTE_ENDPOINT
    evaluate = python_app(evaluate_subexperiments, executors=["cpu"])
    with parsl.load(config):
        result = evaluate(program, rows, parsl_resource_specification={}).result(timeout=600)
    assert result.backend == "aer"
    np.testing.assert_allclose(
        result.values, evaluate_subexperiments(program, rows).values, rtol=0, atol=1e-10
    )
