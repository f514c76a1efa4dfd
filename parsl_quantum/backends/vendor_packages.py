"""Which vendor simulators can run here, without importing them (or Qiskit): the registry
lists backends on workers that must stay light."""

from __future__ import annotations

import importlib.util

#: Registry names and the Python packages each needs.
VENDOR_PACKAGES = {
    "braket:local": ("qiskit_braket_provider", "qiskit-braket-provider"),
    "pennylane:lightning.qubit": ("pennylane_lightning", "pennylane-lightning"),
}


def vendor_missing_reason(name: str) -> str | None:
    """Why the vendor backend ``name`` cannot run here (its package is absent).

    Parameters
    ----------
    name : str
        A key of :data:`VENDOR_PACKAGES`.

    Returns
    -------
    str or None
        The reason, with the install command, or None when the package is installed.
    """
    module, dist = VENDOR_PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        return (
            f"{name} is unavailable: the {dist} package is not installed "
            "(pip install 'parsl-quantum[vendors]')"
        )
    return None
