"""Simulators of other vendors behind the same interface: Amazon Braket's local state-vector
simulator (``braket:local``, through qiskit-braket-provider) and PennyLane Lightning's
``lightning.qubit`` (``pennylane:lightning.qubit``, its compiled kernels driven directly).

Both are exact state-vector simulators. Each hands out the same Qiskit primitives V2 as every
other backend: the estimator computes ``<psi|O|psi>`` from the vendor's final state (exact;
with ``precision`` it adds Gaussian noise of that standard deviation, as Qiskit's reference
``StatevectorEstimator`` does), and the sampler draws ``shots`` bit strings from the vendor's
exact output distribution with a seeded generator. Circuits must end in their measurements
(final measurements only), which is what compiled mini-app and cutting circuits do.

PennyLane itself is not imported: the ``pennylane_lightning`` kernels are called gate by gate
(each gate's matrix from Qiskit), which keeps these backends usable next to packages whose
pins PennyLane's own releases conflict with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.primitives import BaseEstimatorV2, BasePrimitiveJob, BaseSamplerV2, PrimitiveResult
from qiskit.primitives.containers import BitArray, DataBin, PubResult, SamplerPubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp, Statevector

from parsl_quantum.backends.base import (
    BackendSpec,
    BackendUnavailableError,
    PassManagers,
    QuantumBackend,
    check_limit,
    check_options,
)
from parsl_quantum.backends.vendor_packages import vendor_missing_reason

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

VENDOR_OPTIONS = ("max_concurrent_jobs", "default_shots")

#: Gates the vendor backends are compiled to (Qiskit names); ``reset`` is accepted on a qubit
#: that no gate has touched yet (state preparation), where it does nothing.
BASIS_GATES = ("u", "cx", "rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "sx", "cz", "swap")


Simulate = Callable[["QuantumCircuit"], np.ndarray]


class _DoneJob(BasePrimitiveJob[PrimitiveResult[Any], JobStatus]):
    """A primitive job whose result was computed when it was created (the simulators here
    run in the calling thread)."""

    def __init__(self, result: PrimitiveResult[Any]) -> None:
        super().__init__(job_id=f"local-{id(self):x}")
        self._result = result

    def result(self) -> PrimitiveResult[Any]:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def in_final_state(self) -> bool:
        return True

    def cancel(self) -> None:
        """Nothing to cancel: the job finished when it was created."""


def _unitary_part(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[tuple[int, int]]]:
    """The circuit without its final measurements, and (qubit, clbit) of each measurement."""
    measured: list[tuple[int, int]] = []
    body = circuit.copy_empty_like()
    done: set[int] = set()
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "measure":
            measured.append((qubits[0], circuit.find_bit(inst.clbits[0]).index))
            done.add(qubits[0])
            continue
        if inst.operation.name == "barrier":
            continue
        if done.intersection(qubits):
            raise ValueError("the vendor simulators take circuits whose measurements are all final")
        body.append(inst)
    return body, measured


class StatevectorEstimator(BaseEstimatorV2):
    """EstimatorV2 over a vendor's state-vector simulation.

    Parameters
    ----------
    simulate : Simulate
        Returns the final state vector of a bound circuit without measurements.
    seed : int or None
        Seed of the Gaussian noise added for a non-zero ``precision``.
    """

    def __init__(self, simulate: Simulate, seed: int | None = None) -> None:
        self._simulate = simulate
        self._seed = seed

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> _DoneJob:
        """Evaluate estimator pubs exactly from the simulated states.

        Parameters
        ----------
        pubs : Iterable[EstimatorPubLike]
            The estimator PUBs.
        precision : float or None
            Target precision of PUBs that set none; > 0 adds that much Gaussian noise.

        Returns
        -------
        qiskit.primitives.BasePrimitiveJob
            A finished job holding one ``PubResult`` per PUB.
        """
        rng = np.random.default_rng(self._seed)
        results: list[PubResult] = []
        for raw in pubs:
            pub = EstimatorPub.coerce(raw, precision)
            bound = pub.parameter_values.bind_all(pub.circuit)
            circuits, observables = np.broadcast_arrays(bound, pub.observables)
            evs = np.zeros(circuits.shape)
            for index in np.ndindex(*circuits.shape):
                state = Statevector(self._simulate(circuits[index]))
                op = SparsePauliOp.from_list(list(observables[index].items()))
                evs[index] = float(np.real(state.expectation_value(op)))
            stds = np.full(evs.shape, pub.precision or 0.0)
            if pub.precision:
                evs = rng.normal(evs, pub.precision)
            data = DataBin(evs=evs, stds=stds, shape=evs.shape)
            results.append(PubResult(data, metadata={"target_precision": pub.precision or 0.0}))
        return _DoneJob(PrimitiveResult(results, metadata={"version": 2}))


class StatevectorSampler(BaseSamplerV2):
    """SamplerV2 drawing shots from a vendor's exact output distribution.

    Parameters
    ----------
    simulate : Simulate
        Returns the final state vector of a bound circuit without measurements.
    default_shots : int
        Shots per parameter set of PUBs and runs that set none.
    seed : int or None
        Seed of the shot sampling.
    """

    def __init__(self, simulate: Simulate, default_shots: int = 1024, seed: int | None = None):
        self._simulate = simulate
        self._default_shots = default_shots
        self._seed = seed

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> _DoneJob:
        """Sample pubs from the simulated output distributions.

        Circuits must end in their measurements (final measurements only).

        Parameters
        ----------
        pubs : Iterable[SamplerPubLike]
            The sampler PUBs.
        shots : int or None
            Shots per parameter set (``default_shots`` by default).

        Returns
        -------
        qiskit.primitives.BasePrimitiveJob
            A finished job holding one ``SamplerPubResult`` per PUB.

        Raises
        ------
        ValueError
            When a measurement is followed by another operation on its qubit.
        """
        rng = np.random.default_rng(self._seed)
        results: list[SamplerPubResult] = []
        for raw in pubs:
            pub = SamplerPub.coerce(raw, shots or self._default_shots)
            body, measured = _unitary_part(pub.circuit)
            bound = pub.parameter_values.bind_all(body)
            registers = {
                reg.name: [pub.circuit.find_bit(c).index for c in reg] for reg in pub.circuit.cregs
            }
            arrays: dict[str, np.ndarray] = {
                name: np.zeros((*bound.shape, pub.shots, (len(bits) + 7) // 8), dtype=np.uint8)
                for name, bits in registers.items()
            }
            qubits = [q for q, _ in measured]
            for index in np.ndindex(*bound.shape):
                probs = Statevector(self._simulate(bound[index])).probabilities(qubits)
                outcomes = rng.choice(len(probs), size=pub.shots, p=probs / probs.sum())
                clbit_values = np.zeros((pub.shots, pub.circuit.num_clbits), dtype=np.int64)
                for k, (_, clbit) in enumerate(measured):
                    clbit_values[:, clbit] = (outcomes >> k) & 1
                for name, bits in registers.items():
                    ints = [
                        int(sum(int(v) << j for j, v in enumerate(row)))
                        for row in clbit_values[:, bits]
                    ]
                    arrays[name][index] = BitArray.from_samples(ints, len(bits)).array
            data = DataBin(
                **{name: BitArray(a, len(registers[name])) for name, a in arrays.items()},
                shape=bound.shape,
            )
            results.append(
                SamplerPubResult(data, metadata={"shots": pub.shots, "circuit_metadata": {}})
            )
        return _DoneJob(PrimitiveResult(results, metadata={"version": 2}))


class _VendorBackend(QuantumBackend):
    """Shared spec, primitives and compilation of the vendor simulators."""

    max_qubits = 26

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        check_options(name, self.options, VENDOR_OPTIONS)
        self.max_concurrent_jobs = check_limit(name, self.options.get("max_concurrent_jobs"))
        reason = vendor_missing_reason(name)
        if reason:
            raise BackendUnavailableError(reason)
        self._pass_managers = PassManagers()

    def statevector(self, circuit: QuantumCircuit) -> np.ndarray:
        """The final state of a bound circuit without measurements (little-endian, as in
        Qiskit)."""
        raise NotImplementedError

    @cached_property
    def spec(self) -> BackendSpec:
        return BackendSpec(
            name=self.name,
            kind="cpu-sim",
            max_qubits=self.max_qubits,
            exact=True,
            noisy=False,
            max_concurrent_jobs=self.max_concurrent_jobs,
            basis_gates=None,
            coupling_map=None,
        )

    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        return StatevectorEstimator(self.statevector, seed)

    def sampler(self, *, seed: int | None = None) -> BaseSamplerV2:
        shots = int(self.options.get("default_shots", 1024))
        return StatevectorSampler(self.statevector, shots, seed)

    def transpile(
        self, circuits: Sequence[QuantumCircuit], *, seed: int | None = None
    ) -> list[QuantumCircuit]:
        """Decompose to :data:`BASIS_GATES` (plus ``reset`` and ``measure``); no
        layout, no routing."""
        return self._pass_managers.transpile(
            circuits, seed, optimization_level=1, basis_gates=[*BASIS_GATES, "reset", "measure"]
        )


def _gates(circuit: QuantumCircuit) -> Iterable[tuple[Any, list[int]]]:
    """(operation, qubit indices) of each gate, skipping resets of untouched qubits."""
    touched: set[int] = set()
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        name = inst.operation.name
        if name == "barrier":
            continue
        if name == "reset":
            if touched.intersection(qubits):
                raise ValueError("the vendor simulators take resets only before any gate")
            continue
        if name == "measure":
            raise ValueError("measurements reach the vendor simulators only through the sampler")
        touched.update(qubits)
        yield inst.operation, qubits


class BraketLocalBackend(_VendorBackend):
    """Amazon Braket's local state-vector simulator (``braket:local``).

    Runs through qiskit-braket-provider. Options: ``max_concurrent_jobs``, ``default_shots``.

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    BackendUnavailableError
        When qiskit-braket-provider is not installed.
    """

    @cached_property
    def device(self) -> Any:
        """The provider's BraketLocalBackend (a Qiskit BackendV2), built once per handle."""
        from qiskit_braket_provider import BraketLocalBackend as Provider

        return Provider("default")

    def statevector(self, circuit: QuantumCircuit) -> np.ndarray:
        """The final state of a bound circuit without measurements, from Braket's simulator.

        Parameters
        ----------
        circuit : QuantumCircuit
            A bound circuit; resets only before any gate, no measurements.

        Returns
        -------
        numpy.ndarray
            The state vector, little-endian as in Qiskit.

        Raises
        ------
        ValueError
            For a reset after a gate, or a measurement.
        """
        from qiskit import QuantumCircuit

        clean = QuantumCircuit(circuit.num_qubits, global_phase=circuit.global_phase)
        for op, qubits in _gates(circuit):
            clean.append(op, qubits)
        # Braket drops unused qubits from its program: an identity keeps every qubit in it
        for q in range(circuit.num_qubits):
            clean.id(q)
        result = self.device.run(clean, shots=0).result()
        return np.asarray(result.get_statevector(), dtype=complex)


