"""Circuit cutting as pure functions: partition, compile, evaluate, reconstruct.

No Parsl import here: the planner calls these functions to size plans and the task layer's apps
call the evaluation functions on workers. Names are imported on first use (PEP 562), so a worker
that only evaluates compiled partitions (:mod:`parsl_quantum.cutting.partition`,
:mod:`parsl_quantum.cutting.statevector`) loads numpy and not Qiskit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parsl_quantum.cutting.errors import CuttingError, NoCutFoundError
    from parsl_quantum.cutting.normalize import Normalized, normalize
    from parsl_quantum.cutting.partition import PartitionProgram
    from parsl_quantum.cutting.problem import (
        Cut,
        CutProblem,
        cut_by_labels,
        cut_with_wires,
        find_cut_problem,
        recut,
    )
    from parsl_quantum.cutting.program import compile_partition
    from parsl_quantum.cutting.reconstruct import (
        contract,
        expectation_value,
        reconstruct,
        reconstruct_all,
    )
    from parsl_quantum.cutting.statevector import evaluate_exact

#: Each public name and the submodule that defines it.
_MODULES = {
    "Cut": "problem",
    "CutProblem": "problem",
    "CuttingError": "errors",
    "NoCutFoundError": "errors",
    "Normalized": "normalize",
    "PartitionProgram": "partition",
    "compile_partition": "program",
    "contract": "reconstruct",
    "cut_by_labels": "problem",
    "cut_with_wires": "problem",
    "evaluate_exact": "statevector",
    "expectation_value": "reconstruct",
    "find_cut_problem": "problem",
    "normalize": "normalize",
    "reconstruct": "reconstruct",
    "reconstruct_all": "reconstruct",
    "recut": "problem",
}

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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
