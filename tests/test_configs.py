"""Site configurations: the local default's pools, and the batch scripts cluster configs write."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import parsl
import pytest
from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher, SrunLauncher
from parsl.providers.errors import SubmitException

from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.configs import ClusterPool
from parsl_quantum.configs.local import (
    HEARTBEAT_PERIOD,
    PREFETCH,
    STRATEGY_PERIOD,
    THREAD_VARIABLES,
)
from parsl_quantum.configs.site import site_config
from parsl_quantum.executors import QPUHighThroughputExecutor, pool_infos


def test_local_default_has_named_pools_under_the_run_dir(tmp_path: Path) -> None:
    config = configs.local(tmp_path / "run", ("cpu", "qpu"))
    labels = [ex.label for ex in config.executors]
    assert labels == ["cpu", "qpu"]
    assert all(isinstance(ex, QPUHighThroughputExecutor) for ex in config.executors)
    assert config.run_dir == str(tmp_path / "run" / "parsl")
    assert config.monitoring is None  # opt-in, as in Parsl
    monitored = configs.local(tmp_path / "run", ("cpu",), monitoring=True).monitoring
    assert monitored is not None
    assert str(tmp_path / "run" / "monitoring.db") in monitored.logging_endpoint
    infos = pool_infos(config)
    assert infos["cpu"].backends == ("aer",) and infos["cpu"].exact
    assert infos["qpu"].backends == (DEFAULT_FAKE_QPU,)
    assert infos["qpu"].kind == "qpu" and not infos["qpu"].exact


def test_local_pools_submit_their_first_block_on_a_short_strategy_period(tmp_path: Path) -> None:
    # Parsl submits a pool's initial block on the strategy's first run after the pool is added:
    # the local default runs it far more often than Parsl's 5 s default, and every pool starts
    # with one block.
    config = configs.local(tmp_path / "run", ("cpu", "qpu"))
    assert config.strategy_period == STRATEGY_PERIOD
    assert 0 < STRATEGY_PERIOD < 1 < HEARTBEAT_PERIOD
    assert all(ex.provider.init_blocks == 1 for ex in config.executors)


def test_local_workers_get_their_share_of_the_cores_as_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    config = configs.local(tmp_path, ("cpu", "qpu"), workers={"cpu": 3})
    # (the line after the threads withholds credentials, see test_secrets.py)
    inits = {ex.label: ex.provider.worker_init.splitlines()[0] for ex in config.executors}
    # 8 cores over 3 + 1 workers: 2 threads each, for BLAS and for Aer's OpenMP
    assert inits["cpu"] == inits["qpu"]
    assert inits["cpu"] == "export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # what the user set is left alone
    config = configs.local(tmp_path, ("cpu",), workers={"cpu": 16})
    assert config.executors[0].provider.worker_init.splitlines()[0] == (
        "export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
    )


def test_a_local_pool_holds_the_next_task_while_its_workers_are_busy(tmp_path: Path) -> None:
    # the task after a busy worker's is already in the worker pool when that worker frees up
    config = configs.local(tmp_path / "run", ("cpu",), workers={"cpu": 1})
    assert config.executors[0].prefetch_capacity == PREFETCH
    with parsl.load(config) as dfk:
        app = parsl.python_app(subprocess.call, executors=["cpu"])
        first = app(["sleep", "3"])
        second = app(["true"])
        cpu = dfk.executors["cpu"]
        deadline = time.monotonic() + 60
        held = 0
        while time.monotonic() < deadline and not first.done():
            managers = cpu.connected_managers()
            held = max((m["tasks"] for m in managers), default=0)
            if held == 2:
                break
            time.sleep(0.05)
        assert held == 2, "the one worker's pool did not take the second task while busy"
        assert first.result() == 0 and second.result() == 0
    parsl.clear()


def test_gpu_pool_only_when_a_gpu_is_present(tmp_path: Path) -> None:
    config = configs.local(tmp_path, ("cpu", "gpu"))
    labels = [ex.label for ex in config.executors]
    assert ("gpu" in labels) == configs.gpu_available()


def test_unknown_local_pool_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pool 'tpu'"):
        configs.local(tmp_path, ("cpu", "tpu"))


def _batch_script(provider, tmp_path: Path) -> str:
    provider.script_dir = str(tmp_path)
    # no scheduler's commands on PATH (hiding any Slurm installed here): the script is written,
    # then its submission fails
    with pytest.MonkeyPatch.context() as mp, pytest.raises(SubmitException):
        mp.setenv("PATH", str(tmp_path / "no-bin"))
        provider.submit("process_worker_pool.py --block_id=0", 1)
    scripts = [p for p in tmp_path.iterdir() if p.is_file() and p.name.startswith("parsl.")]
    assert len(scripts) == 1
    return scripts[0].read_text()


def test_slurm_config_writes_a_batch_script(tmp_path: Path) -> None:
    pools = {"cpu": ClusterPool(nodes_per_block=2, workers_per_node=4, walltime="00:30:00")}
    config = configs.slurm(
        tmp_path / "run",
        pools,
        partition="debug",
        account="proj42",
        worker_init="source /opt/env/bin/activate",
        monitoring=False,
        check=False,
    )
    (ex,) = config.executors
    assert ex.label == "cpu" and ex.max_workers_per_node == 4
    script = _batch_script(ex.provider, tmp_path)
    # the run's job name comes after Parsl's own, so sbatch takes it
    names = [line for line in script.splitlines() if line.startswith("#SBATCH --job-name=")]
    assert names[-1] == "#SBATCH --job-name=run.cpu" and len(names) == 2
    assert "#SBATCH --partition=debug" in script
    assert "#SBATCH --account=proj42" in script
    assert "#SBATCH --nodes=2" in script
    assert "#SBATCH --time=30" in script
    assert "source /opt/env/bin/activate" in script
    assert "srun" in script and "process_worker_pool.py" in script


def test_pbs_config_writes_a_batch_script(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pools = {"qpu": ClusterPool(backends=(DEFAULT_FAKE_QPU,), walltime="01:00:00")}
    config = configs.pbs(
        tmp_path / "run",
        pools,
        queue="debug",
        account="proj42",
        cpus_per_node=32,
        worker_init="module load conda",
        monitoring=False,
    )
    (ex,) = config.executors
    assert ex.backends == (DEFAULT_FAKE_QPU,)
    script = _batch_script(ex.provider, tmp_path)
    assert "-q debug -A proj42" in caplog.text  # PBS Pro passes these to qsub
    assert "#PBS -l walltime=01:00:00" in script
    assert "ncpus=32" in script
    assert "module load conda" in script
    assert "mpiexec" in script and "process_worker_pool.py" in script
    names = [line for line in script.splitlines() if line.startswith("#PBS -N ")]
    assert len(names) == 1 and names[0].startswith("#PBS -N parsl.")  # Parsl's own


def test_pbs_script_is_pbs_pro_syntax(tmp_path: Path) -> None:
    """No PBS server is installable from Debian's packages (only Slurm's Torque wrappers), so
    the PBS site is checked as Parsl checks its own PBSProProvider: the script it writes."""
    pools = {"cpu": ClusterPool(nodes_per_block=2, walltime="00:20:00", workers_per_node=8)}
    config = configs.pbs(
        tmp_path / "run",
        pools,
        queue="debug",
        cpus_per_node=64,
        select_options=":ngpus=4",
        monitoring=False,
    )
    script = _batch_script(config.executors[0].provider, tmp_path).splitlines()
    assert script[0] == "#!/bin/bash"
    directives = [line for line in script if line.startswith("#PBS")]
    # every directive is one "#PBS -<letter> <value>" line, the resources in PBS Pro's form
    assert all(len(d.split(maxsplit=2)) == 3 and d.split()[1][0] == "-" for d in directives)
    assert "#PBS -l select=2:ncpus=64:ngpus=4" in directives
    assert "#PBS -l walltime=00:20:00" in directives
    assert {"#PBS -S /bin/bash", "#PBS -m n"} <= set(directives)
    assert any(d.startswith("#PBS -o ") for d in directives)
    assert any(d.startswith("#PBS -e ") for d in directives)
    # workers on every node of the job, one per node, through PBS Pro's mpiexec
    assert "WORKERCOUNT=2" in script
    launch = next(line for line in script if line.startswith("mpiexec "))
    assert "--ppn 1 -n $WORKERCOUNT --hostfile $HOSTFILE" in launch


def test_slurm_check_needs_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a login node without Slurm's commands
    with pytest.raises(ValueError, match="sbatch is not on PATH"):
        configs.slurm(tmp_path, monitoring=False)
    assert configs.slurm(tmp_path, monitoring=False, check=False).executors[0].label == "cpu"


def test_a_cluster_pool_with_an_mpi_launcher_is_an_mpi_executor(tmp_path: Path) -> None:
    pools = {
        "cpu": ClusterPool(),
        "mpi": ClusterPool(nodes_per_block=2, workers_per_node=1, mpi_launcher="srun"),
    }
    config = configs.slurm(tmp_path / "run", pools, monitoring=False, check=False)
    cpu, mpi = config.executors
    assert isinstance(cpu, QPUHighThroughputExecutor) and not isinstance(cpu, MPIExecutor)
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "srun"
    assert isinstance(mpi.provider.launcher, SimpleLauncher)  # one worker pool per block
    assert isinstance(cpu.provider.launcher, SrunLauncher)  # one on every node
    script = _batch_script(mpi.provider, tmp_path)
    assert "#SBATCH --nodes=2" in script and "srun" not in script


def test_one_config_builder_for_every_site(tmp_path: Path) -> None:
    assert site_config([], tmp_path, monitoring=False).monitoring is None
    empty = site_config([], tmp_path / "a b", monitoring=True)
    assert empty.run_dir == str(tmp_path / "a b" / "parsl")
    assert empty.monitoring is not None
    assert empty.monitoring.logging_endpoint == f"sqlite:///{tmp_path / 'a b' / 'monitoring.db'}"
    local = configs.local(tmp_path / "local", ("cpu",), monitoring=True)
    slurm = configs.slurm(tmp_path / "slurm", check=False)
    for config in (local, slurm):
        # each try reports its start on the worker; no resource-sampling process per task
        assert config.monitoring is not None
        assert config.monitoring.resource_monitoring_enabled
        assert config.monitoring.resource_monitoring_interval == 0
        assert config.strategy == "simple" and config.initialize_logging
    assert local.max_idletime == 3600 and slurm.max_idletime == 120
    # Globus Compute workers cannot reach this machine's hub: no per-try reports there
    remote = site_config([], tmp_path, monitoring=True, try_reports=False)
    assert remote.monitoring is not None and not remote.monitoring.resource_monitoring_enabled