class LightningQubitBackend(_VendorBackend):
    """PennyLane Lightning's ``lightning.qubit`` kernels (``pennylane:lightning.qubit``).

    Its state-vector kernels are driven directly. Options: ``max_concurrent_jobs``,
    ``default_shots``.

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    BackendUnavailableError
        When pennylane-lightning is not installed.
    """

    max_qubits = 30

    def statevector(self, circuit: QuantumCircuit) -> np.ndarray:
        """The final state of a bound circuit without measurements, from Lightning's kernels.

        Parameters
        ----------
        circuit : QuantumCircuit
            A bound circuit; resets only before any gate, no measurements.

        Returns
        -------
        numpy.ndarray
            The state vector, little-endian as in Qiskit.

        Raises
        ------
        ValueError
            For a reset after a gate, or a measurement.
        """
        from pennylane_lightning.lightning_qubit_ops import StateVectorC128
        from qiskit.quantum_info import Operator

        n = circuit.num_qubits
        state = StateVectorC128(n)
        for op, qubits in _gates(circuit):
            matrix = np.ascontiguousarray(Operator(op).data, dtype=complex)
            # Lightning's wire 0 is the most significant bit; Qiskit's qubit 0 the least
            state.applyMatrix(matrix, [n - 1 - q for q in reversed(qubits)], False)
        out = np.zeros(1 << n, dtype=complex)
        state.getState(out)
        return out * np.exp(1j * float(circuit.global_phase))
