"""The planner without Parsl: candidates on hand-checkable workloads, the cost model's work
features, HEFT on a hand-made DAG, profiles, and the ``plan`` report."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsl_quantum.circuits import (
    bus_circuit,
    clustered_circuit,
    efficient_su2_circuit,
    parse_observable,
    qaoa_circuit,
)
from parsl_quantum.cutting import NoCutFoundError
from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.cost import (
    DEFAULT_COEFFICIENTS,
    DRIVER,
    PROFILE_VERSION,
    CostModel,
    DriverCoefficients,
    PoolCoefficients,
    ProfileError,
    RowCosting,
    exact_work,
    load_model,
)
from parsl_quantum.planner.partitioning import interaction_graph
from parsl_quantum.planner.plan import (
    FIND_CUTS_SECONDS_PER_GATE,
    aligned_bounds,
    allowed_pools,
    candidate_widths,
    heft,
    plan_workload,
    wire_search_pays,
)
from parsl_quantum.planner.report import print_plan, write_graph

ROOT = Path(__file__).resolve().parent.parent

CPU = PoolInfo("cpu", ("aer",), 2, "cpu-sim", 30, True)
GPU = PoolInfo("gpu", ("aer-gpu",), 1, "gpu-sim", 30, True)
QPU = PoolInfo("qpu", ("fake:fake_perth",), 1, "qpu", 7, False)
DEFAULTS = CostModel(kinds={"cpu": "cpu-sim", "gpu": "gpu-sim", "qpu": "qpu"})


def su2(n: int, reps: int = 2):
    return efficient_su2_circuit(n, reps, "linear", seed=3), parse_observable("mean-z", n)


def test_a_circuit_that_fits_is_not_cut() -> None:
    circuit, obs = su2(8)
    plan = plan_workload(
        circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=10, model=DEFAULTS, mode="exact"
    )
    assert plan.candidates[0].widths == [8]
    assert plan.chosen.parts == 1 and plan.chosen.problem.cuts == []
    assert "no cut" in plan.reason
    # the single task needs no subexperiments beyond the circuit itself
    assert plan.chosen.tasks == 1


def test_a_circuit_wider_than_every_pool_is_cut_to_fit() -> None:
    circuit, obs = su2(12)
    narrow = {"cpu": PoolInfo("cpu", ("aer",), 2, "cpu-sim", 5, True)}
    plan = plan_workload(
        circuit, obs, narrow, max_subcircuit_qubits=20, model=DEFAULTS, mode="exact"
    )
    assert all(max(c.widths) <= 5 for c in plan.candidates)
    assert plan.chosen.parts >= 3
    assert sum(plan.chosen.widths) == 12
    assert {c.parts for c in plan.candidates} == {3, 4}


def test_a_qpu_narrower_than_the_gpu_gets_an_uneven_partition() -> None:
    pools = {"gpu": GPU, "qpu": QPU}
    widths = candidate_widths(16, pools, "auto", 12)
    assert [8, 8] in widths and [6, 5, 5] in widths  # balanced
    assert [9, 7] in widths  # one partition exactly as wide as the QPU, the rest balanced
    assert candidate_widths(30, pools, "auto", 16)[-1] == [12, 11, 7]
    # with a QPU that is quick for 7 qubits (and a quick bootstrap of its shots), the GPU
    # evaluates one 9-qubit partition while the QPU takes the 7-qubit one, instead of the GPU's
    # one worker evaluating two 8-qubit ones
    fast = CostModel(
        {
            "gpu": PoolCoefficients(overhead=0.01),
            "qpu": PoolCoefficients(
                overhead=0.001, queue=0, per_circuit=1e-5, per_shot=1e-6, per_mid_shot=1e-6
            ),
        },
        {"gpu": "gpu-sim", "qpu": "qpu"},
        driver=DriverCoefficients(per_partition=1e-6, per_entry=1e-10, per_boot_row=1e-8),
    )
    circuit, obs = su2(16)
    plan = plan_workload(
        circuit, obs, pools, max_subcircuit_qubits=12, model=fast, mode="auto", shots=2000
    )
    assert plan.chosen.widths == [9, 7]
    assert plan.chosen.note == "uneven: a 7-qubit partition for qpu"
    assert "uneven" in plan.reason
    graph = plan.chosen.graph
    for _, data in graph.nodes(data=True):
        if data["kind"] == "evaluate":
            # only the 7-qubit partition may go to the 7-qubit QPU, where it is sampled
            assert ("qpu" in data["pool_costs"]) == (data["qubits"] <= 7)
            assert data["pool"] == ("qpu" if data["qubits"] == 7 else "gpu")
            assert data["modes"]["gpu"] == "exact"
    # the same workload with the default (slow) fake-QPU coefficients stays balanced on the GPU
    slow = plan_workload(
        circuit, obs, pools, max_subcircuit_qubits=12, model=DEFAULTS, mode="auto", shots=2000
    )
    assert slow.chosen.pools_used == ["gpu"]


def test_a_bus_qubit_is_cut_on_its_wire() -> None:
    """A bus coupling to two 6-qubit registers in turn: separating the registers takes a gate
    cut per coupling (6 cuts, tens of thousands of subexperiments), one wire cut of the bus
    (10 subexperiments) does it."""
    circuit = bus_circuit(13, clusters=2, depth=2, seed=3)
    obs = parse_observable("mean-z", 13)
    plan = plan_workload(
        circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=7, model=DEFAULTS, mode="exact"
    )
    assert [c.kind for c in plan.chosen.problem.cuts] == ["wire"]
    assert sorted(plan.chosen.widths) == [7, 7]
    assert plan.chosen.problem.num_subexperiments == 10
    assert plan.chosen.note == "find_cuts: 1 wire and 0 gate cut(s)"
    assert "find_cuts" in plan.reason
    gates_only = plan_workload(
        circuit,
        obs,
        {"cpu": CPU},
        max_subcircuit_qubits=7,
        model=DEFAULTS,
        mode="exact",
        wire_cuts=False,
    )
    assert {c.kind for c in gates_only.chosen.problem.cuts} == {"gate"}
    assert len(gates_only.chosen.problem.cuts) == 6
    assert gates_only.chosen.problem.num_subexperiments > 1000 * 10
    # a chain has no bus: find_cuts picks gate cuts only, which the block enumeration covers
    chain, chain_obs = su2(16)
    plan = plan_workload(
        chain, chain_obs, {"cpu": CPU}, max_subcircuit_qubits=8, model=DEFAULTS, mode="exact"
    )
    assert not any(c.note.startswith("find_cuts") for c in plan.candidates)


def test_the_wire_cut_search_runs_only_when_it_may_pay() -> None:
    """The chain's best block cut is predicted to finish sooner than the search would take
    (about 1 ms per two-qubit gate), so no cut the search finds could pay for it; the bus's
    best gate cut is slow enough that the search runs (and finds its wire cut)."""
    chain, chain_obs = su2(16)
    plan = plan_workload(
        chain, chain_obs, {"cpu": CPU}, max_subcircuit_qubits=8, model=DEFAULTS, mode="exact"
    )
    gates = sum(1 for inst in chain.data if inst.operation.num_qubits == 2)
    assert plan.chosen.makespan < FIND_CUTS_SECONDS_PER_GATE * gates
    assert "find_cuts search skipped" in plan.reason and f"({gates} two-qubit gates)" in plan.reason
    graph = interaction_graph(chain)
    assert wire_search_pays(graph, plan.candidates)[0] is False
    assert wire_search_pays(graph, []) == (True, "")  # nothing else found: always search
    slow = [replace(c, makespan=1.0) for c in plan.candidates]
    assert wire_search_pays(graph, slow) == (True, "")
    unfit = [replace(c, fits=False) for c in plan.candidates]  # only candidates that fit count
    assert wire_search_pays(graph, unfit) == (True, "")
    bus = bus_circuit(13, clusters=2, depth=2, seed=3)
    bus_plan = plan_workload(
        bus,
        parse_observable("mean-z", 13),
        {"cpu": CPU},
        max_subcircuit_qubits=7,
        model=DEFAULTS,
        mode="exact",
    )
    assert "skipped" not in bus_plan.reason and "find_cuts: 1 wire" in bus_plan.reason
    # no search was asked for: nothing is said about it
    off = plan_workload(
        chain,
        chain_obs,
        {"cpu": CPU},
        max_subcircuit_qubits=8,
        model=DEFAULTS,
        mode="exact",
        wire_cuts=False,
    )
    assert "find_cuts" not in off.reason


def test_exact_runs_never_plan_sampled_only_pools() -> None:
    pools = {"cpu": CPU, "qpu": QPU}
    assert allowed_pools(5, pools, "exact") == ["cpu"]
    assert allowed_pools(5, pools, "auto") == ["cpu", "qpu"]
    assert allowed_pools(9, pools, "sampled") == ["cpu"]
    circuit, obs = su2(12)
    plan = plan_workload(circuit, obs, pools, max_subcircuit_qubits=6, model=DEFAULTS, mode="exact")
    for cand in plan.candidates:
        for _, data in cand.graph.nodes(data=True):
            assert "qpu" not in data["pool_costs"]
    with pytest.raises(ValueError, match="no pool can evaluate exact"):
        plan_workload(
            circuit, obs, {"qpu": QPU}, max_subcircuit_qubits=6, model=DEFAULTS, mode="exact"
        )


def test_enumeration_reaches_many_small_partitions() -> None:
    widths = candidate_widths(100, {"cpu": CPU}, "exact", 25)
    counts = sorted(len(w) for w in widths)
    assert counts[0] == 4 and counts[-1] == 20
    assert all(max(w) <= 25 and sum(w) == 100 for w in widths)
    assert candidate_widths(100, {"cpu": CPU}, "exact", 25, parts=[5, 6]) == [
        [20] * 5,
        [17] * 4 + [16] * 2,
    ]


def test_forced_widths_and_partition_counts() -> None:
    circuit, obs = su2(12)
    pools = {"cpu": CPU}
    plan = plan_workload(
        circuit, obs, pools, max_subcircuit_qubits=8, model=DEFAULTS, widths=[[8, 4]]
    )
    assert [c.widths for c in plan.candidates] == [[8, 4]]
    plan = plan_workload(circuit, obs, pools, max_subcircuit_qubits=8, model=DEFAULTS, parts=[3])
    assert [c.parts for c in plan.candidates] == [3]
    with pytest.raises(ValueError, match="add up to 12"):
        plan_workload(circuit, obs, pools, max_subcircuit_qubits=8, model=DEFAULTS, widths=[[8]])


def test_tasks_cover_every_subexperiment_once() -> None:
    circuit, obs = qaoa_circuit(15, 1, "ring", seed=2), parse_observable("mean-z", 15)
    plan = plan_workload(
        circuit, obs, {"cpu": CPU, "gpu": GPU}, max_subcircuit_qubits=8, model=DEFAULTS
    )
    for cand in plan.candidates:
        covered = [np.zeros(p.num_subexperiments, dtype=int) for p in cand.problem.partitions]
        for _, data in cand.graph.nodes(data=True):
            if data["kind"] == "evaluate":
                lo, hi = data["rows"]
                covered[data["partition"]][lo:hi] += 1
                assert data["pool"] in data["pool_costs"]
                assert data["finish"] <= cand.makespan
        assert all((c == 1).all() for c in covered)
        assert cand.graph.nodes["reconstruct"]["start"] >= max(
            d["finish"] for _, d in cand.graph.nodes(data=True) if d["kind"] == "evaluate"
        )


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_range_costing_matches_the_direct_count(data: st.DataObject) -> None:
    circuit = clustered_circuit(9, 3, 2, 2, seed=1)
    obs = parse_observable("mean-z", 9)
    plan = plan_workload(
        circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=3, model=DEFAULTS, widths=[[3, 3, 3]]
    )
    problem = plan.chosen.problem
    p = data.draw(st.integers(0, len(problem.partitions) - 1))
    part = problem.partitions[p]
    rows = np.indices([len(s.options) for s in part.sites]).reshape(len(part.sites), -1).T
    lo = data.draw(st.integers(0, len(rows) - 1))
    hi = data.draw(st.integers(lo + 1, len(rows)))
    ranged = RowCosting(part).exact(np.array([lo]), np.array([hi]))[0]
    assert np.allclose(ranged, exact_work(part, rows[lo:hi]))


def test_aligned_bounds_split_on_whole_prefixes() -> None:
    bounds = aligned_bounds([5, 5, 5], 5)
    assert bounds.tolist() == [[0, 25], [25, 50], [50, 75], [75, 100], [100, 125]]
    bounds = aligned_bounds([5, 5], 7)
    assert bounds[0, 0] == 0 and bounds[-1, 1] == 25
    assert (bounds[1:, 0] == bounds[:-1, 1]).all() and len(bounds) == 7
    assert aligned_bounds([], 3).tolist() == [[0, 1]]


def test_heft_on_a_hand_checkable_dag() -> None:
    """Three tasks on a 1-slot fast pool and a 1-slot slow pool, submissions 1 s apart."""
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={DRIVER: 0.0}, memory=0)
    for name, fast in (("a", 4.0), ("b", 3.0), ("c", 2.0)):
        graph.add_node(
            name, kind="evaluate", pool_costs={"fast": fast, "slow": 2 * fast}, submit=1.0, memory=1
        )
        graph.add_edges_from([("cut", name), (name, "reconstruct")])
    graph.add_node("reconstruct", kind="reconstruct", pool_costs={DRIVER: 0.5}, memory=0)
    pools = {
        "fast": PoolInfo("fast", ("aer",), 1, "cpu-sim", 10, True),
        "slow": PoolInfo("slow", ("aer",), 1, "cpu-sim", 10, True),
    }
    makespan, assignment, peak = heft(graph, pools)
    # a submitted at 1 -> fast 1..5; b at 2 -> fast 5..8 vs slow 2..8: fast (tie, first pool);
    # c at 3 -> fast 8..10 vs slow 3..7: slow; reconstruct 8..8.5
    assert assignment == {
        "cut": DRIVER,
        "a": "fast",
        "b": "fast",
        "c": "slow",
        "reconstruct": DRIVER,
    }
    assert makespan == pytest.approx(8.5)
    assert peak == 2


def test_heft_collects_results_one_after_another_on_the_driver() -> None:
    """Two tasks finishing together on two slots: the driver collects one, then the other."""
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={DRIVER: 0.0}, memory=0)
    for name in ("a", "b"):
        graph.add_node(
            name, kind="evaluate", pool_costs={"cpu": 3.0}, submit=0.5, collect=2.0, memory=1
        )
        graph.add_edges_from([("cut", name), (name, "reconstruct")])
    graph.add_node("reconstruct", kind="reconstruct", pool_costs={DRIVER: 0.5}, memory=0)
    two = {"cpu": PoolInfo("cpu", ("aer",), 2, "cpu-sim", 10, True)}
    # a 0.5..3.5, b 1..4; collected 3.5..5.5 and 5.5..7.5; reconstruct 7.5..8
    makespan, _, _ = heft(graph, two)
    assert makespan == pytest.approx(8.0)
    assert graph.nodes["reconstruct"]["start"] == pytest.approx(7.5)
    # without collection the reconstruction starts as the last task finishes
    for name in ("a", "b"):
        graph.nodes[name]["collect"] = 0.0
    assert heft(graph, two)[0] == pytest.approx(4.5)


def three_tasks_on_a_distant_pool(seconds: float) -> nx.DiGraph:
    """Tasks a, b, c of ``seconds`` each on pool ``cpu``, 1 s from the driver and 0.5 s back,
    0.1 s to submit each; a 0.5 s reconstruction."""
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={DRIVER: 0.0}, memory=0)
    for name in ("a", "b", "c"):
        graph.add_node(
            name,
            kind="evaluate",
            pool_costs={"cpu": seconds},
            latency={"cpu": (1.0, 0.5)},
            submit=0.1,
            memory=1,
        )
        graph.add_edges_from([("cut", name), (name, "reconstruct")])
    graph.add_node("reconstruct", kind="reconstruct", pool_costs={DRIVER: 0.5}, memory=0)
    return graph


def test_heft_pays_a_pools_latency_once_per_chain_of_queued_tasks() -> None:
    """Three 2 s tasks on one slot, 1 s to reach it and 0.5 s back: the first waits for the
    way there, the others only for the slot; only the last result's way back is on the path."""
    graph = three_tasks_on_a_distant_pool(2.0)
    one = {"cpu": PoolInfo("cpu", ("aer",), 1, "cpu-sim", 10, True)}
    # submitted at 0.1, 0.2, 0.3; a runs 1.1..3.1, b 3.1..5.1, c 5.1..7.1, back at 7.6
    makespan, _, _ = heft(graph, one)
    assert makespan == pytest.approx(8.1)
    assert [graph.nodes[n]["start"] for n in "abc"] == pytest.approx([1.1, 3.1, 5.1])
    assert graph.nodes["c"]["finish"] == pytest.approx(7.6)
    # a pool a long way off loses to a slower one near by
    for name in ("a", "b", "c"):
        graph.nodes[name]["pool_costs"] = {"cpu": 2.0, "far": 1.0}
        graph.nodes[name]["latency"] = {"cpu": (0.0, 0.0), "far": (5.0, 5.0)}
    both = {**one, "far": PoolInfo("far", ("aer",), 1, "cpu-sim", 10, True)}
    _, assignment, _ = heft(graph, both)
    assert {assignment[n] for n in "abc"} == {"cpu"}


