"""The headline of a run's summary: its metric by name, the reference it is judged against,
and whether it is good (converged, reached, within error), for every template kind.

A bare ``value`` means something different in each kind (an expectation value, a throughput,
an energy, an accuracy, an error), so ``parsl-quantum run`` prints the metric's name instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A cut or sliced result within this many standard errors (or, when exact, this absolute
#: difference) of its reference counts as agreeing with it.
STD_ERRORS = 5.0
EXACT_TOLERANCE = 1e-6

#: File types of the pictures a run writes into its run directory.
PICTURE_SUFFIXES = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class Headline:
    """What a run measured and how it compares.

    Attributes
    ----------
    metric : str
        What the run measured.
    value : float or None
        The measured value.
    reference_label : str
        What it is compared with.
    reference : float or None
        The reference value.
    flag_label : str
        What the flag judges.
    flag : bool or None
        The judgement; None when there is nothing to judge by.
    """

    metric: str
    value: float | None
    reference_label: str
    reference: float | None
    flag_label: str
    flag: bool | None


def _agrees(value: float, reference: float | None, std_error: float) -> bool | None:
    if reference is None:
        return None
    return abs(value - reference) <= max(EXACT_TOLERANCE, STD_ERRORS * std_error)


def headline(kind: str, result: Mapping[str, Any]) -> Headline:
    """The headline of a result document of template kind ``kind``.

    Parameters
    ----------
    kind : str
        Template kind.
    result : Mapping of str to Any
        The run's result document.

    Returns
    -------
    Headline
        The headline.
    """
    value = result.get("value")
    if kind == "ensemble":
        pools = result.get("pool_circuits") or {}
        evaluated = sum(pools.values()) == len(result.get("values") or [])
        errors = result.get("max_error") or {}
        return Headline(
            "throughput (circuits/s)",
            value,
            "max |value - statevector| (any pool)",
            max(errors.values()) if errors else None,
            "ok (every circuit evaluated)",
            evaluated,
        )
    if kind == "variational":
        return Headline(
            "ground-state energy",
            value,
            "exact ground energy",
            result.get("exact_energy"),
            f"converged (within {result.get('tolerance')})",
            result.get("converged"),
        )
    if kind == "qml-training":
        return Headline(
            "test accuracy",
            value,
            "target accuracy",
            result.get("target_accuracy"),
            "reached",
            result.get("reached"),
        )
    if kind == "error-mitigation":
        unmitigated = result.get("unmitigated_error")
        return Headline(
            "mitigated error (best extrapolation)",
            value,
            "unmitigated error",
            unmitigated,
            "ok (mitigation lowered the error)",
            None if value is None or unmitigated is None else value < unmitigated,
        )
    reference = result.get("reference")
    std_error = float(result.get("std_error") or 0.0)
    if kind == "distributed-simulation":
        metric = (
            "probability |amplitude|^2"
            if result.get("quantity") == "amplitude"
            else "expectation value"
        )
        label = f"reference ({result.get('reference_method') or 'none'})"
    else:
        metric, label = "expectation value", "exact reference (direct simulation)"
    ok = None if value is None else _agrees(value, reference, std_error)
    return Headline(metric, value, label, reference, "ok (agrees with the reference)", ok)


def pictures(result: Mapping[str, Any]) -> list[Path]:
    """The pictures a run wrote: its ``figure`` and any other picture in its run directory.

    Parameters
    ----------
    result : Mapping of str to Any
        The run's result document.

    Returns
    -------
    list of pathlib.Path
        The pictures.
    """
    found = [Path(result["figure"])] if result.get("figure") else []
    run_dir = result.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        found += sorted(p for p in Path(run_dir).iterdir() if p.suffix in PICTURE_SUFFIXES)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve() if p.exists() else p, None)
    return list(unique)


__all__ = ["Headline", "headline", "pictures"]
