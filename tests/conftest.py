"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

# One BLAS thread in the test process: OpenBLAS 0.3.29's threaded zheevd once hung the suite
# in exec_blas_async_wait (numpy.linalg.eigh of a 64x64 matrix, after other tests had run in
# the same process). Workers get their thread settings from configs.local, as in any run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import parsl
import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (the session's one-node Slurm)

from parsl_quantum import executors
from parsl_quantum.workflow.context import RunContext, TaskRecorder
from parsl_quantum.workflow.template import load_template

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

RunTemplate = Callable[[str, Sequence[str], Path], dict[str, Any]]


@pytest.fixture
def run_template() -> RunTemplate:
    """Run a published template (``--set``-style overrides) in the loaded DataFlowKernel as
    ``parsl-quantum run`` does, writing into a new ``run_dir``; the result is checked to be
    plain JSON data and returned."""

    def run(name: str, overrides: Sequence[str], run_dir: Path) -> dict[str, Any]:
        template = load_template(WORKFLOWS / name, list(overrides))
        run_dir.mkdir()
        ctx = RunContext(
            run_dir=run_dir,
            pools=executors.pool_infos(parsl.dfk().config),
            recorder=TaskRecorder(run_dir / "tasks.csv"),
        )
        out = template.kind.runner(template.data, ctx)
        json.dumps(out)
        return out

    return run