def test_heft_holds_a_pools_tasks_beyond_its_slots_and_prefetch_as_the_dispatcher_does() -> None:
    """Three 0.5 s tasks on one slot (1 s there, 0.5 s back): with one task of prefetch the
    third is sent only when the first's result is in, and then pays the way there itself."""
    graph = three_tasks_on_a_distant_pool(0.5)
    one = {"cpu": PoolInfo("cpu", ("aer",), 1, "cpu-sim", 10, True)}
    # a: sent 0.1, runs 1.1..1.6, back 2.1; b: sent 0.2, runs 1.6..2.1, back 2.6;
    # c: sent at 2.1 + 0.1, runs 3.2..3.7, back 4.2; reconstruct 4.2..4.7
    makespan, _, _ = heft(graph, one, prefetch=1)
    assert [graph.nodes[n]["start"] for n in "abc"] == pytest.approx([1.1, 1.6, 3.2])
    assert makespan == pytest.approx(4.7)
    # a pool that may hold all three queues the third behind the second
    assert heft(graph, one, prefetch=2)[0] == pytest.approx(3.6)


def test_each_task_costs_the_driver_its_result() -> None:
    """Many small tasks are bound by the driver's submissions and collections, one after another:
    the planner's evaluate nodes carry the driver's per-result seconds, and splitting the same
    work into more tasks costs at least that much more per task."""
    circuit, obs = su2(8, reps=1)
    model = CostModel(
        {"cpu": PoolCoefficients(overhead=1e-4)},
        {"cpu": "cpu-sim"},
        driver=DriverCoefficients(per_run=0.0, per_result=0.01),
    )

    def plan(rows: int):
        return plan_workload(
            circuit,
            obs,
            {"cpu": CPU},
            max_subcircuit_qubits=4,
            model=model,
            mode="exact",
            widths=[[4, 4]],
            task_rows=rows,
            wire_cuts=False,
        ).chosen

    few, many = plan(1000), plan(1)
    assert few.tasks == 2 and many.tasks == many.problem.num_subexperiments > 2
    for _, data in many.graph.nodes(data=True):
        assert data["kind"] != "evaluate" or data["collect"] == 0.01
    assert many.makespan - few.makespan >= (many.tasks - few.tasks) * 0.01
    assert many.makespan >= many.tasks * 0.01


