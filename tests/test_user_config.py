"""The main job inside a user's own Parsl script and Config (its own module: one DFK at a time)."""

from __future__ import annotations

from pathlib import Path

import parsl
import pytest
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.configs.local import INTERCHANGE_CMD, WORKER_CMD
from parsl_quantum.workflow.cut_and_run import cut_and_run


def test_cut_and_run_in_a_users_own_config(tmp_path: Path) -> None:
    """Any executor label works; plain HTEX pools are taken as Aer pools."""
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="mysim",
                max_workers_per_node=1,
                provider=LocalProvider(init_blocks=1),
                interchange_launch_cmd=INTERCHANGE_CMD,
                launch_cmd=WORKER_CMD,
            )
        ],
        run_dir=str(tmp_path),
    )
    circuit = efficient_su2_circuit(6, 1, "linear")
    obs = parse_observable("mean-z", 6)
    with parsl.load(config):
        result = cut_and_run(circuit, obs, max_subcircuit_qubits=3)
    parsl.clear()
    assert result.configuration["partitions"][0]["pool"] == "mysim"
    assert result.value == pytest.approx(result.reference, abs=1e-8)
