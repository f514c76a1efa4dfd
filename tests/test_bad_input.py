"""Bad input: each kind is one line on stderr, exit code 2, no traceback, and nothing submitted.

The CLI is called in-process (``cli.main``), so a traceback would fail the test as an exception;
"nothing submitted" means no Parsl run directory, no monitoring database and no task table in
the run directory. Property-based tests fuzz template loading and resource-specification
validation: only the documented error types may come out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parsl.executors.errors import InvalidResourceSpecification

from parsl_quantum.backends import DEFAULT_FAKE_QPU, BackendSpec
from parsl_quantum.executors import ACCEPTED_KEYS, QPUHighThroughputExecutor, select_backends
from parsl_quantum.workflow import cli
from parsl_quantum.workflow.rundir import claim_run_dir
from parsl_quantum.workflow.template import (
    API_VERSION,
    TemplateError,
    apply_overrides,
    parse_yaml,
    validate,
)

BASE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "circuit-cutting",
    "name": "bad-input",
    "circuit": {"generator": "efficient_su2", "qubits": 8, "reps": 1, "seed": 1},
    "observable": "mean-z",
    "pools": ["cpu", "qpu"],
    "planner": {"max_subcircuit_qubits": 4},
    "execution": {"mode": "exact", "seed": 7},
}

MALFORMED_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
h q[0];
cx q[0] q[1];
"""

