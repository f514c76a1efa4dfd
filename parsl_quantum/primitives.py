"""A Qiskit ``EstimatorV2`` that cuts: the entry point for Qiskit users.

:class:`CuttingEstimator` takes the same PUBs as any Estimator V2 (a circuit, an array of
observables, an array of parameter values and a precision, broadcast together by Qiskit's
rules) and returns the same ``PrimitiveResult``; underneath, each circuit is planned, cut into
pieces no wider than ``max_subcircuit_qubits``, its subexperiments run as Parsl apps on the
pools of a Parsl config, and the expectation values are reconstructed. Code written against
``StatevectorEstimator`` (a VQE loop, a parameter sweep) runs unchanged on circuits wider than
any one pool.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import parsl
from parsl.config import Config
from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, DataBin, PrimitiveJob, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.plan import Mode, PlanResult, runs_exact
from parsl_quantum.workflow.cut_and_run import cut_and_run_batch, loaded_pools, plan_cutting

#: Precision of a PUB that names none: a standard error of 0.01 on sampled pools.
DEFAULT_PRECISION = 0.01
#: Shots of an exact run (precision 0) should a task fail over to a sampled pool.
FAILOVER_SHOTS = 100_000


class CuttingEstimator(BaseEstimatorV2):
    """Estimator V2 whose circuits are cut and evaluated on Parsl pools.

    Parameters
    ----------
    max_subcircuit_qubits : int or None
        Widest piece a cut may leave. Unset, the planner chooses between every cut the pools
        can hold and the whole circuit uncut as one Aer task on a simulator pool.
    config : parsl.config.Config or None
        A Parsl config (e.g. :func:`parsl_quantum.configs.local`) to load on the first
        :meth:`run` and release on :meth:`close`; by default the Parsl config already loaded
        with ``parsl.load`` is used.
    pools : Sequence[str] or None
        Labels of the pools that may run subexperiments; by default every pool of the config.
    mode : Mode
        ``"auto"`` evaluates exactly on exact simulators and by shots on sampled pools (QPUs);
        ``"exact"`` or ``"sampled"`` force one way.
    default_precision : float
        Target standard error of PUBs that set none. On sampled pools it sets the shots
        (``ceil(overhead / precision**2)``, with the cut's sampling overhead); exact pools
        ignore it, as Aer's exact estimator does, and report standard errors of 0.
    seed : int or None
        Seed of the shot sampling and of the error bootstrap, for reproducible sampled runs.
    profile : str or pathlib.Path or None
        Cost-model profile file written by ``parsl-quantum calibrate``.

    Raises
    ------
    ValueError
        When ``max_subcircuit_qubits`` is below 1 or ``default_precision`` is negative.
    """

    def __init__(
        self,
        *,
        max_subcircuit_qubits: int | None = None,
        config: Config | None = None,
        pools: Sequence[str] | None = None,
        mode: Mode = "auto",
        default_precision: float = DEFAULT_PRECISION,
        seed: int | None = None,
        profile: str | Path | None = None,
    ) -> None:
        if max_subcircuit_qubits is not None and max_subcircuit_qubits < 1:
            raise ValueError(
                f"max_subcircuit_qubits must be at least 1, not {max_subcircuit_qubits}"
            )
        if default_precision < 0:
            raise ValueError(f"default_precision must be non-negative, not {default_precision}")
        self.max_subcircuit_qubits = max_subcircuit_qubits
        self.config = config
        self.pools = None if pools is None else list(pools)
        self.mode: Mode = mode
        self.default_precision = default_precision
        self.seed = seed
        self.profile = profile
        self._loaded = False

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        """Estimate the expectation values of each PUB; the job's ``result()`` waits for them.

        Each PUB result's ``data.evs`` and ``data.stds`` have the PUB's broadcast shape; its
        metadata holds the target precision, the shots per evaluation and ``cutting``: the
        plan (cuts, partitions with their pools, predicted makespan), summed stage timings and
        the number of evaluate tasks.

        Parameters
        ----------
        pubs : Iterable[EstimatorPubLike]
            The primitive unified blocs (circuit, observables, parameter values, precision).
        precision : float or None
            Target standard error of PUBs that set none (the constructor's ``default_precision``
            by default).

        Returns
        -------
        qiskit.primitives.PrimitiveJob
            The job; its ``result()`` is a ``PrimitiveResult`` of one ``PubResult`` per PUB.
        """
        if precision is None:
            precision = self.default_precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        for pub in coerced:
            pub.validate()
        self._ensure_loaded()
        loaded_pools(self.pools)  # an unknown pool label fails here, before the job starts
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def close(self) -> None:
        """Release the pools of the config this estimator loaded (nothing if it loaded none)."""
        if self._loaded:
            parsl.dfk().cleanup()
            parsl.clear()
            self._loaded = False

    def __enter__(self) -> CuttingEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_loaded(self) -> None:
        if self.config is None or self._loaded:
            parsl.dfk()  # raises NoDataFlowKernelError with Parsl's own message when none
            return
        parsl.load(self.config)
        self._loaded = True

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult[PubResult]:
        return PrimitiveResult([self._run_pub(pub) for pub in pubs], metadata={"version": 2})

    def _run_pub(self, pub: EstimatorPub) -> PubResult:
        circuit = pub.circuit
        bindings = pub.parameter_values
        num_sets = int(np.prod(bindings.shape, dtype=np.int64))
        values = bindings.as_array(circuit.parameters).reshape(num_sets, circuit.num_parameters)
        flat_obs = pub.observables.ravel()
        observables = [
            SparsePauliOp.from_list(list(flat_obs[i].items())) for i in range(flat_obs.size)
        ]
        evs, stds, meta = _evaluate(
            circuit,
            observables,
            values,
            pools=self.pools,
            max_subcircuit_qubits=self.max_subcircuit_qubits,
            mode=self.mode,
            precision=pub.precision,
            seed=self.seed,
            profile=self.profile,
        )
        # Qiskit's broadcasting of the bindings' shape against the observables' shape
        set_index = np.arange(num_sets).reshape(bindings.shape)
        obs_index = np.arange(flat_obs.size).reshape(pub.observables.shape)
        set_index, obs_index = np.broadcast_arrays(set_index, obs_index)
        data = DataBin(
            evs=evs[set_index, obs_index], stds=stds[set_index, obs_index], shape=pub.shape
        )
        metadata = {
            "target_precision": pub.precision,
            "circuit_metadata": circuit.metadata,
            "cutting": meta,
        }
        return PubResult(data, metadata=metadata)


def precision_shots(precision: float, overhead: float) -> int:
    """Total shots for a standard error of about ``precision`` on a cut.

    Parameters
    ----------
    precision : float
        Target standard error.
    overhead : float
        The cut's sampling overhead (the product of the cuts' squared gammas).

    Returns
    -------
    int
        ``ceil(overhead / precision**2)``, at least 1.

    Raises
    ------
    ValueError
        For a precision of 0, which no finite number of shots reaches.
    """
    if precision <= 0:
        raise ValueError("precision 0 needs exact pools (mode='exact' or simulators only)")
    return max(1, math.ceil(overhead / precision**2))


def _evaluate(
    circuit: QuantumCircuit,
    observables: list[SparsePauliOp],
    parameter_values: np.ndarray,
    *,
    pools: Sequence[str] | None = None,
    max_subcircuit_qubits: int | None = None,
    mode: Mode = "auto",
    precision: float = DEFAULT_PRECISION,
    seed: int | None = None,
    profile: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Values and standard errors of every observable at every parameter set, each of shape
    ``(num_parameter_sets, num_observables)``, and what was done (plan, timings, tasks).

    All of a PUB's work goes through here: one plan and one cut for the PUB (made on its first
    parameter set), re-bound for each further set by :func:`cut_and_run_batch`.
    """
    infos = loaded_pools(pools)
    if len(parameter_values) == 0:
        empty = np.zeros((0, len(observables)))
        return empty, empty.copy(), {"evaluations": 0, "plans": 0, "tasks": 0}
    first = circuit.assign_parameters(parameter_values[0]) if circuit.num_parameters else circuit
    plan = plan_cutting(
        first,
        observables,
        infos,
        max_subcircuit_qubits=max_subcircuit_qubits,
        mode=mode,
        profile=profile,
    )
    shots = _shots(plan, infos, mode, precision)
    result = cut_and_run_batch(
        circuit,
        observables,
        parameter_values if circuit.num_parameters else None,
        pools=list(infos),
        mode=mode,
        shots=shots,
        seed=seed,
        reference="never",
        profile=profile,
        plan=plan,
    )
    evs = np.broadcast_to(result.values, (len(parameter_values), len(observables))).copy()
    stds = np.broadcast_to(result.std_errors, evs.shape).copy()
    configuration = result.configuration
    meta = {
        "cuts": configuration.get("cuts", []),
        "partitions": configuration.get("partitions", []),
        "pools": sorted({p for part in configuration["partitions"] for p in part["pools"]}),
        "predicted_makespan": configuration.get("predicted_makespan"),
        "reason": configuration.get("reason"),
        "evaluations": int(evs.size),
        "plans": 1,
        "tasks": result.tasks,
        "shots": [shots] if bool(np.any(stds > 0)) else [],
        "timings": result.timings,
    }
    return evs, stds, meta


def _shots(plan: PlanResult, infos: Mapping[str, PoolInfo], mode: Mode, precision: float) -> int:
    """Shots of one evaluation: from the precision wherever a pool may sample (the chosen
    pools, or others on failover); a precision of 0 only where the chosen pools are exact."""
    if precision > 0:
        return precision_shots(precision, plan.chosen.problem.sampling_overhead)
    if any(not runs_exact(infos[p], mode) for p in plan.chosen.pools_used):
        precision_shots(precision, 1.0)  # raises: precision 0 on a sampled pool
    return FAILOVER_SHOTS


__all__ = ["DEFAULT_PRECISION", "CuttingEstimator", "precision_shots"]
