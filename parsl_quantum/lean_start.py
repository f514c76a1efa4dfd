"""Start Parsl's own worker-side programs without the packages only a Parsl driver uses.

``import parsl`` imports every executor, provider and the monitoring database, and with them
the Globus Compute SDK, boto3 and SQLAlchemy where they are installed: about 0.35 s of the
0.6 s the import takes on a laptop. A local pool starts four Python processes before its first
task runs (the interchange, then the worker pool, its multiprocessing manager and its workers,
one after another), each importing Parsl, and none of them uses these packages.

Here Parsl is imported with them hidden: ``sys.modules[name] = None`` makes ``import name``
raise ``ImportError`` (the import system's documented behaviour), which Parsl handles as it
does where the package is not installed. Afterwards they are unhidden, so a task on a worker
can still import them. Parsl's programs themselves run unchanged.

``python -m parsl_quantum.lean_start ARG...`` runs Parsl's HTEX worker pool
(``parsl.executors.high_throughput.process_worker_pool``) with its arguments, as
``python -m`` would; the pool's spawned children (its process manager and its workers) re-run
this module as ``__mp_main__``, so they too import Parsl this way. The local site's pools start
so (:data:`parsl_quantum.configs.local.WORKER_CMD`), and their interchanges through
:mod:`parsl_quantum.parent_watch`, which calls :func:`import_lean` first.

Standard library only, so that it adds nothing to the start-up it shortens.

The upstream change that would make this module unnecessary: Parsl importing these optional
dependencies where they are used, not when ``parsl`` is imported (the Globus Compute SDK in
``parsl.executors.globus_compute``, boto3 in ``parsl.providers.aws``, SQLAlchemy in
``parsl.monitoring.db_manager``), or its ``parsl.executors`` and ``parsl.providers`` packages
importing their members lazily.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Packages ``import parsl`` imports when installed, used only in a driver: the Globus Compute
#: executor's SDK, the AWS provider's boto3 and the monitoring database's SQLAlchemy.
DRIVER_ONLY = ("globus_compute_sdk", "boto3", "sqlalchemy")

#: The module of Parsl's HTEX worker pool.
WORKER_POOL = "parsl.executors.high_throughput.process_worker_pool"


@contextmanager
def driver_packages_hidden(names: Sequence[str] = DRIVER_ONLY) -> Iterator[None]:
    """Within the block, importing a package of ``names`` not yet imported raises
    ``ImportError``; after it, such a package imports as usual.

    Parameters
    ----------
    names : Sequence[str]
        The packages to hide (by default all of :data:`DRIVER_ONLY`).

    Returns
    -------
    Iterator[None]
        The context manager's single step.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def import_lean(module: str) -> str:
    """Import the packages holding ``module`` (so Parsl itself, for Parsl's programs) with
    :func:`driver_packages_hidden`, without running ``module``.

    Parameters
    ----------
    module : str
        A module's full name.

    Returns
    -------
    str
        The path of the module's source file.

    Raises
    ------
    ModuleNotFoundError
        When ``module`` cannot be found.
    """
    with driver_packages_hidden():
        spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {module!r}", name=module)
    return spec.origin


def run_lean(module: str, namespace: dict[str, Any]) -> None:
    """Run ``module``'s source in ``namespace`` after :func:`import_lean`.

    Run in the ``__main__`` module's namespace, this is ``python -m module``, except that the
    functions it defines belong to ``__main__`` as this module's (so a spawned child, which
    re-runs this module as ``__mp_main__``, finds them there).

    Parameters
    ----------
    module : str
        A module's full name.
    namespace : dict[str, Any]
        The globals to run it in; its ``__name__`` decides whether the module's
        ``if __name__ == "__main__":`` block runs.
    """
    origin = import_lean(module)
    exec(compile(Path(origin).read_bytes(), origin, "exec"), namespace)


if __name__ in ("__main__", "__mp_main__"):
    run_lean(WORKER_POOL, globals())
