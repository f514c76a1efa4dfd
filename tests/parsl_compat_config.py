"""Parsl's own test suite with the QPU-aware executor in place of HTEX.

Parsl's test ``conftest.py`` loads this file with ``--config tests/parsl_compat_config.py``
(see ``.ci/parsl-compat``). The pool serves the Aer simulator only; Parsl's tests carry no
resource specification, so every task is bound to ``aer`` on its worker.
"""

from parsl.config import Config
from parsl.providers import LocalProvider

from parsl_quantum.executors import QPUHighThroughputExecutor


def fresh_config() -> Config:
    """A Config with one QPU-aware pool of two local workers."""
    return Config(
        executors=[
            QPUHighThroughputExecutor(
                label="qpu_htex",
                backends=("aer",),
                cores_per_worker=1e-6,
                max_workers_per_node=2,
                encrypted=True,
                provider=LocalProvider(init_blocks=1, max_blocks=1),
            )
        ],
        strategy="none",
    )
