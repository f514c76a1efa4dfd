"""The main job from a Python script on a Slurm cluster, with two pools in batch jobs.

A CPU pool (Aer, exact) and a QPU pool (a noisy fake IBM device standing in for a QPU, sampled)
each get their own Slurm jobs; the planner picks the cut configuration and spreads the
partitions over both pools with the site's cost profile (``parsl-quantum calibrate``, or a
profile file given here). Run it on the login node::

    python workflows/slurm_two_pools.py --partition debug \\
        --worker-init "source $PWD/.venv/bin/activate" --run-dir runs/slurm-two-pools

It prints the result as JSON (value, reference, the pool of each partition, the job name).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import parsl

from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.configs import ClusterPool
from parsl_quantum.configs.clusters import job_name
from parsl_quantum.workflow.cut_and_run import cut_and_run


def main(argv: Sequence[str] | None = None) -> int:
    """Cut and run an efficient_su2 circuit on a cpu and a qpu pool of Slurm jobs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default=None)
    parser.add_argument("--account", default=None)
    parser.add_argument("--worker-init", default="", help="activates this environment on nodes")
    parser.add_argument("--run-dir", default="runs/slurm-two-pools")
    parser.add_argument("--qubits", type=int, default=10)
    parser.add_argument("--max-subcircuit-qubits", type=int, default=5)
    parser.add_argument("--profile", default=None, help="cost profile (default: calibrated)")
    args = parser.parse_args(argv)

    pools = {
        "cpu": ClusterPool(backends=("aer",), workers_per_node=1),
        "qpu": ClusterPool(backends=(DEFAULT_FAKE_QPU,), workers_per_node=1),
    }
    config = configs.slurm(
        args.run_dir,
        pools,
        partition=args.partition,
        account=args.account,
        worker_init=args.worker_init,
    )
    circuit = efficient_su2_circuit(args.qubits, reps=2, entanglement="linear", seed=1234)
    observable = parse_observable("mean-z", args.qubits)
    with parsl.load(config):
        result = cut_and_run(
            circuit,
            observable,
            max_subcircuit_qubits=args.max_subcircuit_qubits,
            profile=args.profile,
            seed=7,
            run_dir=args.run_dir,
        )
    parsl.clear()
    out = {
        "value": result.value,
        "std_error": result.std_error,
        "reference": result.reference,
        "partitions": [p["pool"] for p in result.configuration["partitions"]],
        "job_names": {pool: job_name(args.run_dir, pool) for pool in pools},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
