"""A real one-node Slurm cluster for the test suite (the ``slurm_cluster`` session fixture).

Debian's ``slurm-wlm``, ``slurmdbd``, ``munge`` and ``mariadb-server`` are installed when
missing (as root, with ``apt-get``). The cluster is the test session's own: its ports, its
``slurm.conf`` and state, a MariaDB server and database under a temporary directory, so it
neither needs nor touches a system-wide Slurm. The node is this host as ``slurmd -C`` reads it
(cores, memory), with ``proctrack/linuxproc``, ``task/none`` and one ``debug`` partition.
Accounting goes through ``slurmdbd`` into MariaDB, so ``sacct`` reports every job and Slurm
enforces accounts (a job under an account it does not know is refused): a job-completion log
(``jobcomp/filetxt`` read by ``sacct --completion``) would give ``sacct`` without a database,
but no account could then be refused. Authentication uses the munge daemon on the default
socket (Slurm 22.05's clients reach ``slurmdbd`` only through that one): a running one is used,
else the fixture starts its own there with a fresh key. At the end the fixture cancels what is
still queued and stops exactly the daemons it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Debian packages of the cluster and the commands that show they are installed.
SLURM_PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
SLURM_COMMANDS = (
    "munged",
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "sbatch",
    "sinfo",
    "squeue",
    "sacct",
    "sacctmgr",
    "srun",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "munge",
)
#: The munge socket every Slurm command uses by default.
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
#: The account the suite's jobs run under (root's default account).
ACCOUNT = "pq"
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
    account: str = ACCOUNT

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

    def finished(
        self, names: Iterable[str] = (), ids: Iterable[str] = (), timeout: float = 60.0
    ) -> list[dict[str, str]]:
        """Every job in the accounting database (job id, name, state, partition, account,
        node list), oldest first, once every job named in ``names`` or ``ids`` is recorded
        there and none is still pending or running (a job reaches ``slurmdbd`` some time
        after it leaves ``squeue``; on a fresh cluster it can take seconds)."""
        fields = ("jobid", "jobname", "state", "partition", "account", "nodelist")
        want_names, want_ids = set(names), set(ids)
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(
                "sacct",
                "--allusers",
                "--allocations",
                "--starttime=2000-01-01",
                "--parsable2",
                "--noheader",
                f"--format={','.join(fields)}",
            ).stdout
            jobs = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
            active = [j for j in jobs if j["state"] in ("PENDING", "RUNNING", "COMPLETING")]
            missing = (want_names - {j["jobname"] for j in jobs}) | (
                want_ids - {j["jobid"] for j in jobs}
            )
            if (not active and not missing) or time.monotonic() > deadline:
                return jobs
            time.sleep(0.5)

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


def write_config(root: Path, dbd_port: int) -> tuple[Path, str, int]:
    """Write ``slurm.conf`` for a one-node cluster on this host under ``root``, its accounting
    through the ``slurmdbd`` on ``dbd_port``."""
    node_line, node, cpus = _node_line()
    for d in ("state", "spool"):
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
                "AccountingStorageType=accounting_storage/slurmdbd",
                f"AccountingStorageHost={node}",
                f"AccountingStoragePort={dbd_port}",
                "AccountingStorageEnforce=associations",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
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


def _munge_works() -> bool:
    return subprocess.run(["munge", "-n"], capture_output=True, check=False).returncode == 0


def start_cluster(root: Path) -> tuple[SlurmCluster, list[subprocess.Popen[bytes]]]:
    """Start (unless one runs) munged, then MariaDB, slurmdbd, slurmctld and slurmd in the
    foreground under ``root``, register the cluster, an account and root in the accounting
    database, and wait for the node to be idle. Returns the cluster and the daemons started,
    in start order."""
    logs = root / "log"
    logs.mkdir()
    dbd_port, db_port = _free_port(), _free_port()
    conf, node, cpus = write_config(root, dbd_port)
    db_socket, db_password = root / "mysql.sock", os.urandom(12).hex()
    dbd_conf = root / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf
    dbd_conf.write_text(
        "\n".join(
            [
                "AuthType=auth/munge",
                f"DbdHost={node}",
                f"DbdPort={dbd_port}",
                "SlurmUser=root",
                f"PidFile={root / 'slurmdbd.pid'}",
                f"LogFile={logs / 'slurmdbd.log'}",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={db_port}",
                "StorageUser=slurm",
                f"StoragePass={db_password}",
                "StorageLoc=slurm_acct_db",
                "",
            ]
        )
    )
    dbd_conf.chmod(0o600)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, conf, node, cpus)
    processes: list[subprocess.Popen[bytes]] = []
    names: dict[int, str] = {}

    def start(*argv: str) -> None:
        with (logs / f"{Path(argv[0]).name}.out").open("wb") as out:
            processes.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT))
        names[processes[-1].pid] = argv[0]

    def alive() -> None:
        for proc in processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{names[proc.pid]} exited with {proc.returncode}")

    def answers(*argv: str) -> bool:
        alive()
        return subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0

    mariadb = ["mariadb", "--no-defaults", "--user=root", f"--socket={db_socket}"]
    try:
        if not _munge_works():
            key = root / "munge.key"
            key.write_bytes(os.urandom(1024))
            key.chmod(0o600)
            MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
            start(
                "munged",
                "--foreground",
                "--force",
                f"--socket={MUNGE_SOCKET}",
                f"--key-file={key}",
                f"--log-file={logs / 'munged.log'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--seed-file={root / 'munged.seed'}",
            )
            _wait_for(lambda: answers("munge", "-n"), "munged answering", root)
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={root / 'db'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            check=True,
        )
        start(
            "mariadbd",
            "--no-defaults",
            "--user=root",
            f"--datadir={root / 'db'}",
            f"--socket={db_socket}",
            f"--port={db_port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={root / 'mariadbd.pid'}",
            f"--log-error={logs / 'mariadbd.log'}",
            "--innodb-use-native-aio=0",
        )
        _wait_for(lambda: answers(*mariadb, "-e", "SELECT 1"), "MariaDB answering", root)
        grant = (
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_password}'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        subprocess.run([*mariadb, "-e", grant], capture_output=True, check=True)
        start("slurmdbd", "-D")
        _wait_for(lambda: answers("sacctmgr", "-n", "show", "cluster"), "slurmdbd", root)
        for entity in (
            ["cluster", "pqtest"],
            ["account", ACCOUNT, "Description=parsl-quantum tests", "Organization=pq"],
            ["user", "root", f"Account={ACCOUNT}", f"DefaultAccount={ACCOUNT}"],
        ):
            cluster.run("sacctmgr", "--immediate", "add", *entity)
        start("slurmctld", "-D", "-i", "-f", str(conf))
        start("slurmd", "-D", "-f", str(conf))
        state = ""

        def idle() -> bool:
            nonlocal state
            alive()
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
