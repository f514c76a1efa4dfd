"""The cost model's per-gate amplitude weights follow the engine's kernels: the lowest qubit
of a gate sets the contiguous block numpy walks, so low qubits cost more per amplitude."""

from __future__ import annotations

import numpy as np

from parsl_quantum.cutting.partition import GateOp
from parsl_quantum.planner.cost import GATE_WEIGHTS, amp_weight

RY = np.array([[0.6, -0.8], [0.8, 0.6]], dtype=complex)
PHASE = np.diag([1.0, 1j])
CX = np.eye(4, dtype=complex)[[0, 3, 2, 1]]
CZ = np.diag([1.0, 1.0, 1.0, -1.0]).astype(complex)


def test_single_qubit_weight_falls_with_the_qubit_to_its_base() -> None:
    weights = [amp_weight(GateOp((q,), RY, "ry")) for q in range(12)]
    assert weights[0] == GATE_WEIGHTS["1q"][2]
    assert all(a >= b for a, b in zip(weights[1:], weights[2:], strict=False))
    assert weights[1] > 4 * weights[11]
    assert abs(weights[11] - GATE_WEIGHTS["1q"][0]) < 0.01


def test_diagonal_gates_weigh_less_than_dense_ones() -> None:
    for q in range(1, 8):
        assert amp_weight(GateOp((q,), PHASE, "p")) <= amp_weight(GateOp((q,), RY, "ry"))
        assert amp_weight(GateOp((q, q + 1), CZ, "cz")) < amp_weight(GateOp((q, q + 1), CX, "cx"))


def test_two_qubit_shapes_order_near_reversed_far() -> None:
    for lo in range(1, 8):
        near = amp_weight(GateOp((lo, lo + 1), CX, "cx"))
        reversed_ = amp_weight(GateOp((lo + 1, lo), CX, "cx"))
        far = amp_weight(GateOp((lo, lo + 3), CX, "cx"))
        assert near < reversed_ < far
        assert far == amp_weight(GateOp((lo + 3, lo), CX, "cx"))
