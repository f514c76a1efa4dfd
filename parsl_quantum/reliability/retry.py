"""Telling transient failures from permanent ones, and retrying the transient ones with backoff.

Parsl calls ``Config.retry_handler(exception, task_record)`` after every failed try and tries the
task again while the summed costs stay within ``Config.retries``. :class:`RetryHandler` returns
1 for a transient failure (a timeout, a lost worker or manager, a backend job that failed in its
queue), so a task gets ``retries`` more tries, and more than the whole budget for a permanent one
(an invalid circuit, bad credentials, bad input), so it fails at once with its own error instead
of repeating it. A task whose pool is down moves to the pool that the run's
:class:`~parsl_quantum.reliability.failover.FailoverPolicy` chooses - the same decision the
late-binding dispatcher makes - and the move is recorded there.

Retries wait before they run again: ``backoff * 2**(n-1)`` seconds before the n-th (capped at
``max_backoff``, with up to 50% jitter so that failed QPU jobs do not return in lockstep).
Parsl launches a retry as soon as its ``retry_handler`` returns, so the handler waits itself -
only on a thread where waiting holds nothing else up: the QPU-aware executor completes each
failed task on a thread of its own
(:meth:`~parsl_quantum.executors.QPUHighThroughputExecutor.in_failure_callback`). On other
executors a retry is launched at once. Parsl's task record is only read, never changed.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from parsl_quantum.reliability.failover import (
    RETRY_HANDLER,
    Failover,
    FailoverPolicy,
    pool_is_down,
)

logger = logging.getLogger(__name__)


class Verdict(enum.Enum):
    """What a failed try means for the task."""

    TRANSIENT = "transient"  # the same work may succeed if tried again
    PERMANENT = "permanent"  # trying again repeats the failure
    POOL_DOWN = "pool-down"  # the work is fine, the pool it was sent to is gone


#: Exception classes (module and qualified name, matched along the MRO) whose failures may pass.
#: Matching by name keeps optional packages (qiskit-ibm-runtime, requests) unimported.
TRANSIENT_CLASSES = frozenset(
    {
        "builtins.TimeoutError",  # also socket.timeout and concurrent.futures.TimeoutError
        "builtins.ConnectionError",
        "parsl_quantum.backends.base.BackendTransientError",
        "parsl.executors.high_throughput.errors.ManagerLost",
        "parsl.executors.high_throughput.errors.WorkerLost",
        "qiskit.providers.exceptions.JobTimeoutError",
        "qiskit_ibm_runtime.exceptions.RuntimeJobFailureError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
    }
)

#: Failures of the service that say nothing about the request: rate limits and server errors.
TRANSIENT_HTTP_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: Exception classes that mean the pool itself is gone (Parsl's executor bad state).
POOL_DOWN_CLASSES = frozenset(
    {
        "parsl.executors.errors.BadStateException",
        "parsl.jobs.errors.TooManyJobFailuresError",
        "parsl_quantum.reliability.failover.PoolDownError",
    }
)


def _names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def classify(exc: BaseException) -> Verdict:
    """The verdict on one failed try from its exception alone.

    Parameters
    ----------
    exc : BaseException
        The try's exception.

    Returns
    -------
    Verdict
        Transient for :data:`TRANSIENT_CLASSES` and HTTP errors of the IBM service with a
        status in :data:`TRANSIENT_HTTP_STATUS`; pool down for Parsl's executor bad state;
        permanent for everything else - invalid circuits and input (``ValueError``,
        ``TypeError``), authentication (``IBMNotAuthorizedError``, HTTP 401/403), and unknown
        errors, which are bugs that a retry would only repeat.
    """
    names = _names(exc)
    if names & POOL_DOWN_CLASSES:
        return Verdict.POOL_DOWN
    if names & TRANSIENT_CLASSES:
        return Verdict.TRANSIENT
    status = getattr(exc, "status_code", None)
    if "qiskit_ibm_runtime.api.exceptions.RequestsApiError" in names and (
        status in TRANSIENT_HTTP_STATUS
    ):
        return Verdict.TRANSIENT
    return Verdict.PERMANENT


class RetryHandler:
    """A Parsl ``retry_handler``: retries transient failures with backoff, fails permanent ones
    at once, and moves the work of a down pool where ``failover`` finds it a pool.

    ``retried`` counts the retried tries of each pool (the CLI reports it in the result),
    ``waited`` those that backed off before their retry.

    Parameters
    ----------
    budget : int
        Must equal the Config's ``retries`` (:meth:`Reliability.apply
        <parsl_quantum.reliability.Reliability.apply>` sets both).
    backoff, max_backoff : float
        Seconds before the first retry, doubling for each next one up to ``max_backoff``.
    failover : FailoverPolicy or None
        The run's failover policy; None: no task is moved.
    seed : int or None
        Seed of the backoff's jitter.
    """

    def __init__(
        self,
        budget: int = 3,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        failover: FailoverPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        if budget < 0:
            raise ValueError("the retry budget must be >= 0")
        if backoff < 0 or max_backoff < 0:
            raise ValueError("backoff times must be >= 0")
        self.budget = budget
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.failover = failover
        self.retried: Counter[str] = Counter()
        self.waited: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before a retry.

        Parameters
        ----------
        attempt : int
            The retry's number, 1 for the first.

        Returns
        -------
        float
            ``backoff * 2**(attempt-1)``, at most ``max_backoff``, times a random factor
            between 0.5 and 1.
        """
        base = min(self.max_backoff, self.backoff * 2 ** max(0, attempt - 1))
        with self._lock:
            return base * self._rng.uniform(0.5, 1.0)

    def __call__(self, exc: BaseException, task_record: Any) -> float:
        """The cost of a failed try (Parsl's ``retry_handler`` signature).

        Parameters
        ----------
        exc : BaseException
            The try's exception.
        task_record : dict
            Parsl's task record, only read.

        Returns
        -------
        float
            0 for a task moved off a down pool (a move is not a retry), 1 for a transient
            failure, more than the budget for anything else.
        """
        dfk = task_record.get("dfk")
        executors: Mapping[str, Any] = dfk.executors if dfk is not None else {}
        pool = str(task_record.get("executor"))
        executor = executors.get(pool)
        verdict = classify(exc)
        forwarded = getattr(executor, "failover_route", None) is not None
        if verdict is not Verdict.POOL_DOWN and pool_is_down(executor) and not forwarded:
            verdict = Verdict.POOL_DOWN  # a try that ran elsewhere is judged by its own error
        if verdict is Verdict.POOL_DOWN and self.failover is not None:
            target = self._fail_over(exc, task_record, pool, executor, executors)
            if target is not None:
                return 0.0  # a move is not a retry; the policy never moves back to a down pool
        if verdict is not Verdict.TRANSIENT:
            return float(self.budget + 1)
        if int(task_record.get("fail_cost", 0)) + 1 <= self.budget:  # Parsl will try it again
            with self._lock:
                self.retried[pool] += 1
            self._wait(pool, executor, self.delay(int(task_record.get("fail_count", 1))))
        return 1.0

    def _fail_over(
        self,
        exc: BaseException,
        task_record: Any,
        pool: str,
        executor: Any,
        executors: Mapping[str, Any],
    ) -> str | None:
        """Route the down pool's tasks through the failover policy and record this task's move.

        Parameters
        ----------
        exc : BaseException
            The failed try's exception (the move's reason).
        task_record : dict
            Parsl's task record, only read: its resource specification and keyword arguments
            say what the task needs (:meth:`FailoverPolicy.needs_on`).
        pool : str
            The down pool.
        executor : executor
            Its executor.
        executors : mapping of str to executor
            The DataFlowKernel's executors, by label.

        Returns
        -------
        str or None
            The target pool; None when the pool cannot pass tasks on (not QPU-aware) or no
            pool may take the task.
        """
        assert self.failover is not None
        fail_over_with = getattr(executor, "fail_over_with", None)
        if fail_over_with is None:
            return None
        policy = self.failover
        needs = policy.needs_on(
            pool, task_record.get("resource_specification"), task_record.get("kwargs")
        )
        target = policy.target(needs, pool, policy.live(executors))
        if target is None:
            return None
        policy.bind(executors)
        fail_over_with(policy)
        task = f"{task_record.get('func_name')}#{task_record.get('id')}"
        policy.record(Failover(task, pool, target, _one_line(exc), RETRY_HANDLER))
        logger.warning("task %s: pool %s is down, moved to pool %s", task, pool, target)
        return target

    def _wait(self, pool: str, executor: Any, seconds: float) -> None:
        """Back off when this thread may wait (see the module docstring).

        Parameters
        ----------
        pool : str
            The pool of the failed try (counted in ``waited``).
        executor : executor
            Its executor, which says whether this is a thread that may wait.
        seconds : float
            How long.
        """
        may_wait = getattr(executor, "in_failure_callback", None)
        if seconds <= 0 or may_wait is None or not may_wait():
            return
        with self._lock:
            self.waited[pool] += 1
        time.sleep(seconds)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]
