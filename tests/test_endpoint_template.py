"""The Globus Compute endpoint template renders, validates and loads with globus-compute-endpoint's
own functions (the ones a multi-user endpoint runs before starting a user endpoint), for every
documented variable, and the schema refuses what it should."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import pytest
from globus_compute_endpoint.endpoint.config import CoreEndpointConfig, UserEndpointConfig
from globus_compute_endpoint.endpoint.config.utils import (
    load_config_yaml,
    load_user_config_schema,
    load_user_config_template,
    render_config_user_template,
)
from globus_compute_endpoint.endpoint.identity_mapper import MappedPosixIdentity
from globus_compute_endpoint.engines import GlobusComputeEngine
from globus_compute_sdk.sdk.batch import create_user_runtime

from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "workflows" / "globus-endpoint"
TEMPLATE_PATH = TEMPLATE_DIR / "user_config_template.yaml.j2"
SCHEMA_PATH = TEMPLATE_DIR / "user_config_schema.json"
SCHEMA: dict[str, Any] = load_user_config_schema(SCHEMA_PATH) or {}

PROVIDERS = {"local": "LocalProvider", "slurm": "SlurmProvider", "pbspro": "PBSProProvider"}


def render(options: dict[str, Any], schema: dict[str, Any] | None = SCHEMA) -> str:
    """Render the template as a multi-user endpoint does (see the endpoint CLI's
    ``render-user-config``): schema validation, sanitizing, a sandboxed Jinja environment."""
    return render_config_user_template(
        parent_config=CoreEndpointConfig(),
        user_config_template=load_user_config_template(TEMPLATE_PATH),
        user_config_template_path=TEMPLATE_PATH,
        mapped_identity=MappedPosixIdentity(
            local_user_record=pwd.getpwuid(os.getuid()),
            matched_identity=uuid.UUID(int=0),
            globus_identity_candidates=[],
        ),
        user_config_schema=schema,
        user_opts=options,
        user_runtime=json.loads(json.dumps(asdict(create_user_runtime()))),
    )


def load(options: dict[str, Any]) -> UserEndpointConfig:
    """Render, then build the user endpoint config (engine, provider, launcher) from it."""
    config = load_config_yaml(render(options))
    assert isinstance(config, UserEndpointConfig)
    return config


#: Every documented variable appears in at least one combination (checked below).
COMBINATIONS: list[dict[str, Any]] = [
    {},
    *(
        {"pool": pool, "provider": provider}
        for pool in ("cpu", "gpu", "qpu")
        for provider in PROVIDERS
    ),
    {"pool": "cpu", "workers_per_node": 8, "cpu_affinity": "alternating"},
    {"pool": "cpu", "cpu_affinity": "block-reverse", "backends": ["aer", "aer:mps"]},
    {"pool": "gpu", "accelerators": 4},
    {"pool": "gpu", "accelerators": ["0", "2"], "workers_per_node": 8, "cpu_affinity": "none"},
    {"pool": "gpu", "provider": "slurm", "accelerators": 2, "partition": "gpu", "account": "p1"},
    {
        "pool": "cpu",
        "provider": "slurm",
        "partition": "batch",
        "account": "abc123",
        "walltime": "02:30:00",
        "scheduler_options": "#SBATCH --constraint=cpu\n#SBATCH --mem=0",
        "nodes_per_block": 2,
        "init_blocks": 1,
        "max_blocks": 4,
        "address_interface": "lo",
    },
    {"pool": "qpu", "provider": "pbspro", "queue": "debug", "account": "q", "cpus_per_node": 16},
    {"pool": "qpu", "session_mode": "batch", "session_max_time": 7200},
    {
        "pool": "qpu",
        "backends": ["ibm:ibm_torino"],
        "session_mode": "job",
        "ibm_channel": "ibm_cloud",
        "ibm_instance": "crn:v1:bluemix:public:quantum-computing:us-east:a/1:2::",
    },
    {"pool": "qpu", "session_mode": "session", "ibm_channel": "ibm_quantum_platform"},
    {"venv": "/opt/envs/parsl quantum", "worker_init": 'module load python\necho "it\'s $HOME"'},
    {"max_idletime": 30, "init_blocks": 0, "max_blocks": 2, "nodes_per_block": 1},
]


def expected_workers(options: dict[str, Any]) -> int:
    pool = options.get("pool", "cpu")
    accelerators = options.get("accelerators", 1)
    count = accelerators if isinstance(accelerators, int) else len(accelerators)
    default = {"cpu": 4, "gpu": count, "qpu": 1}[pool]
    workers = options.get("workers_per_node", default)
    return min(workers, count) if pool == "gpu" else workers


@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: json.dumps(o, sort_keys=True))
def test_template_renders_and_loads(options: dict[str, Any]) -> None:
    config = load(options)
    engine = config.engine
    assert isinstance(engine, GlobusComputeEngine)
    htex = engine.executor
    pool = options.get("pool", "cpu")
    provider = htex.provider
    assert type(provider).__name__ == PROVIDERS[options.get("provider", "local")]
    assert htex.workers_per_node == expected_workers(options)
    assert htex.cpu_affinity == options.get("cpu_affinity", "block" if pool == "gpu" else "none")
    if pool == "gpu":
        accelerators = options.get("accelerators", 1)
        if isinstance(accelerators, int):
            accelerators = [str(i) for i in range(accelerators)]
        assert htex.available_accelerators == accelerators
    else:
        assert htex.available_accelerators == []
    assert provider.nodes_per_block == options.get("nodes_per_block", 1)
    assert provider.max_blocks == options.get("max_blocks", 1)
    batch = options.get("provider", "local") != "local"
    assert provider.init_blocks == options.get("init_blocks", 0 if batch else 1)
    assert engine._job_status_kwargs["max_idletime"] == options.get("max_idletime", 120)
    for key in ("partition", "queue", "account", "walltime", "cpus_per_node"):
        if key in options:
            assert getattr(provider, key) == options[key]
    if "scheduler_options" in options:  # SlurmProvider appends its own directives
        assert provider.scheduler_options.startswith(options["scheduler_options"])
    if batch:
        assert provider.walltime == options.get("walltime", "01:00:00")
    if "address_interface" in options:
        assert htex.address  # resolved by parsl.addresses.address_by_interface
    init = provider.worker_init
    assert f"export PARSL_QUANTUM_POOL={pool}" in init
    backends = options.get("backends", DEFAULT_POOL_BACKENDS[pool])
    assert f"export PARSL_QUANTUM_BACKENDS={','.join(backends)}" in init
    if "worker_init" in options:
        assert options["worker_init"] in init


def test_template_defaults_match_the_local_pools() -> None:
    """The template's default backends are the local default pools' backends."""
    for pool, backends in DEFAULT_POOL_BACKENDS.items():
        init = load({"pool": pool}).engine.executor.provider.worker_init
        assert f"export PARSL_QUANTUM_BACKENDS={','.join(backends)}\n" in init + "\n"


def test_every_documented_variable_is_exercised_and_documented() -> None:
    used = {key for options in COMBINATIONS for key in options}
    assert used == set(SCHEMA["properties"])
    readme = (TEMPLATE_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", readme, flags=re.M))
    assert documented == set(SCHEMA["properties"])


def test_worker_init_runs_in_a_shell(tmp_path: Path) -> None:
    """The composed worker_init is valid shell: quotes, spaces, ``$`` and the venv survive."""
    venv = tmp_path / "my venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text('export VENV_ACTIVE="yes"\n')
    options = {
        "pool": "qpu",
        "venv": str(venv),
        "worker_init": 'export GREETING="it\'s \\"quoted\\""\nexport HOME_SEEN=$HOME',
        "session_mode": "batch",
        "session_max_time": 600,
        "ibm_instance": "hub/group/project",
        "ibm_channel": "ibm_cloud",
    }
    init = load(options).engine.executor.provider.worker_init
    out = subprocess.run(
        ["bash", "-c", init + "\nenv"],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": "/home/somebody", "PATH": os.environ["PATH"]},
    ).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["VENV_ACTIVE"] == "yes"
    assert env["GREETING"] == 'it\'s "quoted"'
    assert env["HOME_SEEN"] == "/home/somebody"
    assert env["PARSL_QUANTUM_POOL"] == "qpu"
    assert env["PARSL_QUANTUM_BACKENDS"] == DEFAULT_POOL_BACKENDS["qpu"][0]
    assert env["PARSL_QUANTUM_SESSION_MODE"] == "batch"
    assert env["PARSL_QUANTUM_SESSION_MAX_TIME"] == "600"
    assert env["QISKIT_IBM_INSTANCE"] == "hub/group/project"
    assert env["QISKIT_IBM_CHANNEL"] == "ibm_cloud"


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"pool": "tpu"}, "pool"),
    ({"token": "secret"}, "token"),
    ({"backends": ["aer; rm -rf ~"]}, "backends"),
    ({"backends": []}, "backends"),
    ({"walltime": "1h"}, "walltime"),
    ({"workers_per_node": 0}, "workers_per_node"),
    ({"accelerators": 0}, "accelerators"),
    ({"accelerators": ["0", "0"]}, "accelerators"),
    ({"cpu_affinity": "list:0,1"}, "cpu_affinity"),
    ({"provider": "kubernetes"}, "provider"),
    ({"session_mode": "forever"}, "session_mode"),
    ({"partition": "gpu\nmalicious: true"}, "partition"),
    ({"address_interface": "eth0; reboot"}, "address_interface"),
    ({"max_blocks": -1}, "max_blocks"),
]


@pytest.mark.parametrize(("options", "field"), INVALID, ids=lambda v: str(v))
def test_schema_rejects_invalid_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as info:
        render(options)
    err = info.value
    assert field in [*err.absolute_path, *err.message.split("'")]


def test_reserved_template_variables_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved word"):
        render({"parent_config": {}})


def test_endpoint_cli_installs_and_renders_the_template(tmp_path: Path) -> None:
    """The install steps of the README: ``configure`` with both files, then the admin's preview
    ``render-user-config`` from the configured endpoint (and from the files directly)."""
    cli = str(Path(sys.executable).with_name("globus-compute-endpoint"))
    env = {**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(tmp_path / "gc")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, *args], capture_output=True, text=True, env=env)

    configured = run(
        "configure",
        "--multi-user",
        "false",
        "--template-config",
        str(TEMPLATE_PATH),
        "--schema-config",
        str(SCHEMA_PATH),
        "parsl-quantum",
    )
    assert configured.returncode == 0, configured.stderr
    installed = tmp_path / "gc" / "parsl-quantum"
    assert (installed / "user_config_template.yaml.j2").read_text() == TEMPLATE_PATH.read_text()
    assert (installed / "user_config_schema.json").read_text() == SCHEMA_PATH.read_text()
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"pool": "gpu", "accelerators": ["0", "1"]}))
    from_endpoint = run("render-user-config", "-e", "parsl-quantum", "-o", str(options))
    assert from_endpoint.returncode == 0, from_endpoint.stderr
    assert 'available_accelerators: ["0", "1"]' in from_endpoint.stdout
    from_files = run(
        "render-user-config", "-t", str(TEMPLATE_PATH), "-s", str(SCHEMA_PATH), "-o", str(options)
    )
    assert from_files.stdout == from_endpoint.stdout
    options.write_text(json.dumps({"pool": "tpu"}))
    assert run("render-user-config", "-e", "parsl-quantum", "-o", str(options)).returncode != 0


def test_without_the_schema_shell_values_stay_quoted(tmp_path: Path) -> None:
    """An endpoint installed without the schema still never runs a value as a command."""
    attack = f"x; touch {tmp_path}/pwned"
    options = {
        "pool": "qpu",
        "venv": attack,
        "backends": [attack, "$(touch pwned)"],
        "ibm_instance": "`touch pwned`",
        "ibm_channel": attack,
        "session_mode": attack,
        "partition": "p\nmalicious: true",
    }
    config = load_config_yaml(render(options, schema=None))
    init = config.engine.executor.provider.worker_init
    subprocess.run(["bash", "-c", init], cwd=tmp_path, capture_output=True)
    assert list(tmp_path.iterdir()) == []
    for bad in ({"pool": "x; touch pwned"}, {"provider": "LocalProvider"}):
        with pytest.raises(jinja2.exceptions.UndefinedError, match="invalid_option"):
            render(bad, schema=None)
