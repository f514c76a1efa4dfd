"""The circuit-cutting mini-app from a Parsl script: exact values across families, a picture."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import parsl
import pytest
import yaml

from miniapps import circuit_cutting
from parsl_quantum import configs
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow import cut_and_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("cutting-miniapp")
    with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
        yield run_dir
    parsl.clear()


@pytest.mark.parametrize(
    ("family", "qubits", "parts", "options"),
    [
        ("efficient_su2", 9, 3, {"entanglement": "circular", "reps": 1}),
        ("qaoa", 8, 2, {"graph": "3-regular"}),
        ("clustered", 9, 3, {"clusters": 3}),
    ],
)
def test_forced_partitions_give_exact_values(loaded: Path, family, qubits, parts, options) -> None:
    run_dir = loaded / f"{family}-{parts}"
    result = circuit_cutting.run(
        family, qubits, partitions=parts, max_subcircuit_qubits=qubits, run_dir=run_dir, **options
    )
    assert len(result.configuration["partitions"]) == parts
    assert result.value == pytest.approx(result.reference, abs=1e-8)
    assert (run_dir / "tasks.csv").read_text().count("\n") == result.tasks + 1
    assert (run_dir / "tasks.png").stat().st_size > 0


def test_params_from_the_shipped_template() -> None:
    body = yaml.safe_load((ROOT / "workflows" / "circuit-cutting.yaml").read_text())
    params = circuit_cutting.CuttingParams.from_template(body)
    assert params == circuit_cutting.CuttingParams(
        family="efficient_su2",
        qubits=24,
        circuit_options={"reps": 2, "entanglement": "linear", "seed": 1234},
        max_subcircuit_qubits=12,
        observable="mean-z",
        mode="auto",
        shots=100_000,
        seed=7,
    )
    assert params.circuit_spec() == body["circuit"]
    bare = circuit_cutting.CuttingParams.from_template({"circuit": {}, "planner": {}})
    assert bare == circuit_cutting.CuttingParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.qubits = 4  # type: ignore[misc]


def test_the_template_kind_and_the_mini_app_share_one_parameter_class(tmp_path: Path) -> None:
    """The workflow layer's loader reads the body through the same dataclass the mini-app
    runs with: every planner and execution key reaches the plan, and a QASM circuit too."""
    (tmp_path / "chain.qasm").write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[4];\nh q[0];\n'
        "cx q[0],q[1];\ncx q[1],q[2];\ncx q[2],q[3];\n"
    )
    assert circuit_cutting.CuttingParams is cut_and_run.CuttingParams
    body = {
        "circuit": {"qasm": "chain.qasm"},
        "observable": "ZZII",
        "planner": {"max_subcircuit_qubits": 2, "partitions": [2], "wire_cuts": False},
        "execution": {"mode": "exact", "reference": "always", "failover": True},
    }
    params = cut_and_run.CuttingParams.from_template(body)
    assert params.circuit_spec() == {"qasm": "chain.qasm"}
    assert (params.partitions, params.wire_cuts, params.failover) == ((2,), False, True)
    pools = {"cpu": PoolInfo("cpu", ("aer",), 2, "cpu-sim", 30, True)}
    prepared = cut_and_run.prepare(body, pools, tmp_path)
    assert prepared.circuit.num_qubits == 4 and prepared.reference == "always"
    assert len(prepared.plan.chosen.problem.partitions) == 2
    assert max(p.num_qubits for p in prepared.plan.chosen.problem.partitions) <= 2


def test_params_and_circuit_options_combine(loaded: Path) -> None:
    params = circuit_cutting.CuttingParams(
        family="efficient_su2", qubits=6, partitions=(2,), max_subcircuit_qubits=6
    )
    result = circuit_cutting.run(params=params, reps=1, run_dir=loaded / "params")
    assert result.configuration["input_qubits"] == 6
    assert len(result.configuration["partitions"]) == 2
    assert result.value == pytest.approx(result.reference, abs=1e-8)