def test_profiles_round_trip_and_fall_back(tmp_path: Path) -> None:
    model = CostModel({"cpu": PoolCoefficients(per_amp=1e-8)}, {"cpu": "cpu-sim"})
    path = model.save(tmp_path / "profile.json", {"fits": {}})
    loaded = load_model(path, {"mycpu": "cpu-sim", "qpu": "qpu"})
    assert loaded.source == str(path)
    assert loaded.coefficients("cpu").per_amp == 1e-8
    assert loaded.coefficients("mycpu").per_amp == 1e-8  # a calibrated pool of the same kind
    assert loaded.coefficients("qpu") == DEFAULT_COEFFICIENTS["qpu"]
    data = json.loads(path.read_text())
    data["version"] = PROFILE_VERSION - 1
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="calibrate"):
        load_model(tmp_path / "old.json", {})
    data["version"] = PROFILE_VERSION
    data["pools"]["cpu"]["per_nothing"] = 1.0
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="per_nothing"):
        load_model(tmp_path / "bad.json", {})


def test_missing_profile_means_documented_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    model = load_model(None, {"cpu": "cpu-sim"})
    assert model.source.startswith("defaults") and "calibrate" in model.source
    circuit, obs = su2(10)
    plan = plan_workload(circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=5, model=model)
    assert plan.model_source == model.source


