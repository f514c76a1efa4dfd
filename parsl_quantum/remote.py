"""Run parsl-quantum functions on a Globus Compute endpoint, with the mistakes caught here.

:func:`submit` sends one call of a module-level function (a motif run, a batch of cutting
subexperiments, any parsl-quantum task function) to an endpoint through a plain
``globus_compute_sdk.Executor`` and returns its future.

Why module-level: Globus Compute's default code serializer (``DillCode``) pickles a function that
its module exports under its own name *by reference* (module and name). The endpoint then imports
the same function from its own parsl-quantum install: the payload is small, no closure state is
dragged along, and the code that runs is the code installed there. A lambda, a function defined
inside another function, or one defined in ``__main__`` (a script or notebook) is pickled *by
value* instead, with whatever it references, and breaks as soon as the two Python versions or
installs differ. :func:`check_remote_function` refuses those before anything is sent, with a
one-line :class:`RemoteInvocationError`.

Endpoint ids come from the call or the environment (:func:`resolve_endpoint_id`); credentials
only ever from the environment (``GLOBUS_COMPUTE_CLIENT_ID``/``GLOBUS_COMPUTE_CLIENT_SECRET``) or
the SDK's saved login, never from arguments, and nothing here logs or writes them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import platform
import re
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globus_compute_sdk import Executor

logger = logging.getLogger(__name__)

#: The endpoint used when a call names none and no pool-specific variable is set.
ENDPOINT_ENV = "GLOBUS_COMPUTE_ENDPOINT"
#: ``PARSL_QUANTUM_ENDPOINT_<POOL>`` names the endpoint of one pool (``..._CPU``, ``..._QPU``).
POOL_ENDPOINT_ENV_PREFIX = "PARSL_QUANTUM_ENDPOINT_"


class RemoteInvocationError(ValueError):
    """A call that cannot be sent to an endpoint as asked; ``str()`` is one line that says why
    and what to do instead."""


def pool_endpoint_env(pool: str) -> str:
    """The environment variable naming the endpoint of ``pool``.

    Parameters
    ----------
    pool : str
        A pool name (``qpu`` -> ``PARSL_QUANTUM_ENDPOINT_QPU``).

    Returns
    -------
    str
        The variable's name.
    """
    return POOL_ENDPOINT_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", pool).upper()


def _as_endpoint_id(value: object, source: str) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise RemoteInvocationError(
            f"endpoint id {str(value)!r} from {source} is not a UUID "
            "(globus-compute-endpoint list shows the ids of your endpoints)"
        ) from None


def resolve_endpoint_id(
    endpoint_id: str | uuid.UUID | None = None,
    *,
    pool: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The endpoint id to use, as a canonical UUID string.

    In order: ``endpoint_id``; ``PARSL_QUANTUM_ENDPOINT_<POOL>`` when ``pool`` is given;
    ``GLOBUS_COMPUTE_ENDPOINT``.

    Parameters
    ----------
    endpoint_id : str or uuid.UUID or None
        An explicit endpoint id; taken first when given and not blank.
    pool : str or None
        A pool whose ``PARSL_QUANTUM_ENDPOINT_<POOL>`` variable is looked at next.
    environ : Mapping[str, str] or None
        The environment to read (``os.environ`` by default).

    Returns
    -------
    str
        The endpoint id as a canonical UUID string.

    Raises
    ------
    RemoteInvocationError
        Naming the places looked at when none is set, or naming the source of a value that is not
        a UUID.
    """
    env = os.environ if environ is None else environ
    if endpoint_id is not None and str(endpoint_id).strip():
        return _as_endpoint_id(endpoint_id, "the endpoint_id argument")
    names = ([pool_endpoint_env(pool)] if pool else []) + [ENDPOINT_ENV]
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return _as_endpoint_id(value, f"${name}")
    where = " or ".join(f"${n}" for n in names)
    what = f"pool {pool!r}" if pool else "this call"
    raise RemoteInvocationError(
        f"no Globus Compute endpoint id for {what}: pass endpoint_id=... or set {where}"
    )


def _describe(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}"


