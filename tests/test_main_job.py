"""The main job on real local pools: exact values, calibrated shot errors, the fake QPU, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import parsl
import pytest

from parsl_quantum import configs
from parsl_quantum.circuits import (
    bus_circuit,
    efficient_su2_circuit,
    exact_values,
    parse_observable,
    qaoa_circuit,
    random_2local_circuit,
)
from parsl_quantum.cutting import cut_by_labels, evaluate_exact
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.executors.whole import evaluate_whole
from parsl_quantum.planner.partitioning import balanced_widths, block_labels
from parsl_quantum.workflow.cut_and_run import cut_and_run, pool_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("pools")
    with parsl.load(configs.local(run_dir, ("cpu", "qpu"), monitoring=False)):
        yield run_dir
    parsl.clear()


CASES = {
    "su2-linear": lambda: efficient_su2_circuit(10, 2, "linear"),
    "su2-circular": lambda: efficient_su2_circuit(8, 2, "circular"),
    "qaoa-ring": lambda: qaoa_circuit(10, 1, "ring"),
    "random-2local": lambda: random_2local_circuit(9, 4, seed=3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_exact_value_matches_direct_simulation(pools: Path, name: str) -> None:
    circuit = CASES[name]()
    obs = parse_observable("mean-z", circuit.num_qubits)
    obs = obs + parse_observable(
        "0.25*X" + "I" * (circuit.num_qubits - 2) + "Y", circuit.num_qubits
    )
    result = cut_and_run(circuit, obs, pools=["cpu"], max_subcircuit_qubits=5, run_dir=pools / name)
    assert len(result.configuration["partitions"]) >= 2
    assert all(p["qubits"] <= 5 and p["pool"] == "cpu" for p in result.configuration["partitions"])
    assert result.std_error == 0.0
    assert result.value == pytest.approx(result.reference, abs=1e-8)
    assert (pools / name / "plan.json").exists()


def test_a_pool_app_is_made_once_and_runs_on_its_pool(pools: Path) -> None:
    app = pool_app(evaluate_subexperiments, "qpu")
    assert pool_app(evaluate_subexperiments, "qpu") is app
    assert pool_app(evaluate_subexperiments, "cpu") is not app
    assert pool_app(evaluate_whole, "qpu") is not app
    circuit = efficient_su2_circuit(6, 1, "linear", seed=5)
    labels, _ = block_labels(circuit, balanced_widths(6, 2))
    program = cut_by_labels(circuit, parse_observable("mean-z", 6), labels).partitions[0]
    rows = np.array([[a] for a in range(len(program.sites[0].options))])
    future = app(program, rows, mode="exact")
    np.testing.assert_allclose(future.result().values, evaluate_exact(program, rows), atol=1e-12)
    assert future.task_record["executor"] == "qpu"


def test_a_bus_circuit_runs_with_a_wire_cut(pools: Path) -> None:
    # 13 qubits in pieces of 7: separating the bus's registers by gate cuts is slow enough
    # that the planner runs the wire-cut search (on the 9-qubit bus it predicts a gate cut
    # finishing sooner than the search takes, and skips it)
    circuit = bus_circuit(13, clusters=2, depth=2, seed=3)
    obs = parse_observable("mean-z", 13) + parse_observable("0.5*XIIIIIIIIIIIX", 13)
    result = cut_and_run(
        circuit, obs, pools=["cpu"], max_subcircuit_qubits=7, run_dir=pools / "bus"
    )
    assert [c["kind"] for c in result.configuration["cuts"]] == ["wire"]
    assert [p["qubits"] for p in result.configuration["partitions"]] == [7, 7]
    assert result.value == pytest.approx(result.reference, abs=1e-8)


def test_shot_errors_are_calibrated_on_an_ideal_sampler(pools: Path) -> None:
    circuit = efficient_su2_circuit(6, 2, "linear", seed=11)
    obs = parse_observable("mean-z", 6)
    exact = exact_values(circuit, [obs])[0].real
    within = 0
    for seed in range(20):
        result = cut_and_run(
            circuit,
            obs,
            pools=["cpu"],
            max_subcircuit_qubits=3,
            mode="sampled",
            shots=20_000,
            seed=seed,
            reference="never",
        )
        assert result.std_error > 0
        within += abs(result.value - exact) <= 4 * result.std_error
    assert within >= 19


def test_noisy_fake_qpu_runs_the_same_workflow(pools: Path) -> None:
    circuit = efficient_su2_circuit(8, 1, "linear")
    obs = parse_observable("mean-z", 8)
    result = cut_and_run(
        circuit,
        obs,
        pools=["qpu"],
        max_subcircuit_qubits=4,
        shots=8_000,
        seed=1,
        run_dir=pools / "qpu",
    )
    assert {p["pool"] for p in result.configuration["partitions"]} == {"qpu"}
    assert result.configuration["methods"] == ["sampled"]
    assert np.isfinite(result.value) and result.std_error > 0
    assert abs(result.value - result.reference) < 0.5  # noisy, but the right sign and scale


def test_cli_runs_the_main_job_and_writes_exactly_the_json_keys(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "run",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        "--set",
        "circuit.qubits=10",
        "--set",
        "planner.max_subcircuit_qubits=5",
        "--set",
        "pools=cpu",
        "--json",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) == {
        "value",
        "std_error",
        "reference",
        "configuration",
        "timings",
        "tasks",
        "run_dir",
    }
    assert data["value"] == pytest.approx(data["reference"], abs=1e-8)
    stages = {"plan", "evaluate", "reconstruct", "startup", "first_task_after_pool_start", "total"}
    assert stages <= set(data["timings"])
    assert data["tasks"] >= 2
    run = tmp_path / "run"
    assert (run / "result.json").exists() and (run / "tasks.csv").exists()
    assert not (run / "monitoring.db").exists()  # monitoring is opt-in (--monitoring)
    assert "value" in proc.stdout


def test_cli_bad_input_exits_2_before_starting_pools(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "run",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        "--set",
        "observable=ZZ",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "has 2 qubits but the circuit has 24" in proc.stderr
    assert not (tmp_path / "run" / "parsl").exists()


def test_each_partition_runs_under_one_physical_model(pools: Path) -> None:
    """The QPU is predicted quicker than the simulator, so the plan spreads partitions' tasks
    over both pools; the dispatcher still runs each partition under one model."""
    from parsl_quantum.executors.pools import physical_model
    from parsl_quantum.planner.cost import CostModel, PoolCoefficients
    from parsl_quantum.planner.plan import plan_workload
    from parsl_quantum.workflow.cut_and_run import loaded_pools

    infos = loaded_pools(["cpu", "qpu"])
    circuit = efficient_su2_circuit(6, 1, "linear", seed=2)
    obs = parse_observable("mean-z", 6)
    quick = {"overhead": 0.001, "per_circuit": 1e-4, "per_shot": 1e-7, "per_mid_shot": 1e-7}
    slow = {k: 3 * v for k, v in quick.items()}
    model = CostModel({"cpu": PoolCoefficients(**slow), "qpu": PoolCoefficients(**quick)})
    model.kinds.update({p: i.kind for p, i in infos.items()})
    plan = plan_workload(
        circuit,
        obs,
        infos,
        max_subcircuit_qubits=3,
        model=model,
        mode="sampled",
        shots=4000,
        widths=[[3, 3]],
        task_rows=1,
    )
    graph = plan.chosen.graph
    planned = {
        p: {graph.nodes[n]["pool"] for n in graph if graph.nodes[n].get("partition") == p}
        for p in range(2)
    }
    assert any(len(v) == 2 for v in planned.values())  # the plan alone would mix models
    result = cut_and_run(
        circuit, obs, pools=["cpu", "qpu"], mode="sampled", shots=4000, seed=3, plan=plan
    )
    config = result.configuration
    for part in config["partitions"]:
        assert len({physical_model(infos[p]) for p in part["pools"]}) == 1
    assert config["mixed_model_partitions"] == []
    # the QPU, predicted quickest, gets the first partition bound to it
    assert any(part["pools"] == ["qpu"] for part in config["partitions"])
    assert config["noisy_backends"] == list(infos["qpu"].backends[:1])
    assert np.isfinite(result.value) and result.std_error > 0


def test_the_summary_labels_std_error_statistical_and_names_device_bias(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from parsl_quantum.workflow.cli import _print_result

    monkeypatch.setenv("COLUMNS", "250")
    config = {
        "partitions": [{"qubits": 3, "pool": "qpu"}],
        "cuts": [{"kind": "gate", "gate": "cx", "instruction": 4, "qubits": [2, 3]}],
        "noisy_backends": ["fake:fake_perth"],
    }
    _print_result({"value": 0.4, "std_error": 0.01, "configuration": config}, "circuit-cutting")
    out = " ".join(capsys.readouterr().out.split())
    assert "std_error (statistical)" in out
    assert "1: gate cx@4 q2,3" in out
    assert "noise bias of fake:fake_perth" in out and "not included in std_error" in out
