"""A corpus of circuits nobody here wrote: the main job's planning and cutting against exact
statevector values.

``qiskit.circuit.library`` families with 8-14 qubits, each at several width limits, each also
transpiled to a 27-qubit fake device's ISA (a layout, most wires idle, routing SWAPs), and a
property test over random circuits (random gates on random pairs, idle qubits, unconnected
components). Every case must give ``|cut value - Statevector value| < 1e-8`` or the documented
refusal, :class:`~parsl_quantum.cutting.errors.NoCutFoundError` (no cut within the limits).

The planner, the cutting and the batched statevector engine run as the workers run them, in
this process: the Parsl layer above them is tested in ``test_main_job`` and
``test_cutting_shapes``. ``MAX_SUBEXPERIMENTS`` keeps each case small enough for CI.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import (
    GraphStateGate,
    PauliEvolutionGate,
    QFTGate,
    efficient_su2,
    hidden_linear_function,
    iqp,
    n_local,
    quantum_volume,
    real_amplitudes,
)
from qiskit.quantum_info import SparsePauliOp, Statevector

from parsl_quantum.cutting.errors import NoCutFoundError
from parsl_quantum.cutting.reconstruct import expectation_value
from parsl_quantum.cutting.statevector import evaluate_exact
from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.cost import load_model
from parsl_quantum.planner.plan import plan_workload

POOLS = {"cpu": PoolInfo("cpu", ("aer",), 2, "cpu-sim", 30, True)}
MODEL = load_model(None, {"cpu": "cpu-sim"})
#: Largest partition (distinct subexperiments) a corpus case may plan: bigger cuts are refused.
MAX_SUBEXPERIMENTS = 20_000
TOLERANCE = 1e-8

#: (case, outcome) of every corpus run, for the summary at the end of the module.
OUTCOMES: list[tuple[str, str]] = []


def _bind(qc: QuantumCircuit, seed: int) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    return qc.assign_parameters(rng.uniform(-np.pi, np.pi, qc.num_parameters))


def _prepared(n: int, body: QuantumCircuit, seed: int) -> QuantumCircuit:
    """A product state of random rotations, then ``body`` (so that every family has a
    nontrivial value)."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(float(rng.uniform(0, np.pi)), q)
    return qc.compose(body)


def qft(n: int) -> QuantumCircuit:
    body = QuantumCircuit(n)
    body.append(QFTGate(n), range(n))
    return _prepared(n, body, 1)


def ising_evolution(n: int, field: float = 0.7) -> QuantumCircuit:
    terms = [("ZZ", [q, q + 1], 1.0) for q in range(n - 1)]
    terms += [("X", [q], field) for q in range(n)] if field else []
    hamiltonian = SparsePauliOp.from_sparse_list(terms, n)
    body = QuantumCircuit(n)
    body.append(PauliEvolutionGate(hamiltonian, time=0.4), range(n))
    return _prepared(n, body, 2)


