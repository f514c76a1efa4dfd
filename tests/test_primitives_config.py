"""CuttingEstimator given a config: it loads the pools on its first run and releases them."""

from __future__ import annotations

from pathlib import Path

import parsl
import pytest
from parsl.errors import NoDataFlowKernelError
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import StatevectorEstimator

from parsl_quantum import configs
from parsl_quantum.primitives import CuttingEstimator


def test_without_a_loaded_config_run_says_so() -> None:
    circuit = efficient_su2(4, reps=1).assign_parameters([0.3] * 16)
    with pytest.raises(NoDataFlowKernelError):
        CuttingEstimator().run([(circuit, "ZZZZ")])


def test_a_given_config_is_loaded_once_and_released(tmp_path: Path) -> None:
    circuit = efficient_su2(4, reps=1).assign_parameters([0.3] * 16)
    config = configs.local(tmp_path, ("cpu",), monitoring=False)
    with CuttingEstimator(max_subcircuit_qubits=2, config=config) as estimator:
        first = estimator.run([(circuit, "ZZZZ")]).result()
        second = estimator.run([(circuit, "XIIX")]).result()
        assert parsl.dfk().config is config
    with pytest.raises(NoDataFlowKernelError):
        parsl.dfk()
    expected = StatevectorEstimator().run([(circuit, "ZZZZ"), (circuit, "XIIX")]).result()
    assert float(first[0].data.evs) == pytest.approx(float(expected[0].data.evs), abs=1e-8)
    assert float(second[0].data.evs) == pytest.approx(float(expected[1].data.evs), abs=1e-8)
