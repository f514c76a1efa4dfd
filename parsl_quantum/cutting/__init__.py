"""Circuit cutting as pure functions: partition, compile, evaluate, reconstruct.

No Parsl import here: the planner calls these functions to size plans and the task layer's apps
call the evaluation functions on workers.
"""

from parsl_quantum.cutting.errors import CuttingError, NoCutFoundError
from parsl_quantum.cutting.normalize import Normalized, normalize
from parsl_quantum.cutting.problem import (
    Cut,
    CutProblem,
    cut_by_labels,
    cut_with_wires,
    find_cut_problem,
    recut,
)
from parsl_quantum.cutting.program import PartitionProgram, compile_partition
from parsl_quantum.cutting.reconstruct import (
    contract,
    expectation_value,
    reconstruct,
    reconstruct_all,
)
from parsl_quantum.cutting.statevector import evaluate_exact

__all__ = [
    "Cut",
    "CutProblem",
    "CuttingError",
    "NoCutFoundError",
    "Normalized",
    "PartitionProgram",
    "compile_partition",
    "contract",
    "cut_by_labels",
    "cut_with_wires",
    "evaluate_exact",
    "expectation_value",
    "find_cut_problem",
    "normalize",
    "reconstruct",
    "reconstruct_all",
    "recut",
]