def graph_state(n: int) -> QuantumCircuit:
    graph = nx.cycle_graph(n)
    graph.add_edge(0, n // 2)
    body = QuantumCircuit(n)
    body.append(GraphStateGate(nx.to_numpy_array(graph, dtype=int)), range(n))
    return _prepared(n, body, 3)


def hlf(n: int) -> QuantumCircuit:
    adjacency = nx.to_numpy_array(nx.path_graph(n), dtype=int)
    return _prepared(n, hidden_linear_function(adjacency), 4)


def iqp_chain(n: int) -> QuantumCircuit:
    rng = np.random.default_rng(5)
    interactions = np.zeros((n, n), dtype=int)
    for q in range(n - 1):
        interactions[q, q + 1] = interactions[q + 1, q] = int(rng.integers(1, 8))
    np.fill_diagonal(interactions, rng.integers(1, 8, n))
    return iqp(interactions)


FAMILIES: dict[str, tuple[Callable[[], QuantumCircuit], tuple[int, ...]]] = {
    "qft-8": (lambda: qft(8), (4, 6)),
    "quantum_volume-8": (lambda: quantum_volume(8, 2, seed=7), (4, 6)),
    "real_amplitudes-full-8": (
        lambda: _bind(real_amplitudes(8, entanglement="full", reps=1), 8),
        (4, 6),
    ),
    "efficient_su2-circular-10": (
        lambda: _bind(efficient_su2(10, entanglement="circular", reps=1), 9),
        (4, 5, 7),
    ),
    "n_local-pairwise-12": (
        lambda: _bind(n_local(12, ["ry", "rz"], "cz", entanglement="pairwise", reps=2), 10),
        (4, 6),
    ),
    "efficient_su2-pairwise-14": (
        lambda: _bind(efficient_su2(14, entanglement="pairwise", reps=1), 11),
        (5, 7),
    ),
    "iqp-chain-10": (lambda: iqp_chain(10), (4, 5)),
    "graph_state-ring-12": (lambda: graph_state(12), (5, 6, 8)),
    "hidden_linear_function-path-10": (lambda: hlf(10), (4, 6)),
    "pauli_evolution-ising-8": (lambda: ising_evolution(8), (4, 6)),
    "pauli_evolution-zz-10": (lambda: ising_evolution(10, field=0.0), (4, 6)),
}
#: Families whose gates have no exact decomposition: a PauliEvolutionGate of non-commuting
#: terms is lowered, as ``transpile`` lowers it for any backend, to its synthesis (one
#: Lie-Trotter step by default), while ``Statevector`` of the gate itself uses the exact
#: exponential. Their reference is the statevector of the gate's definition.
SYNTHESIZED = {"pauli_evolution-ising-8"}


def isa(circuit: QuantumCircuit) -> QuantumCircuit:
    from qiskit_ibm_runtime.fake_provider import FakeKolkataV2

    return transpile(circuit, FakeKolkataV2(), optimization_level=1, seed_transpiler=11)


def observable(n: int, seed: int) -> SparsePauliOp:
    """Mean of Z plus a few random weight-2 and weight-3 Pauli terms."""
    rng = np.random.default_rng(seed)
    terms = [("Z", [q], 1 / n) for q in range(n)]
    for weight in (2, 2, 3):
        qubits = [int(q) for q in rng.choice(n, weight, replace=False)]
        terms.append(("".join(rng.choice(list("XYZ"), weight)), qubits, float(rng.normal())))
    return SparsePauliOp.from_sparse_list(terms, n)


def cut_value(circuit: QuantumCircuit, obs: SparsePauliOp, limit: int) -> float:
    """Plan, cut and evaluate exactly as the main job does, in this process."""
    plan = plan_workload(
        circuit,
        obs,
        POOLS,
        max_subcircuit_qubits=limit,
        model=MODEL,
        mode="exact",
        max_subexperiments=MAX_SUBEXPERIMENTS,
    )
    problem = plan.chosen.problem
    assert max(problem.widths) <= limit
    tensors = []
    for part in problem.partitions:
        values = evaluate_exact(part)
        dims = [len(s.options) for s in part.sites]
        tensors.append(np.moveaxis(values.reshape(*dims, len(part.observables)), -1, 0))
    return expectation_value(problem, tensors)


def check(name: str, circuit: QuantumCircuit, obs: SparsePauliOp, exact: float, limit: int) -> None:
    try:
        value = cut_value(circuit, obs, limit)
    except NoCutFoundError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("no cut of the")
        OUTCOMES.append((name, "refused"))
        return
    assert abs(value - exact) < TOLERANCE, f"{name}: {value} vs {exact}"
    OUTCOMES.append((name, "exact"))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_library_family_logical_and_isa(family: str) -> None:
    make, limits = FAMILIES[family]
    logical = make()
    n = logical.num_qubits
    obs = observable(n, seed=n)
    reference = logical.decompose() if family in SYNTHESIZED else logical
    exact = float(Statevector(reference).expectation_value(obs).real)
    laid_out = isa(logical)
    for limit in limits:
        check(f"{family}/w{limit}", logical, obs, exact, limit)
        check(f"{family}/isa/w{limit}", laid_out, obs, exact, limit)


def test_every_candidate_the_planner_offers_is_exact() -> None:
    """A 20-qubit graph state (a ring with two chords): every configuration ``plan`` lists,
    uneven splits included, evaluates to the exact value."""
    graph = nx.cycle_graph(20)
    graph.add_edges_from([(0, 10), (5, 15)])
    body = QuantumCircuit(20)
    body.append(GraphStateGate(nx.to_numpy_array(graph, dtype=int)), range(20))
    circuit = _prepared(20, body, 6)
    obs = observable(20, seed=20)
    exact = float(Statevector(circuit).expectation_value(obs).real)
    plan = plan_workload(
        circuit,
        obs,
        POOLS,
        max_subcircuit_qubits=10,
        model=MODEL,
        mode="exact",
        widths=[[10, 10], [7, 7, 6], [5, 5, 5, 5]],
    )
    assert len(plan.candidates) == 3
    for cand in plan.candidates:
        tensors = []
        for part in cand.problem.partitions:
            dims = [len(s.options) for s in part.sites]
            values = evaluate_exact(part).reshape(*dims, len(part.observables))
            tensors.append(np.moveaxis(values, -1, 0))
        value = expectation_value(cand.problem, tensors)
        assert abs(value - exact) < TOLERANCE, f"widths {cand.widths}: {value} vs {exact}"


GATES_1Q = ("h", "x", "sx", "t", "rx", "ry", "rz")
GATES_2Q = ("cx", "cz", "rzz", "rxx", "crx", "swap", "iswap", "ecr", "cp")


@st.composite
def random_circuits(draw: st.DrawFn) -> tuple[QuantumCircuit, SparsePauliOp, int]:
    """Random gates on random pairs of a random subset of the qubits (the others idle), the
    active qubits split into up to three groups that share no gate (unconnected components)."""
    n = draw(st.integers(2, 8))
    active = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    groups = draw(st.integers(1, min(3, len(active))))
    owner = {q: i % groups for i, q in enumerate(active)}
    qc = QuantumCircuit(n)
    for _ in range(draw(st.integers(0, 14))):
        q = draw(st.sampled_from(active))
        partners = [p for p in active if p != q and owner[p] == owner[q]]
        angle = draw(st.floats(-np.pi, np.pi, allow_nan=False))
        if partners and draw(st.booleans()):
            name = draw(st.sampled_from(GATES_2Q))
            p = draw(st.sampled_from(partners))
            getattr(qc, name)(*((angle,) if name in ("rzz", "rxx", "crx", "cp") else ()), q, p)
        else:
            name = draw(st.sampled_from(GATES_1Q))
            getattr(qc, name)(*((angle,) if name.startswith("r") else ()), q)
    labels = draw(st.lists(st.text("IXYZ", min_size=n, max_size=n), min_size=1, max_size=3))
    coeffs = draw(st.lists(st.floats(-2, 2), min_size=len(labels), max_size=len(labels)))
    limit = draw(st.integers(1, n))
    return qc, SparsePauliOp(labels, coeffs), limit


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(random_circuits())
def test_random_circuits_are_exact_or_refused(case) -> None:
    qc, obs, limit = case
    exact = float(Statevector(qc).expectation_value(obs).real)
    check(f"random:{qc.num_qubits}q/{qc.size()}ops/w{limit}", qc, obs, exact, limit)


def test_corpus_summary() -> None:
    """Runs last in this module: the corpus size and how many cases were refused."""
    corpus = [o for name, o in OUTCOMES if not name.startswith("random")]
    refused = sum(o == "refused" for o in corpus)
    random_refused = sum(o == "refused" for name, o in OUTCOMES if name.startswith("random"))
    print(
        f"\ncorpus: {len(corpus)} library cases, {refused} refused; "
        f"{len(OUTCOMES) - len(corpus)} random cases, {random_refused} refused"
    )
    print("refused: " + ", ".join(name for name, o in OUTCOMES if o == "refused"))
    if corpus:
        assert refused < len(corpus)