UNBOUND_QASM = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[2] q;
rx(theta) q[0];
cx q[0], q[1];
"""

OPAQUE_QASM = """OPENQASM 2.0;
include "qelib1.inc";
opaque mystery a,b,c;
qreg q[3];
h q[0];
mystery q[0],q[1],q[2];
"""


def run_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *overrides: str,
    cli_options: Sequence[str] = (),
    **changes: Any,
) -> tuple[int, str, Path]:
    """Write BASE updated with ``changes`` to a template, run it with ``--set overrides`` (and
    ``cli_options`` after them)."""
    template = tmp_path / "template.yaml"
    template.write_text(yaml.safe_dump({**BASE, **changes}))
    run_dir = tmp_path / "run"
    argv = ["run", str(template), "--run-dir", str(run_dir), "--quiet", *cli_options]
    for item in overrides:
        argv += ["--set", item]
    code = cli.main(argv)
    return code, capsys.readouterr().err, run_dir


def assert_rejected(code: int, err: str, run_dir: Path, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("parsl-quantum: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (run_dir / "parsl").exists(), "a Parsl run started"
    assert not (run_dir / "monitoring.db").exists()
    assert not (run_dir / "tasks.csv").exists()


def qasm_circuit(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "circuit.qasm"
    path.write_text(text)
    return {"qasm": str(path)}


def test_malformed_qasm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, circuit=qasm_circuit(tmp_path, MALFORMED_QASM))
    assert_rejected(code, err, run, "malformed QASM", "circuit.qasm")


def test_unbound_circuit_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, circuit=qasm_circuit(tmp_path, UNBOUND_QASM))
    assert_rejected(code, err, run, "unbound parameters: theta")


def test_unsupported_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, circuit=qasm_circuit(tmp_path, OPAQUE_QASM))
    assert_rejected(code, err, run, "unsupported gate", "mystery")


def test_unknown_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = {"name": "local", "options": {"backends": {"qpu": ["fake:fake_nowhere"]}}}
    code, err, run = run_cli(tmp_path, capsys, site=site)
    assert_rejected(code, err, run, "unknown backend 'fake:fake_nowhere'")


def test_unknown_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "pools=cpu,warp")
    assert_rejected(code, err, run, "unknown pool 'warp'")


def test_unknown_template_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "planner.max_qubits=3")
    assert_rejected(code, err, run, "planner.max_qubits: unknown field", "template.yaml:")


def test_invalid_template_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "execution.mode=quantum")
    assert_rejected(code, err, run, "execution.mode: 'quantum' is not one of")


def test_wrong_value_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "execution.shots=many")
    assert_rejected(code, err, run, "execution.shots: 'many' is not of type 'integer'")


def test_non_positive_shots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "execution.shots=0")
    assert_rejected(code, err, run, "execution.shots: 0 is less than the minimum of 1")


def test_observable_width_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, "observable=ZZ")
    assert_rejected(code, err, run, "has 2 qubits but the circuit has 8")


def test_invalid_pool_resource_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = {"backend_options": {DEFAULT_FAKE_QPU: {"max_concurrent_jobs": 0}}}
    code, err, run = run_cli(tmp_path, capsys, site={"name": "local", "options": options})
    assert_rejected(code, err, run, "max_concurrent_jobs must be a positive int")


def test_unknown_local_site_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, site={"name": "local", "options": {"cores": 4}})
    assert_rejected(code, err, run, "site.options.cores: unknown option of the local site")


def test_invalid_task_resource_specification() -> None:
    """A task asking for more than the pool has fails at submission, naming the key, and
    the executor holds no task."""
    pool = QPUHighThroughputExecutor(label="qpu", backends=("aer", DEFAULT_FAKE_QPU))
    with pytest.raises(InvalidResourceSpecification, match="'qubits' must be a positive int"):
        pool.submit(print, {"qubits": -3})
    with pytest.raises(InvalidResourceSpecification, match="unknown resource specification"):
        pool.submit(print, {"qbits": 3})
    assert not pool.tasks


def test_no_cut_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dense = {"generator": "clustered", "qubits": 12, "clusters": 1, "depth": 3, "seed": 1}
    code, err, run = run_cli(tmp_path, capsys, circuit=dense)
    assert_rejected(code, err, run, "no cut of the 12-qubit circuit", "at most 4 qubits")


def test_missing_qasm_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, capsys, circuit={"qasm": str(tmp_path / "gone.qasm")})
    assert_rejected(code, err, run, "QASM file not found", "gone.qasm")


@pytest.mark.parametrize("content", [None, "{not json", '{"version": 999, "pools": {}}'])
def test_unreadable_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    profile = tmp_path / "profile.json"
    if content is not None:
        profile.write_text(content)
    code, err, run = run_cli(tmp_path, capsys, f"planner.profile={profile}")
    assert_rejected(code, err, run, "profile", str(profile))


def test_missing_template_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", str(tmp_path / "nowhere.yaml"), "--run-dir", str(tmp_path / "run")])
    assert_rejected(code, capsys.readouterr().err, tmp_path / "run", "cannot read template")


def test_resume_of_a_directory_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["run", "--resume", str(tmp_path)])
    assert_rejected(code, capsys.readouterr().err, tmp_path, "not a run directory")


def test_json_path_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run_dir = run_cli(tmp_path, capsys, cli_options=["--json", str(tmp_path)])
    assert_rejected(code, err, run_dir, "--json", "is a directory")


def test_json_path_in_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "result.json"
    code, err, run_dir = run_cli(tmp_path, capsys, cli_options=["--json", str(target)])
    assert_rejected(code, err, run_dir, "--json", "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_json_path_in_a_read_only_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err, run_dir = run_cli(
            tmp_path, capsys, cli_options=["--json", str(locked / "r.json")]
        )
    finally:
        locked.chmod(0o700)
    assert_rejected(code, err, run_dir, "--json", "cannot write")


def test_a_finished_runs_directory_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "template.yaml").write_text("earlier: run\n")
    (run_dir / "result.json").write_text('{"value": 0.0125}')
    code, err, _ = run_cli(tmp_path, capsys)
    assert_rejected(code, err, run_dir, "holds a finished run", "--resume")
    assert (run_dir / "template.yaml").read_text() == "earlier: run\n"
    assert (run_dir / "result.json").read_text() == '{"value": 0.0125}'


def test_a_run_directory_in_use_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = claim_run_dir(tmp_path / "run", resume=False)
    try:
        code, err, run_dir = run_cli(tmp_path, capsys)
    finally:
        holder.release()
    assert_rejected(code, err, run_dir, "in use by another run", f"pid {os.getpid()}")
    assert not (run_dir / "template.yaml").exists()


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["observable=nan*ZZZZZZZZ"], ["nan*ZZZZZZZZ", "not finite"]),
        (["observable=inf*ZZZZZZZZ,0.5*XXXXXXXX"], ["inf*ZZZZZZZZ", "not finite"]),
        (["execution.seed=-5"], ["execution.seed", "minimum"]),
        (["execution.shots=1.0e+23"], ["execution.shots", "maximum"]),
        (["planner.memory_limit_gb=.inf"], ["planner.memory_limit_gb", "not a finite number"]),
        (["planner.memory_limit_gb=.nan"], ["planner.memory_limit_gb", "not a finite number"]),
        (["run.workers.cpu=100000"], ["run.workers.cpu", "force_workers"]),
        (["execution.seed=1", "execution.seed=2"], ["execution.seed", "set twice"]),
    ],
    ids=[
        "nan-coefficient",
        "inf-coefficient",
        "negative-seed",
        "huge-shots",
        "inf-memory",
        "nan-memory",
        "too-many-workers",
        "duplicate-set",
    ],
)
def test_rejected_before_any_task(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: list[str],
    fragments: list[str],
) -> None:
    code, err, run_dir = run_cli(tmp_path, capsys, *overrides)
    assert_rejected(code, err, run_dir, *fragments)


@pytest.mark.parametrize("site", ["slurm", "pbs"])
def test_unknown_batch_site_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], site: str
) -> None:
    code, err, run_dir = run_cli(
        tmp_path, capsys, site={"name": site, "options": {"partitoin": "debug"}}
    )
    assert_rejected(code, err, run_dir, "site.options.partitoin", f"the {site} site", "accepted:")


def test_zero_qubit_circuit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[0];\n'
    code, err, run_dir = run_cli(tmp_path, capsys, circuit=qasm_circuit(tmp_path, empty))
    assert_rejected(code, err, run_dir, "the circuit has no qubits")


def test_binary_qasm_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "noise.qasm"
    path.write_bytes(bytes(range(256)))
    code, err, run_dir = run_cli(tmp_path, capsys, circuit={"qasm": str(path)})
    assert_rejected(code, err, run_dir, str(path), "not text")


def test_duplicate_yaml_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "dup.yaml"
    template.write_text(yaml.safe_dump(BASE) + "name: again\n")
    code = cli.main(["run", str(template), "--run-dir", str(tmp_path / "run")])
    assert_rejected(code, capsys.readouterr().err, tmp_path / "run", "duplicate key 'name'")


def test_yaml_aliases_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A "billion laughs" document: nine levels of nine aliases each."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    template = tmp_path / "laughs.yaml"
    template.write_text("\n".join(lines) + "\n")
    code = cli.main(["templates", "validate", str(template)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "aliases" in err, err


def test_oversized_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "big.yaml"
    template.write_text(yaml.safe_dump(BASE) + "#" * (2 << 20) + "\n")
    code = cli.main(["templates", "validate", str(template)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "larger than" in err, err


def test_ibm_backend_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from parsl_quantum.backends.ibm import ibm_credentials_available

    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    if ibm_credentials_available():
        pytest.skip("an IBM Quantum account is saved on this machine")
    site = {"name": "local", "options": {"backends": {"qpu": ["ibm:ibm_fez"]}}}
    code, err, run_dir = run_cli(tmp_path, capsys, site=site)
    assert_rejected(code, err, run_dir, "'ibm:ibm_fez' needs IBM Quantum credentials")


def test_planning_problem_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gates = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(499))
    ghz = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[500];\nh q[0];\n{gates}'
    code, err, run_dir = run_cli(
        tmp_path,
        capsys,
        circuit=qasm_circuit(tmp_path, ghz),
        planner={"max_subcircuit_qubits": 10},
    )
    assert_rejected(code, err, run_dir, "too large to plan", "raise max_subcircuit_qubits")


# -- property-based: only documented errors ----------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    ("circuit", "generator"),
    ("circuit", "qubits"),
    ("circuit", "qasm"),
    ("circuit", "reps"),
    ("observable",),
    ("pools",),
    ("planner", "max_subcircuit_qubits"),
    ("planner", "partitions"),
    ("planner", "profile"),
    ("execution", "shots"),
    ("execution", "mode"),
    ("execution", "failover"),
    ("site",),
    ("run", "workers"),
    ("apiVersion",),
    ("name",),
    ("extra",),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_template_error(text: str) -> None:
    try:
        parse_yaml(text, "fuzz.yaml")
    except TemplateError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), max_size=4))
def test_mutated_templates_validate_or_raise_template_error(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes:
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    try:
        validate(data, "fuzz.yaml")
    except TemplateError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_overrides_apply_or_raise_template_error(overrides: list[str]) -> None:
    with contextlib.suppress(TemplateError):
        validate(apply_overrides(BASE, overrides), "fuzz.yaml")


def test_non_string_kind_is_a_template_error() -> None:
    """Regression: ``kind: [1]`` must be a TemplateError like any other bad field."""
    for kind in ([1], {"a": 1}):
        with pytest.raises(TemplateError, match="kind"):
            validate({**BASE, "kind": kind})


@pytest.fixture(scope="module")
def fuzz_pool() -> QPUHighThroughputExecutor:
    """An unstarted pool: validation needs only its backends' specs."""
    return QPUHighThroughputExecutor(label="fuzz", backends=("aer", DEFAULT_FAKE_QPU))


SPEC_KEYS = st.sampled_from([*ACCEPTED_KEYS, "qbits", "memory", ""]) | st.text(max_size=6)
SPEC_VALUES = SCALARS | st.sampled_from(["aer", DEFAULT_FAKE_QPU, "fake:perth", "ibm:x", "aer:mps"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.dictionaries(SPEC_KEYS, SPEC_VALUES, max_size=5))
def test_resource_specs_select_or_raise(
    fuzz_pool: QPUHighThroughputExecutor, spec: dict[str, Any]
) -> None:
    specs: dict[str, BackendSpec] = fuzz_pool.backend_specs
    try:
        chosen = select_backends(spec, specs, "pool 'fuzz'")
    except InvalidResourceSpecification as exc:
        assert str(exc)
        with pytest.raises(InvalidResourceSpecification):
            fuzz_pool.validate_resource_spec(spec)
        return
    fuzz_pool.validate_resource_spec(spec)
    assert chosen and set(chosen) <= set(specs)
    assert set(spec) <= set(ACCEPTED_KEYS)
