"""A real one-node Slurm cluster for the test suite (the ``slurm_cluster`` session fixture).

Debian's ``slurm-wlm`` and ``munge`` are installed when missing (as root, with ``apt-get``).
The cluster is private to the test session: its own munge key and socket, its own ports, its
``slurm.conf`` and state under a temporary directory, so it neither needs nor touches a
system-wide Slurm. The node is this host as ``slurmd -C`` reads it (cores, memory), with
``proctrack/linuxproc``, ``task/none`` and one ``debug`` partition. Finished jobs are written
by ``jobcomp/filetxt``, which ``sacct --completion`` reads: job accounting without a database.
At the end the fixture cancels what is still queued and stops exactly the daemons it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Debian packages of the cluster and the commands that show they are installed.
SLURM_PACKAGES = ("slurm-wlm", "munge")
SLURM_COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "sacct", "srun")
#: Seconds to wait for the node to be idle after the daemons start.
STARTUP_TIMEOUT = 60.0

_apt_updated = False


def ensure_debian_packages(packages: Sequence[str], commands: Sequence[str]) -> None:
    """Install Debian ``packages`` unless all ``commands`` are on PATH already.

    Skips the calling test where installing cannot work (not root, no ``apt-get``); a failed
    install is a test error, since the machines this suite runs on reach Debian's registry.
    """
    global _apt_updated
    if all(shutil.which(c) for c in commands):
        return
    missing = [c for c in commands if not shutil.which(c)]
    if os.geteuid() != 0:
        pytest.skip(f"{', '.join(missing)} missing and not root: cannot install {packages}")
    if not shutil.which("apt-get"):
        pytest.skip(f"{', '.join(missing)} missing and no apt-get to install {packages}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    steps = [] if _apt_updated else [["apt-get", *lock, "update", "-q"]]
    steps.append(["apt-get", *lock, "install", "-y", "-q", *packages])
    for argv in steps:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed: {done.stderr.strip()[-2000:]}")
        _apt_updated = _apt_updated or argv[-2:] == ["update", "-q"]
    still = [c for c in commands if not shutil.which(c)]
    if still:
        pytest.fail(f"installed {packages} but {', '.join(still)} still not on PATH")


@dataclass(frozen=True)
class SlurmCluster:
    """A running one-node cluster: its configuration file, node and partition."""

    root: Path
    conf: Path
    node: str
    cpus: int
    partition: str = "debug"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command (``sinfo``, ``scancel``...) against this cluster."""
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        return subprocess.run(
            list(argv), env=env, capture_output=True, text=True, check=check, timeout=60
        )

    def queued(self) -> list[str]:
        """Names of the jobs in ``squeue`` (pending or running)."""
        out = self.run("squeue", "--noheader", "--format=%j").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def running(self) -> dict[str, str]:
        """Job id -> name of the running jobs."""
        out = self.run("squeue", "--noheader", "--states=R", "--format=%i %j").stdout
        return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())

    def finished(self) -> list[dict[str, str]]:
        """Finished jobs as ``sacct --completion`` reports them (job id, name, state,
        partition, node list), oldest first."""
        fields = ("jobid", "jobname", "state", "partition", "nodelist")
        out = self.run(
            "sacct", "--completion", "--parsable2", "--noheader", f"--format={','.join(fields)}"
        ).stdout
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]

    def wait_until_empty(self, timeout: float = 60.0) -> list[str]:
        """Wait for ``squeue`` to be empty; returns what is still queued at ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := self.queued()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _node_line() -> tuple[str, str, int]:
    """This host as ``slurmd -C`` describes it: the NodeName line, the name, the CPUs."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("NodeName="))
    fields = dict(f.split("=", 1) for f in line.split())
    return line, fields["NodeName"], int(fields["CPUs"])


def write_config(root: Path) -> tuple[Path, str, int]:
    """Write ``slurm.conf`` for a one-node cluster on this host under ``root``."""
    node_line, node, cpus = _node_line()
    for d in ("state", "spool", "log"):
        (root / d).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=pqtest",
                f"SlurmctldHost={node}",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "AuthType=auth/munge",
                f"AuthInfo=socket={root / 'munge.sock'}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "MpiDefault=none",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/filetxt",
                f"JobCompLoc={root / 'jobcomp.txt'}",
                "EnforcePartLimits=ALL",
                f"{node_line.split(' UpTime=')[0]} State=UNKNOWN",
                f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf, node, cpus


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _log_tail(root: Path) -> str:
    parts = []
    for log in sorted((root / "log").glob("*")):
        lines = log.read_text(errors="replace").splitlines()[-8:]
        parts.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(parts)


def start_cluster(root: Path) -> tuple[SlurmCluster, list[subprocess.Popen[bytes]]]:
    """Start munged, slurmctld and slurmd in the foreground under ``root`` and wait for the
    node to be idle. Returns the cluster and the daemons, in start order."""
    conf, node, cpus = write_config(root)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    logs = root / "log"
    commands = [
        [
            "munged",
            "--foreground",
            "--force",
            f"--socket={root / 'munge.sock'}",
            f"--key-file={key}",
            f"--log-file={logs / 'munged.log'}",
            f"--pid-file={root / 'munged.pid'}",
            f"--seed-file={root / 'munged.seed'}",
        ],
        ["slurmctld", "-D", "-i", "-f", str(conf)],
        ["slurmd", "-D", "-f", str(conf)],
    ]
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, conf, node, cpus)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for argv in commands:
            with (logs / f"{argv[0]}.out").open("wb") as out:
                processes.append(
                    subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
            if argv[0] == "munged":  # slurmctld needs the socket at start
                _wait_for(lambda: (root / "munge.sock").exists(), "munged's socket", root)
        state = ""

        def idle() -> bool:
            nonlocal state
            for proc in processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
            done = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", check=False)
            state = done.stdout.strip()
            return done.returncode == 0 and state == "idle"

        _wait_for(idle, f"node {node} idle (last state {state!r})", root)
    except BaseException:
        _stop(processes)
        raise
    return cluster, processes


def _wait_for(condition: Callable[[], bool], what: str, root: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if condition():
                return
        except RuntimeError as exc:
            raise RuntimeError(f"Slurm did not start: {exc}\n{_log_tail(root)}") from exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"Slurm did not start: no {what} in time\n{_log_tail(root)}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster for the session; ``SLURM_CONF`` points at it meanwhile, so
    Parsl's ``SlurmProvider`` and the ``parsl-quantum`` command submit to it."""
    ensure_debian_packages(SLURM_PACKAGES, SLURM_COMMANDS)
    if os.geteuid() != 0:
        pytest.skip("the one-node Slurm runs its daemons as root (SlurmUser=root): not root")
    root = Path(tempfile.mkdtemp(prefix="pq-slurm-"))
    cluster, processes = start_cluster(root)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        cluster.run("scancel", f"--partition={cluster.partition}", check=False)
        cluster.wait_until_empty(timeout=30)
        _stop(processes)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(root, ignore_errors=True)
