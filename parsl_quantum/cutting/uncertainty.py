"""Standard errors of sampled reconstructions by parametric bootstrap.

Shot noise enters the reconstruction through a multilinear contraction, so first-order error
propagation under-reports it when cut weights are large. Instead we redraw every sampled
subexperiment's counts from a multinomial with its observed frequencies, recompute the partition
tensors, contract, and take the spread of the resulting values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.sampled import SampledRow, _parity, commuting_groups


def _sign_matrix(
    program: PartitionProgram, group: Sequence[int], qpd: np.ndarray, obs: np.ndarray
) -> np.ndarray:
    """(outcomes x group observables) matrix of the +-1 value each outcome contributes."""
    qpd_sign = _parity(np.asarray(qpd, dtype=np.int64))
    cols = []
    for i in group:
        zmask = sum(1 << q for q, ch in enumerate(reversed(program.observables[i])) if ch != "I")
        cols.append(qpd_sign * _parity(np.asarray(obs, dtype=np.int64), zmask))
    return np.stack(cols, axis=1)


def bootstrap_rows(
    program: PartitionProgram,
    samples: Sequence[SampledRow],
    replicates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Resampled estimates of every observable of every row.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    samples : Sequence[SampledRow]
        The outcomes of each row.
    replicates : int
        The number of redraws.
    rng : numpy.random.Generator
        The generator of the multinomial redraws.

    Returns
    -------
    numpy.ndarray
        Shape (replicates, rows, observables).
    """
    groups = commuting_groups(program.observables)
    out = np.zeros((replicates, len(samples), len(program.observables)))
    for r, row in enumerate(samples):
        for group, qpd, obs, cnt in zip(groups, row.qpd, row.obs, row.counts, strict=True):
            cnt = np.asarray(cnt, dtype=np.int64)
            total = int(cnt.sum())
            if total == 0:
                continue
            draws = rng.multinomial(total, cnt / total, size=replicates)
            out[:, r, group] = draws @ _sign_matrix(program, group, qpd, obs) / total
    return out