def _resolve(module: str, qualname: str) -> object:
    mod = importlib.import_module(module)
    obj: object = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _is_parsl_app_of(obj: object, fn: object) -> bool:
    """True when ``obj`` is a Parsl app (``@python_app`` at module level) wrapping ``fn``."""
    func = getattr(obj, "func", None)
    return (
        func is not None
        and type(obj).__module__.startswith("parsl.")
        and (inspect.unwrap(func) is fn)
    )


def check_remote_function(fn: Callable[..., Any]) -> None:
    """Check that ``fn`` can be shipped to an endpoint by reference.

    Accepted: a function, class or builtin that its module exports under its own qualified name
    (``functools.partial`` objects and bound methods are checked through to their function).
    Refused: lambdas, functions defined inside another function (closures included), anything
    defined in ``__main__``, and names that no longer resolve to the same object.

    Parameters
    ----------
    fn : Callable[..., Any]
        The callable to check.

    Raises
    ------
    RemoteInvocationError
        With a one-line reason when ``fn`` cannot be imported by reference on the endpoint.
    """
    if not callable(fn):
        raise RemoteInvocationError(f"{fn!r} is not callable")
    if isinstance(fn, functools.partial):
        check_remote_function(fn.func)
        return
    if inspect.ismethod(fn):
        check_remote_function(fn.__func__)
        return
    target: Any = fn
    if not (inspect.isfunction(fn) or inspect.isclass(fn) or inspect.isbuiltin(fn)):
        target = type(fn)  # a callable instance travels as its class plus its state
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    name = _describe(target)
    if not module or not qualname:
        raise RemoteInvocationError(f"{fn!r} has no module or name, so it cannot be imported")
    if qualname == "<lambda>" or qualname.endswith(".<lambda>"):
        raise RemoteInvocationError(
            f"{name} is a lambda: define it with def at module level of an importable module, "
            "so the endpoint imports it by reference"
        )
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>")[0]
        raise RemoteInvocationError(
            f"{name} is defined inside {outer}() (a local function or closure): move it to "
            "module level of an importable module, so the endpoint imports it by reference"
        )
    if module == "__main__":
        raise RemoteInvocationError(
            f"{qualname} is defined in __main__ (a script or notebook): move it into a module "
            "installed on the endpoint, so the endpoint imports it by reference"
        )
    try:
        found = _resolve(module, qualname)
    except (ImportError, AttributeError):
        raise RemoteInvocationError(
            f"{name} cannot be imported by that name here, so the endpoint cannot import it "
            "either: submit a function its module defines at top level"
        ) from None
    if found is not target and not _is_parsl_app_of(found, target):
        raise RemoteInvocationError(
            f"{name} names a different object than the one given (redefined or replaced by a "
            "decorator?): submit the module-level object itself"
        )


def endpoint_python_version(metadata: Mapping[str, Any]) -> str | None:
    """The Python version an endpoint registered.

    Looks at the top level and at a nested ``metadata`` mapping.

    Parameters
    ----------
    metadata : Mapping[str, Any]
        The endpoint's metadata, as the Globus Compute service returns it.

    Returns
    -------
    str or None
        The version (``"3.11.7"``), or None when the service did not report one.
    """
    for source in (metadata, metadata.get("metadata")):
        if isinstance(source, Mapping):
            version = source.get("python_version")
            if version:
                return str(version)
    return None


def check_python_version(metadata: Mapping[str, Any], local: str | None = None) -> None:
    """Refuse an endpoint whose Python *minor* version differs from ours.

    Function and argument pickles are not portable across minor versions. Micro differences and
    missing metadata pass.

    Parameters
    ----------
    metadata : Mapping[str, Any]
        The endpoint's metadata (see :func:`endpoint_python_version`).
    local : str or None
        The local Python version (this interpreter by default).

    Raises
    ------
    RemoteInvocationError
        When the minor versions differ.
    """
    remote = endpoint_python_version(metadata)
    if remote is None:
        return
    here = local or platform.python_version()
    if remote.split(".")[:2] != here.split(".")[:2]:
        raise RemoteInvocationError(
            f"endpoint runs Python {remote} but this client runs Python {here}: pickled "
            "functions and arguments do not cross minor versions; use the same Python 3.x "
            "on both sides"
        )


