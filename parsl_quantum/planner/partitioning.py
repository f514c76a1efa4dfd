"""Choosing which qubits go together: partition labels from the circuit's interaction graph.

Gate cuts are placed by labels: every two-qubit gate between differently labelled qubits is
cut. Good labels keep strongly interacting qubits together. We order the qubits along the
interaction graph (a walk along paths and rings, reverse Cuthill-McKee otherwise, and a
depth-first walk), try every rotation of each order, cut it into contiguous blocks of the
requested widths, and keep the labelling that cuts the fewest gates. This is O(n * (n + g))
for n qubits and g two-qubit gates.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
from networkx.utils import reverse_cuthill_mckee_ordering
from qiskit.circuit import QuantumCircuit


def interaction_graph(circuit: QuantumCircuit) -> nx.Graph:
    """The circuit's interaction graph.

    Parameters
    ----------
    circuit : qiskit.circuit.QuantumCircuit
        The circuit to read.

    Returns
    -------
    networkx.Graph
        Qubits as nodes; an edge per interacting pair, weighted by its number of 2-qubit gates.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(circuit.num_qubits))
    for inst in circuit.data:
        if len(inst.qubits) != 2:
            continue
        a, b = (circuit.find_bit(q).index for q in inst.qubits)
        w = graph.get_edge_data(a, b, {"weight": 0})["weight"]
        graph.add_edge(a, b, weight=w + 1)
    return graph


def qubit_order(graph: nx.Graph) -> list[int]:
    """A linear order of the qubits that keeps neighbours close (component by component).

    Parameters
    ----------
    graph : networkx.Graph
        The interaction graph.

    Returns
    -------
    list of int
        Every qubit once.
    """
    order: list[int] = []
    for comp in sorted(nx.connected_components(graph), key=min):
        sub = graph.subgraph(comp)
        if sub.number_of_nodes() == 1:
            order.extend(comp)
            continue
        # start from a peripheral node of low degree so paths are laid out end to end
        start = min(sub.nodes, key=lambda v: (sub.degree(v), v))
        if max(d for _, d in sub.degree) <= 2:
            # a path or a ring: walk it, so contiguous blocks are arcs with two boundaries
            order.extend(nx.dfs_preorder_nodes(sub, start))
            continue
        rcm = list(reverse_cuthill_mckee_ordering(sub, heuristic=lambda g, s=start: s))
        order.extend(rcm)
    return order


def candidate_orders(graph: nx.Graph) -> list[list[int]]:
    """Linear orders to cut into blocks.

    :func:`qubit_order`, and a depth-first walk from a node of least degree in each component,
    which follows rings that have a few chords (a graph reverse Cuthill-McKee scatters).

    Parameters
    ----------
    graph : networkx.Graph
        The interaction graph.

    Returns
    -------
    list of list of int
        One or two orders of every qubit.
    """
    orders = [qubit_order(graph)]
    walk: list[int] = []
    for comp in sorted(nx.connected_components(graph), key=min):
        sub = graph.subgraph(comp)
        start = min(sub.nodes, key=lambda v: (sub.degree(v), v))
        walk.extend(nx.dfs_preorder_nodes(sub, start))
    if walk != orders[0]:
        orders.append(walk)
    return orders


def balanced_widths(num_qubits: int, parts: int) -> list[int]:
    """``parts`` widths summing to ``num_qubits`` that differ by at most one.

    Parameters
    ----------
    num_qubits : int
        Total width.
    parts : int
        Number of blocks.

    Returns
    -------
    list of int
        The widths, wider ones first.
    """
    base, extra = divmod(num_qubits, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def crossing_gates(graph: nx.Graph, labels: Sequence[int]) -> int:
    """Two-qubit gates between differently labelled qubits (the gate cuts labels imply).

    Parameters
    ----------
    graph : networkx.Graph
        The interaction graph.
    labels : Sequence of int
        A partition label per qubit.

    Returns
    -------
    int
        The number of gates that cross labels.
    """
    return sum(d["weight"] for a, b, d in graph.edges(data=True) if labels[a] != labels[b])


def block_labels(
    circuit: QuantumCircuit, widths: Sequence[int], graph: nx.Graph | None = None
) -> tuple[list[int], int]:
    """Labels that split the qubits into contiguous blocks of ``widths`` along a good order.

    Parameters
    ----------
    circuit : qiskit.circuit.QuantumCircuit
        The circuit to cut.
    widths : Sequence of int
        Width of each block; they must add up to the circuit's width.
    graph : networkx.Graph or None
        The circuit's interaction graph, if already built.

    Returns
    -------
    tuple of (list of int, int)
        The labels and the number of gate cuts they imply.

    Raises
    ------
    ValueError
        If ``widths`` do not add up to the number of qubits.
    """
    graph = graph if graph is not None else interaction_graph(circuit)
    n = graph.number_of_nodes()
    if sum(widths) != n:
        raise ValueError(f"widths {list(widths)} do not add up to {n} qubits")
    best: tuple[int, list[int]] | None = None
    for order in candidate_orders(graph):
        for shift in range(n if len(widths) > 1 else 1):
            rotated = order[shift:] + order[:shift]
            labels = [0] * n
            pos = 0
            for label, w in enumerate(widths):
                for q in rotated[pos : pos + w]:
                    labels[q] = label
                pos += w
            cost = crossing_gates(graph, labels)
            if best is None or cost < best[0]:
                best = (cost, labels)
    assert best is not None
    return best[1], best[0]
