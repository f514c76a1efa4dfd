"""The circuit-cutting mini-app from a Parsl script: exact values across families, a picture."""

from __future__ import annotations

from pathlib import Path

import parsl
import pytest

from miniapps import circuit_cutting
from parsl_quantum import configs


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("cutting-miniapp")
    with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
        yield run_dir
    parsl.clear()


@pytest.mark.parametrize(
    ("family", "qubits", "parts", "options"),
    [
        ("efficient_su2", 9, 3, {"entanglement": "circular", "reps": 1}),
        ("qaoa", 8, 2, {"graph": "3-regular"}),
        ("clustered", 9, 3, {"clusters": 3}),
    ],
)
def test_forced_partitions_give_exact_values(loaded: Path, family, qubits, parts, options) -> None:
    run_dir = loaded / f"{family}-{parts}"
    result = circuit_cutting.run(
        family, qubits, partitions=parts, max_subcircuit_qubits=qubits, run_dir=run_dir, **options
    )
    assert len(result.configuration["partitions"]) == parts
    assert result.value == pytest.approx(result.reference, abs=1e-8)
    assert (run_dir / "tasks.csv").read_text().count("\n") == result.tasks + 1
    assert (run_dir / "tasks.png").stat().st_size > 0
