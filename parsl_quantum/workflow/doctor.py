"""``parsl-quantum doctor``: what this installation can do, and what each missing piece needs.

Everything here is local and quick: package versions from installed metadata (nothing heavy is
imported), GPUs from ``nvidia-smi``, backends from the registry, the planner's cost profile,
and credentials only as present or absent - their values are never read into the output. No
network call is made (IBM devices and Globus endpoints are not contacted).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

#: Distributions whose versions are reported, in this order.
PACKAGES = (
    "parsl-quantum",
    "parsl",
    "qiskit",
    "qiskit-aer",
    "qiskit-aer-gpu",
    "qiskit-ibm-runtime",
    "qiskit-addon-cutting",
    "numpy",
    "networkx",
    "globus-compute-sdk",
    "globus-compute-endpoint",
    "mitiq",
    "quimb",
    "cotengra",
    "sphinx",
)


@dataclass(frozen=True)
class Feature:
    """An optional feature: whether it is usable here, what was found, and the fix if not.

    Attributes
    ----------
    name : str
        Feature name.
    ok : bool
        Whether it is usable here.
    detail : str
        What was found.
    fix : str
        What to do to make it usable, if it is not.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""


def version(dist: str) -> str | None:
    """The installed version of a distribution, or None.

    Parameters
    ----------
    dist : str
        Distribution name.

    Returns
    -------
    str or None
        Its version, or None when it is not installed.
    """
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _missing_modules(modules: Sequence[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def gpus() -> list[str]:
    """GPUs as ``nvidia-smi -L`` lists them.

    Returns
    -------
    list of str
        One line per GPU; empty without nvidia-smi or a GPU.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU")]


def _extra(name: str) -> str:
    return f"pip install 'parsl-quantum[{name}]'"


def gpu_feature() -> Feature:
    """Whether ``aer-gpu`` runs on this machine, and what is missing if not.

    Returns
    -------
    Feature
        The ``gpu`` feature.
    """
    from parsl_quantum.backends.aer import gpu_missing_reason

    reason = gpu_missing_reason()
    if reason is None:
        return Feature("gpu", True, "aer-gpu runs on this machine")
    from parsl_quantum.backends.aer import gpu_present

    needs = [_extra("gpu")] if version("qiskit-aer-gpu") is None else []
    if not gpu_present():
        needs.append("an NVIDIA GPU with its driver")
    return Feature("gpu", False, reason, " and ".join(needs) or "a working CUDA driver")


def ibm_feature() -> Feature:
    """Whether IBM Quantum devices can be used: the runtime package and saved or given credentials.

    Credentials are looked for, never tried against the service.

    Returns
    -------
    Feature
        The ``ibm`` feature.
    """
    from parsl_quantum.backends.ibm import TOKEN_ENV, ibm_credentials_available

    if version("qiskit-ibm-runtime") is None:
        return Feature(
            "ibm", False, "qiskit-ibm-runtime is not installed", "pip install parsl-quantum"
        )
    if os.environ.get(TOKEN_ENV):
        return Feature("ibm", True, f"token in {TOKEN_ENV} (not contacted)")
    if ibm_credentials_available():
        return Feature("ibm", True, "saved IBM Quantum account (not contacted)")
    return Feature(
        "ibm",
        False,
        "no IBM Quantum credentials",
        f"set {TOKEN_ENV}, or QiskitRuntimeService.save_account(...)",
    )


def globus_feature() -> Feature:
    """Whether Globus Compute pools can be used: the SDK and endpoint packages and a login.

    Returns
    -------
    Feature
        The ``globus`` feature, with any endpoint pools named in the environment.
    """
    from parsl_quantum.configs.globus import endpoint_pools_from_env

    missing = _missing_modules(["globus_compute_sdk", "globus_compute_endpoint"])
    if missing:
        return Feature("globus", False, f"missing {', '.join(missing)}", _extra("globus"))
    env_login = all(
        os.environ.get(v) for v in ("GLOBUS_COMPUTE_CLIENT_ID", "GLOBUS_COMPUTE_CLIENT_SECRET")
    )
    user_dir = Path(os.environ.get("GLOBUS_COMPUTE_USER_DIR", Path.home() / ".globus_compute"))
    if env_login:
        login = "client credentials in the environment"
    elif (user_dir / "storage.db").is_file():
        login = "saved login"
    else:
        return Feature(
            "globus",
            False,
            "no Globus login",
            "globus-compute-endpoint login, or set GLOBUS_COMPUTE_CLIENT_ID and "
            "GLOBUS_COMPUTE_CLIENT_SECRET",
        )
    pools = sorted(endpoint_pools_from_env())
    where = f"; endpoint pools from the environment: {', '.join(pools)}" if pools else ""
    return Feature("globus", True, f"{login}{where}")


def modules_feature(name: str, modules: Sequence[str]) -> Feature:
    """Whether the modules of an optional extra are installed.

    Parameters
    ----------
    name : str
        Feature name, which is also the extra that installs it.
    modules : Sequence of str
        Modules the feature needs.

    Returns
    -------
    Feature
        The feature, its fix the ``pip install`` of the extra.
    """
    missing = _missing_modules(modules)
    if missing:
        return Feature(name, False, f"missing {', '.join(missing)}", _extra(name))
    return Feature(name, True, f"{', '.join(modules)} installed")


def profile_status() -> dict[str, Any]:
    """The planner's default cost profile: where it is, and whether it loads.

    Returns
    -------
    dict of str to Any
        Plain data for :func:`diagnose`.
    """
    from parsl_quantum.planner.cost import CostModel, ProfileError, default_profile_path

    path = default_profile_path()
    if not path.exists():
        return {
            "path": str(path),
            "ok": False,
            "detail": "not calibrated: plans use the documented default coefficients",
            "fix": "parsl-quantum calibrate",
        }
    try:
        model = CostModel.load(path)
    except ProfileError as exc:
        return {
            "path": str(path),
            "ok": False,
            "detail": str(exc),
            "fix": "parsl-quantum calibrate",
        }
    pools = ", ".join(sorted(model.pools)) or "none"
    return {"path": str(path), "ok": True, "detail": f"calibrated pools: {pools}", "fix": ""}


def backends_summary() -> dict[str, Any]:
    """Backends usable here by family, and the local default pools that can start.

    Returns
    -------
    dict of str to Any
        Plain data for :func:`diagnose`.
    """
    from parsl_quantum.backends import DEFAULT_FAKE_QPU, available_backends
    from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS, gpu_available

    names = available_backends()
    fake = [n for n in names if n.startswith("fake:")]
    sims = [n for n in names if not n.startswith("fake:")]
    pools = {
        pool: {"backends": list(backends), "available": pool != "gpu" or gpu_available()}
        for pool, backends in DEFAULT_POOL_BACKENDS.items()
    }
    return {
        "simulators": sims,
        "fake_devices": len(fake),
        "default_fake_qpu": DEFAULT_FAKE_QPU,
        "local_pools": pools,
    }


def diagnose() -> dict[str, Any]:
    """Everything ``doctor`` reports, as plain data (``doctor --json``).

    Returns
    -------
    dict of str to Any
        The report.
    """
    features = [
        gpu_feature(),
        globus_feature(),
        ibm_feature(),
        modules_feature("miniapps", ["mitiq", "quimb", "cotengra"]),
        modules_feature("docs", ["sphinx", "myst_parser", "sphinx_autodoc_typehints"]),
    ]
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "versions": {p: version(p) for p in PACKAGES},
        "gpus": gpus(),
        "backends": backends_summary(),
        "profile": profile_status(),
        "features": [asdict(f) for f in features],
    }


def print_doctor(report: dict[str, Any], stream: TextIO | None = None) -> None:
    """A human-readable rendering of :func:`diagnose`.

    Parameters
    ----------
    report : dict of str to Any
        What :func:`diagnose` returned.
    stream : TextIO or None
        Where to print; standard output when omitted.
    """
    from rich.console import Console
    from rich.table import Table

    out = stream or sys.stdout
    console = Console(file=out, highlight=False, markup=False, width=None if out.isatty() else 120)
    console.print(f"python {report['python']} on {report['platform']}")
    versions = Table(title="packages", show_header=False)
    for name, ver in report["versions"].items():
        versions.add_row(name, ver or "not installed")
    console.print(versions)
    console.print(f"GPUs: {', '.join(report['gpus']) or 'none detected'}")
    b = report["backends"]
    console.print(
        f"backends: {', '.join(b['simulators'])}, and {b['fake_devices']} fake devices "
        f"(default QPU {b['default_fake_qpu']}); ibm:<device> with IBM credentials"
    )
    pools = ", ".join(
        f"{p} ({'/'.join(v['backends'])}{'' if v['available'] else ', unavailable'})"
        for p, v in b["local_pools"].items()
    )
    console.print(f"local pools: {pools}")
    prof = report["profile"]
    fix = f" (to fix: {prof['fix']})" if prof["fix"] else ""
    console.print(f"planner profile {prof['path']}: {prof['detail']}{fix}")
    table = Table(title="optional features")
    for col in ("feature", "status", "detail", "to enable"):
        table.add_column(col)
    for f in report["features"]:
        table.add_row(f["name"], "ok" if f["ok"] else "missing", f["detail"], f["fix"])
    console.print(table)