#: Endpoints already checked, per SDK executor (an executor is checked once per endpoint).
_CHECKED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def check_endpoint(executor: Executor, endpoint_id: str) -> None:
    """Compare the endpoint's Python version with ours, once per executor and endpoint.

    Reads the endpoint's metadata through the executor's ``client`` (one web-service call). A
    failure to fetch metadata is logged and passes: the submission itself reports it.

    Parameters
    ----------
    executor : globus_compute_sdk.Executor
        The SDK executor whose ``client`` reads the metadata.
    endpoint_id : str
        The endpoint to check.

    Raises
    ------
    RemoteInvocationError
        When the endpoint's Python minor version differs from ours.
    """
    seen = _CHECKED.setdefault(executor, set())
    if endpoint_id in seen:
        return
    client = getattr(executor, "client", None)
    getter = getattr(client, "get_endpoint_metadata", None)
    if getter is None:
        return
    try:
        metadata = getter(endpoint_id)
    except Exception as exc:  # network, permissions: the submission will say more
        logger.info("could not read metadata of endpoint %s: %s", endpoint_id, type(exc).__name__)
        return
    if isinstance(metadata, Mapping):
        check_python_version(metadata)
    seen.add(endpoint_id)


def _new_sdk_executor(endpoint_id: str) -> Executor:
    from globus_compute_sdk import Executor

    return Executor(endpoint_id=endpoint_id, label="parsl-quantum")


def submit(
    fn: Callable[..., Any],
    /,
    *args: Any,
    endpoint_id: str | uuid.UUID | None = None,
    executor: Executor | None = None,
    check_python: bool = True,
    **kwargs: Any,
) -> Future[Any]:
    """Run ``fn(*args, **kwargs)`` on a Globus Compute endpoint; return its future.

    ``fn`` must be a module-level function of a module installed on the endpoint (see
    :func:`check_remote_function`); arguments and the result travel with Globus Compute's own
    serializer, so plain data (numbers, arrays, dataclasses, compiled partition programs) is
    what to pass. ``endpoint_id`` and ``executor`` are keywords of this helper, so ``fn`` cannot
    receive keyword arguments of those names through it.

    Parameters
    ----------
    fn : Callable[..., Any]
        The function to run, shipped by reference.
    *args : Any
        Positional arguments of ``fn``.
    endpoint_id : str or uuid.UUID or None
        The endpoint to run on. Without ``executor``, resolved by :func:`resolve_endpoint_id`
        (``endpoint_id`` or ``$GLOBUS_COMPUTE_ENDPOINT``). A given executor without an endpoint
        gets ``endpoint_id``; one with a different endpoint is refused.
    executor : globus_compute_sdk.Executor or None
        An executor to submit through (share one for many calls:
        ``with Executor(endpoint_id=...) as gce: submit(fn, x, executor=gce)``). Without one, an
        executor is made for this call, using the SDK's saved login or the client credentials in
        the environment, and is shut down once the task is handed over (its result still arrives).
    check_python : bool
        Compare the endpoint's registered Python version with ours first (once per executor and
        endpoint).
    **kwargs : Any
        Keyword arguments of ``fn``.

    Returns
    -------
    concurrent.futures.Future
        The future of the call's result.

    Raises
    ------
    RemoteInvocationError
        When ``fn`` cannot be shipped by reference, no endpoint id is known, ``endpoint_id``
        differs from the executor's endpoint, or the Python versions differ.
    """
    check_remote_function(fn)
    if executor is None:
        target = resolve_endpoint_id(endpoint_id)
        owned: Executor | None = _new_sdk_executor(target)
        executor = owned
    else:
        owned = None
        current = getattr(executor, "endpoint_id", None)
        if endpoint_id is not None and str(endpoint_id).strip():
            target = _as_endpoint_id(endpoint_id, "the endpoint_id argument")
            if current is not None and str(current) != target:
                raise RemoteInvocationError(
                    f"endpoint_id {target} differs from the executor's endpoint {current}: "
                    "pass one or the other"
                )
            if current is None:
                executor.endpoint_id = target
        elif current is None:
            raise RemoteInvocationError(
                "no Globus Compute endpoint id: the executor has none; pass endpoint_id=... "
                f"or build it with Executor(endpoint_id=...) (or set ${ENDPOINT_ENV})"
            )
        else:
            target = str(current)
    assert executor is not None
    try:
        if check_python:
            check_endpoint(executor, target)
        return executor.submit(fn, *args, **kwargs)
    finally:
        if owned is not None:
            owned.shutdown(wait=False)