def test_print_plan_and_graph_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    circuit, obs = su2(12)
    plan = plan_workload(
        circuit, obs, {"cpu": CPU, "qpu": QPU}, max_subcircuit_qubits=6, model=DEFAULTS, shots=4000
    )
    print_plan(plan)
    out = capsys.readouterr().out
    assert "candidate cut configurations" in out and "chosen:" in out
    assert len(plan.candidates) >= 3
    write_graph(
        plan.chosen.graph, graphml=str(tmp_path / "g.graphml"), picture=str(tmp_path / "g.png")
    )
    graph = nx.read_graphml(tmp_path / "g.graphml")
    assert set(graph.nodes) == set(plan.chosen.graph.nodes)
    assert any("cost_cpu" in d for _, d in graph.nodes(data=True))
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_cli_plan_prints_candidates_and_writes_the_dag(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "plan",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        "--set",
        "circuit.qubits=16",
        "--set",
        "planner.max_subcircuit_qubits=8",
        "--graphml",
        str(tmp_path / "plan.graphml"),
        "--picture",
        str(tmp_path / "plan.png"),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "candidate cut configurations" in proc.stdout
    assert "chosen:" in proc.stdout and "lowest predicted makespan" in proc.stdout
    graph = nx.read_graphml(tmp_path / "plan.graphml")
    assert "cut" in graph and "reconstruct" in graph
    assert sum(1 for n in graph if n.startswith("evaluate:")) >= 2
    assert (tmp_path / "plan.png").exists()


def test_subexperiment_counts_of_heavily_cut_partitions_do_not_wrap_around() -> None:
    """find_cuts' gate cuts of a dense 12-qubit block into pieces of 4 touch each piece at
    ~100 sites: the count must stay an exact (huge) integer so the planner refuses the cut
    instead of sizing a negative number of rows."""
    from parsl_quantum.planner.plan import wire_cut_problem

    dense = clustered_circuit(12, 1, 3, 0, seed=1)
    problem = wire_cut_problem(dense, parse_observable("mean-z", 12), 4, wire_only=False)
    assert problem is not None
    counts = [p.num_subexperiments for p in problem.partitions]
    assert min(counts) > 2**63
    with pytest.raises(NoCutFoundError, match="no cut of the 12-qubit circuit"):
        plan_workload(
            dense,
            parse_observable("mean-z", 12),
            {"cpu": CPU},
            max_subcircuit_qubits=4,
            model=DEFAULTS,
            mode="exact",
        )
