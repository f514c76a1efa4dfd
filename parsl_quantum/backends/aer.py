"""Aer simulators on the CPU (``aer``, ``aer:<method>``) and the GPU (``aer-gpu``)."""

from __future__ import annotations

import glob
import importlib.metadata
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from parsl_quantum.backends.base import (
    BackendSpec,
    BackendUnavailableError,
    PassManagers,
    QuantumBackend,
    check_limit,
    check_options,
)

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
    from qiskit_aer import AerSimulator

#: Aer methods selectable as ``aer:<method>``; aliases map to them.
CPU_METHODS = ("automatic", "statevector", "matrix_product_state", "density_matrix")
GPU_METHODS = ("statevector", "density_matrix", "tensor_network")
METHOD_ALIASES = {"mps": "matrix_product_state", "sv": "statevector", "dm": "density_matrix"}

AER_OPTIONS = ("max_parallel_threads", "max_concurrent_jobs", "default_shots")

#: Distribution names under which qiskit-aer with CUDA support is published.
AER_GPU_DISTRIBUTIONS = ("qiskit-aer-gpu", "qiskit-aer-gpu-cu11")


def aer_method(name: str) -> str:
    """The Aer method a canonical name selects.

    Parameters
    ----------
    name : str
        A canonical ``aer`` or ``aer-gpu`` name.

    Returns
    -------
    str
        The method after the colon; without one, ``automatic`` for ``aer`` and ``statevector``
        for ``aer-gpu``.
    """
    family, _, method = name.partition(":")
    if method:
        return method
    return "statevector" if family == "aer-gpu" else "automatic"


def aer_gpu_installed() -> bool:
    """Whether a CUDA build of qiskit-aer is installed (package metadata only; no import).

    Returns
    -------
    bool
        True when one of :data:`AER_GPU_DISTRIBUTIONS` is installed.
    """
    for dist in AER_GPU_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return True
    return False


def gpu_present() -> bool:
    """Whether an NVIDIA device node is visible to this process.

    Returns
    -------
    bool
        True when ``/dev/nvidia<N>`` exists.
    """
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def gpu_missing_reason() -> str | None:
    """Why ``aer-gpu`` cannot run here.

    Returns
    -------
    str or None
        The reason (the package, the GPU, or Aer's GPU device missing), or None when it can run.
    """
    missing = []
    if not aer_gpu_installed():
        missing.append("the qiskit-aer-gpu package is not installed")
    if not gpu_present():
        missing.append("no NVIDIA GPU is visible (/dev/nvidia* absent)")
    if missing:
        return "aer-gpu is unavailable: " + " and ".join(missing)
    from qiskit_aer import AerSimulator

    if "GPU" not in AerSimulator().available_devices():
        return (
            "aer-gpu is unavailable: qiskit-aer-gpu and a GPU are present but Aer reports no "
            "GPU device (check the CUDA driver and that qiskit-aer-gpu replaced qiskit-aer)"
        )
    return None


class AerBackend(QuantumBackend):
    """Exact, noiseless Aer simulation on the CPU (or the GPU for ``aer-gpu``).

    The method comes from the name (``aer:<method>``). Options: ``max_parallel_threads`` (0: all
    cores), ``max_concurrent_jobs`` (default unlimited), ``default_shots`` (sampler, 1024).
    The estimator is exact by default (``precision=0``); the sampler draws ``shots`` ideal shots.

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    ValueError
        For an unknown option or a bad ``max_concurrent_jobs``.
    BackendUnavailableError
        On the GPU, when qiskit-aer-gpu or the GPU is missing.
    """

    device = "CPU"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        check_options(name, self.options, AER_OPTIONS)
        self.method: str = aer_method(name)
        self.max_concurrent_jobs = check_limit(name, self.options.get("max_concurrent_jobs"))
        self._pass_managers = PassManagers()
        if self.device == "GPU":
            reason = gpu_missing_reason()
            if reason:
                raise BackendUnavailableError(reason)

    def _backend_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"method": self.method, "device": self.device}
        if "max_parallel_threads" in self.options:
            opts["max_parallel_threads"] = int(self.options["max_parallel_threads"])
        return opts

    @cached_property
    def simulator(self) -> AerSimulator:
        """The AerSimulator configured for this backend (built once per handle)."""
        from qiskit_aer import AerSimulator

        return AerSimulator(**self._backend_options())

    @cached_property
    def spec(self) -> BackendSpec:
        return BackendSpec(
            name=self.name,
            kind="gpu-sim" if self.device == "GPU" else "cpu-sim",
            max_qubits=int(self.simulator.num_qubits),
            exact=True,
            noisy=False,
            max_concurrent_jobs=self.max_concurrent_jobs,
            basis_gates=None,
            coupling_map=None,
        )

    def sampler(self, *, seed: int | None = None) -> BaseSamplerV2:
        """Aer's SamplerV2 with this backend's method, device and ``default_shots``.

        Parameters
        ----------
        seed : int or None
            Seed of the simulated shots, for reproducible samples.

        Returns
        -------
        qiskit.primitives.BaseSamplerV2
            The sampler.
        """
        from qiskit_aer.primitives import SamplerV2

        return SamplerV2(
            default_shots=int(self.options.get("default_shots", 1024)),
            seed=seed,
            options={"backend_options": self._backend_options()},
        )

    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        """Aer's EstimatorV2 with this backend's method and device, exact by default.

        Parameters
        ----------
        seed : int or None
            Seed of the simulated noise or shots, for reproducible estimates.

        Returns
        -------
        qiskit.primitives.BaseEstimatorV2
            The estimator.
        """
        from qiskit_aer.primitives import EstimatorV2

        run_options = {} if seed is None else {"seed_simulator": seed}
        return EstimatorV2(
            options={"backend_options": self._backend_options(), "run_options": run_options}
        )

    def transpile(
        self, circuits: Sequence[QuantumCircuit], *, seed: int | None = None
    ) -> list[QuantumCircuit]:
        """Light compilation: decompose what Aer cannot run natively; no layout, no routing.

        Parameters
        ----------
        circuits : Sequence[QuantumCircuit]
            The circuits to compile.
        seed : int or None
            Seed of the transpiler (``seed_transpiler``), for a reproducible layout and routing.

        Returns
        -------
        list[QuantumCircuit]
            The compiled circuits, in the order given.
        """
        return self._pass_managers.transpile(
            circuits, seed, optimization_level=1, backend=self.simulator
        )


class AerGPUBackend(AerBackend):
    """Aer on a CUDA GPU.

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    BackendUnavailableError
        Saying whether the qiskit-aer-gpu package, the GPU, or both are missing.
    """

    device = "GPU"
