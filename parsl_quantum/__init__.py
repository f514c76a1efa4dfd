"""parsl-quantum: Parsl as a first-class runtime for hybrid quantum-HPC work.

``from parsl_quantum import CuttingEstimator`` gives Qiskit users the entry point
(:class:`parsl_quantum.primitives.CuttingEstimator`), imported on first use so that
``import parsl_quantum`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from parsl_quantum.primitives import CuttingEstimator


def __getattr__(name: str) -> Any:
    if name == "CuttingEstimator":
        from parsl_quantum.primitives import CuttingEstimator

        return CuttingEstimator
    raise AttributeError(f"module 'parsl_quantum' has no attribute {name!r}")


__all__ = ["CuttingEstimator", "__version__"]
