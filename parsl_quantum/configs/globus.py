"""Pools on Globus Compute endpoints: one Parsl ``GlobusComputeExecutor`` per pool label.

Each remote pool (``cpu``, ``gpu``, ``qpu``...) is a :class:`GlobusComputePool`, Parsl's own
``GlobusComputeExecutor`` wrapping a ``globus_compute_sdk.Executor`` bound to the pool's endpoint,
plus what the planner reads from every pool: the ``backends`` it offers and its worker slots.
Endpoint ids come from the ``endpoints`` argument (a template's ``site.options.endpoints``) or the
environment:

``PARSL_QUANTUM_ENDPOINT_<POOL>``
    the endpoint of one pool (``PARSL_QUANTUM_ENDPOINT_CPU``, ``..._GPU``, ``..._QPU``);
``GLOBUS_COMPUTE_ENDPOINT``
    the endpoint of any pool without its own variable (alone, it makes a ``cpu`` pool).

Pools can be mixed: ``local_pools=("cpu",)`` keeps a local HTEX pool from
:func:`parsl_quantum.configs.local` next to remote ones. One multi-user endpoint can serve several
pools: give each pool a ``user_endpoint_config`` (``{"pool": "qpu", ...}``) for the endpoint
template in ``workflows/globus-endpoint/``.

Credentials: only the Globus Compute SDK's saved login or ``GLOBUS_COMPUTE_CLIENT_ID`` and
``GLOBUS_COMPUTE_CLIENT_SECRET`` in the environment; nothing here takes, logs or writes them.
Building the default SDK executors contacts the Globus Compute service (login, version check).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import jsonschema
from parsl.config import Config
from parsl.data_provider.staging import Staging
from parsl.executors import GlobusComputeExecutor
from parsl.executors.base import ParslExecutor
from parsl.executors.errors import InvalidResourceSpecification

from parsl_quantum.backends import BackendSpec, UnknownBackendError, canonical_name, get_backend
from parsl_quantum.configs.guard import require_main_guard
from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS, local
from parsl_quantum.configs.site import site_config
from parsl_quantum.executors import ACCEPTED_KEYS, select_backends
from parsl_quantum.remote import (
    ENDPOINT_ENV,
    POOL_ENDPOINT_ENV_PREFIX,
    check_remote_function,
    resolve_endpoint_id,
)

if TYPE_CHECKING:
    from globus_compute_sdk import Client, Executor

logger = logging.getLogger(__name__)

#: Keys Parsl's GlobusComputeExecutor understands itself and passes on to the endpoint; the
#: planner's keys (:data:`~parsl_quantum.executors.ACCEPTED_KEYS`) are checked and consumed here.
GLOBUS_RESOURCE_KEYS = frozenset({"user_endpoint_config"})


#: Builds the ``globus_compute_sdk.Executor`` of one pool from ``(pool, endpoint_id,
#: user_endpoint_config)``: a hook for tests and for sites that need their own client, task
#: group or batch size.
SDKExecutorFactory: TypeAlias = "Callable[[str, str, dict[str, Any] | None], Executor]"


class GlobusComputePool(GlobusComputeExecutor):
    """Parsl's ``GlobusComputeExecutor`` for one parsl-quantum pool.

    Differs from its parent only where a pool must:

    * it carries ``backends`` and ``workers`` for the planner (``max_workers_per_node`` mirrors
      ``workers``, as on local pools);
    * a task's resource specification is checked as on a local QPU-aware pool (unknown keys and
      backends the pool does not offer are refused, naming them), the chosen backend is written
      into the task's own ``parsl_resource_specification`` argument (how the task learns it on
      the endpoint), and only what Globus Compute understands is forwarded (the endpoint's
      engine would refuse the planner's keys);
    * functions the endpoint could not import by reference are refused before sending.

    Backends are described locally when possible; one that cannot be described here (``aer-gpu``
    on a client without a GPU, ``ibm:`` devices without credentials) is checked by name only.

    Parameters
    ----------
    executor : globus_compute_sdk.Executor
        The SDK executor that sends the pool's tasks to its endpoint.
    label : str
        Pool name (the Parsl executor label).
    backends : Sequence of str
        Backends the endpoint's workers offer.
    workers : int
        Worker slots of the endpoint for this pool.
    check_functions : bool
        Refuse functions the endpoint could not import by reference.
    storage_access : list of Staging or None
        Parsl staging providers, passed to the parent.
    working_dir : str or None
        Working directory on the endpoint, passed to the parent.

    Raises
    ------
    ValueError
        If ``backends`` is empty (or a single string) or ``workers`` is below 1.
    """

    def __init__(
        self,
        executor: Executor,
        label: str,
        *,
        backends: Sequence[str],
        workers: int = 1,
        check_functions: bool = True,
        storage_access: list[Staging] | None = None,
        working_dir: str | None = None,
    ) -> None:
        if isinstance(backends, str) or not backends:
            raise ValueError(f"pool {label!r}: backends must be a non-empty list of names")
        if int(workers) < 1:
            raise ValueError(f"pool {label!r}: workers must be >= 1")
        super().__init__(
            executor=executor, label=label, storage_access=storage_access, working_dir=working_dir
        )
        self.backends: tuple[str, ...] = tuple(dict.fromkeys(canonical_name(b) for b in backends))
        self.workers = int(workers)
        self.check_functions = check_functions
        self._specs: dict[str, BackendSpec] | None = None

    @property
    def max_workers_per_node(self) -> int:
        """Worker slots the planner may count on (the endpoint's workers for this pool)."""
        return self.workers

    @property
    def endpoint_id(self) -> str | None:
        """The endpoint this pool submits to."""
        ep = getattr(self.executor, "endpoint_id", None)
        return None if ep is None else str(ep)

    @property
    def backend_specs(self) -> dict[str, BackendSpec]:
        """Specs of the backends that can be described on this machine (resolved once)."""
        if self._specs is None:
            specs: dict[str, BackendSpec] = {}
            for name in self.backends:
                try:
                    specs[name] = get_backend(name).spec
                except Exception as exc:  # unavailable here, or needs the remote service
                    logger.debug("pool %s: %s is checked by name only (%s)", self.label, name, exc)
            self._specs = specs
        return self._specs

    def capacity(self) -> None:
        """No live view: an endpoint does not report its workers to the client, so a planner
        counts on :attr:`workers`."""
        return None

    def select_backend(self, resource_specification: Mapping[str, Any]) -> str:
        """The backend a task with this specification runs on.

        Parameters
        ----------
        resource_specification : Mapping of str to Any
            The task's resource specification.

        Returns
        -------
        str
            The backend's canonical name.

        Raises
        ------
        InvalidResourceSpecification
            Naming the offending keys (unknown keys, or a request no backend of the pool serves).
        """
        spec = {k: v for k, v in resource_specification.items() if k not in GLOBUS_RESOURCE_KEYS}
        where = f"pool {self.label!r}"
        specs = self.backend_specs
        if len(specs) == len(self.backends):
            return select_backends(spec, specs, where)[0]
        unknown = set(spec) - set(ACCEPTED_KEYS)
        if unknown:
            raise InvalidResourceSpecification(
                unknown,
                f"unknown resource specification key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"accepted keys: {', '.join((*ACCEPTED_KEYS, *sorted(GLOBUS_RESOURCE_KEYS)))}",
            )
        requested = spec.get("backend")
        if requested is None:
            return self.backends[0]
        try:
            name = canonical_name(str(requested))
        except UnknownBackendError as exc:
            raise InvalidResourceSpecification({"backend"}, str(exc)) from None
        if name not in self.backends:
            raise InvalidResourceSpecification(
                {"backend"},
                f"backend {requested!r} is not served by {where}; its backends: "
                f"{', '.join(self.backends)}",
            )
        return name

    def validate_resource_spec(self, resource_specification: dict[str, Any]) -> None:
        """Reject unknown keys and requests no backend of this pool can serve.

        Parameters
        ----------
        resource_specification : dict of str to Any
            The task's resource specification.

        Raises
        ------
        InvalidResourceSpecification
            As :meth:`select_backend`.
        """
        self.select_backend(resource_specification or {})

    def submit(
        self,
        func: Callable[..., Any],
        resource_specification: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future[Any]:
        """Check the task, bind its backend, and submit it through Parsl's executor.

        Parameters
        ----------
        func : Callable
            The app function.
        resource_specification : dict of str to Any
            The task's resource specification.
        *args : Any
            Positional arguments of ``func``.
        **kwargs : Any
            Keyword arguments of ``func``; a ``parsl_resource_specification`` among them gets the
            chosen backend.

        Returns
        -------
        concurrent.futures.Future
            The task's future from Parsl's ``GlobusComputeExecutor``.

        Raises
        ------
        InvalidResourceSpecification
            As :meth:`select_backend`.
        """
        spec = dict(resource_specification or {})
        backend = self.select_backend(spec)
        if self.check_functions:
            # Parsl wraps app functions (functools.wraps); the user's function is innermost.
            check_remote_function(inspect.unwrap(func))
        if "parsl_resource_specification" in kwargs:
            task_spec = {k: v for k, v in spec.items() if k not in GLOBUS_RESOURCE_KEYS}
            kwargs["parsl_resource_specification"] = {**task_spec, "backend": backend}
        forwarded = {k: v for k, v in spec.items() if k in GLOBUS_RESOURCE_KEYS}
        return super().submit(func, forwarded, *args, **kwargs)


def endpoint_pools_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Pools named by ``PARSL_QUANTUM_ENDPOINT_<POOL>`` variables.

    Parameters
    ----------
    environ : Mapping of str to str or None
        The environment; ``os.environ`` when omitted.

    Returns
    -------
    dict of str to str
        ``{pool: endpoint id}``.
    """
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith(POOL_ENDPOINT_ENV_PREFIX) and value.strip():
            pool = name[len(POOL_ENDPOINT_ENV_PREFIX) :].lower()
            if pool:
                found[pool] = value.strip()
    return found


def _remote_pool_names(
    endpoints: Mapping[str, str | None] | None,
    pools: Sequence[str] | None,
    local_pools: Sequence[str],
    env: Mapping[str, str],
) -> list[str]:
    if pools is not None:
        return [p for p in pools if p not in local_pools]
    if endpoints is not None:
        clash = sorted(set(endpoints) & set(local_pools))
        if clash:
            raise ValueError(f"pool {clash[0]!r} is both in local_pools and in endpoints")
        return list(endpoints)
    names = [p for p in endpoint_pools_from_env(env) if p not in local_pools]
    if not names and env.get(ENDPOINT_ENV, "").strip() and "cpu" not in local_pools:
        names = ["cpu"]
    if not names and not local_pools:
        raise ValueError(
            "no Globus Compute pools: pass endpoints={'cpu': '<endpoint id>', ...}, set "
            f"{POOL_ENDPOINT_ENV_PREFIX}<POOL> or ${ENDPOINT_ENV}, or list local_pools"
        )
    return names


def _pool_backends(
    pool: str, backends: Mapping[str, Sequence[str]], uec: Mapping[str, Any]
) -> tuple[str, ...]:
    chosen = backends.get(pool) or uec.get("backends") or DEFAULT_POOL_BACKENDS.get(pool)
    if not chosen:
        raise ValueError(
            f"pool {pool!r} has no default backends: pass backends={{{pool!r}: [...]}}"
        )
    return tuple(chosen)


def _pool_workers(pool: str, workers: Mapping[str, int], uec: Mapping[str, Any]) -> int:
    if pool in workers:
        return int(workers[pool])
    if "workers_per_node" in uec:
        return int(uec["workers_per_node"]) * int(uec.get("nodes_per_block", 1))
    accelerators = uec.get("accelerators")
    if accelerators is not None:
        return accelerators if isinstance(accelerators, int) else len(accelerators)
    return 1


def default_executor_factory(client: Client | None = None) -> SDKExecutorFactory:
    """The factory :func:`globus` uses by default.

    It makes one ``globus_compute_sdk.Executor`` per pool, all sharing one ``Client`` (one
    login, one version check), made on first use.

    Parameters
    ----------
    client : globus_compute_sdk.Client or None
        The client to share; made on first use when omitted.

    Returns
    -------
    SDKExecutorFactory
        The factory.
    """
    shared: list[Client] = [client] if client is not None else []

    def make(pool: str, endpoint_id: str, user_endpoint_config: dict[str, Any] | None) -> Executor:
        from globus_compute_sdk import Client, Executor

        if not shared:
            shared.append(Client())
        return Executor(
            endpoint_id=endpoint_id,
            client=shared[0],
            label=f"parsl-quantum-{pool}",
            user_endpoint_config=user_endpoint_config,
        )

    return make


def globus(
    endpoints: Mapping[str, str | None] | None = None,
    *,
    run_dir: str | Path = "runinfo",
    pools: Sequence[str] | None = None,
    local_pools: Sequence[str] = (),
    backends: Mapping[str, Sequence[str]] | None = None,
    workers: Mapping[str, int] | None = None,
    user_endpoint_config: Mapping[str, Mapping[str, Any]] | None = None,
    monitoring: bool = True,
    check_functions: bool = True,
    client: Client | None = None,
    executor_factory: SDKExecutorFactory | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """A Parsl config whose pools run on Globus Compute endpoints (and, optionally, locally).

    Without ``endpoints``, every ``PARSL_QUANTUM_ENDPOINT_<POOL>`` variable makes a pool
    (``GLOBUS_COMPUTE_ENDPOINT`` alone makes ``cpu``).

    Parameters
    ----------
    endpoints : Mapping of str to (str or None) or None
        ``{pool: endpoint id}``; a pool mapped to ``None`` takes its id from the environment.
    run_dir : str or pathlib.Path
        The run's directory.
    pools : Sequence of str or None
        The pools to build (a template's ``pools``): each is local when listed in
        ``local_pools``, else remote, with its endpoint from ``endpoints`` or the environment.
    local_pools : Sequence of str
        Pools built by :func:`parsl_quantum.configs.local` under the same run directory.
    backends : Mapping of str to Sequence of str or None
        What each remote pool offers the planner (default: the local pools' backends, else the
        ``backends`` of its ``user_endpoint_config``).
    workers : Mapping of str to int or None
        Worker slots of each remote pool (default: the ``workers_per_node``/``accelerators`` of
        its ``user_endpoint_config``, else one worker).
    user_endpoint_config : Mapping of str to Mapping of str to Any or None
        Sent with every task of a pool, for multi-user endpoints built from the parsl-quantum
        endpoint template.
    monitoring : bool
        Write one Parsl monitoring database for all pools.
    check_functions : bool
        Refuse functions an endpoint could not import by reference.
    client : globus_compute_sdk.Client or None
        The ``Client`` to share.
    executor_factory : SDKExecutorFactory or None
        Replaces how each pool's SDK executor is made.
    environ : Mapping of str to str or None
        Replaces ``os.environ`` when looking up endpoint ids.

    Returns
    -------
    parsl.config.Config
        The configuration.

    Raises
    ------
    ValueError
        If no pool is named, a pool is both local and in ``endpoints``, or a remote pool has no
        backends to offer.
    """
    require_main_guard()
    env = os.environ if environ is None else environ
    endpoints = dict(endpoints) if endpoints is not None else None
    backends = dict(backends or {})
    workers = dict(workers or {})
    uecs = {k: dict(v) for k, v in (user_endpoint_config or {}).items()}
    if isinstance(local_pools, str):
        local_pools = (local_pools,)
    remote = _remote_pool_names(endpoints, pools, local_pools, env)
    if pools is not None:
        local_pools = [p for p in local_pools if p in pools]
    factory = executor_factory or default_executor_factory(client)

    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    executors: list[ParslExecutor] = []
    if local_pools:
        local_config = local(
            run_path,
            pools=tuple(local_pools),
            workers=workers,
            backends={k: v for k, v in backends.items() if k in local_pools},
            monitoring=False,
        )
        executors.extend(local_config.executors)
    for pool in remote:
        endpoint_id = resolve_endpoint_id((endpoints or {}).get(pool), pool=pool, environ=env)
        uec = uecs.get(pool, {})
        sdk_executor = factory(pool, endpoint_id, dict(uec) or None)
        executors.append(
            GlobusComputePool(
                sdk_executor,
                label=pool,
                backends=_pool_backends(pool, backends, uec),
                workers=_pool_workers(pool, workers, uec),
                check_functions=check_functions,
            )
        )
    return site_config(executors, run_path, monitoring=monitoring, try_reports=False)


#: JSON Schema of a template's ``site.options`` when ``site.name`` is ``globus``: the keyword
#: arguments of :func:`globus` that a YAML file can hold.
SITE_OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "endpoints": {
            "type": "object",
            "additionalProperties": {"type": ["string", "null"]},
        },
        "local_pools": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "backends": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
            },
        },
        "workers": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
        "user_endpoint_config": {"type": "object", "additionalProperties": {"type": "object"}},
        "check_functions": {"type": "boolean"},
    },
    "additionalProperties": False,
}


def globus_from_site_options(
    options: Mapping[str, Any],
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo",
    monitoring: bool = True,
    **hooks: Any,
) -> Config:
    """:func:`globus` from a template's ``site.options``.

    Parameters
    ----------
    options : Mapping of str to Any
        The ``site.options``, validated against :data:`SITE_OPTIONS_SCHEMA`.
    pools : Sequence of str or None
        The template's pools.
    run_dir : str or pathlib.Path
        The run's directory.
    monitoring : bool
        Write Parsl's monitoring database.
    **hooks : Any
        Passed through to :func:`globus` (``client``, ``executor_factory``, ``environ``).

    Returns
    -------
    parsl.config.Config
        The configuration.

    Raises
    ------
    ValueError
        Naming the offending field.
    """
    errors = sorted(
        jsonschema.Draft202012Validator(SITE_OPTIONS_SCHEMA).iter_errors(dict(options)),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in ("site", "options", *err.absolute_path))
        message = err.message
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            allowed = ", ".join(sorted(err.schema.get("properties", {})))
            path, message = f"{path}.{extra[0]}", f"unknown option (allowed: {allowed})"
        raise ValueError(f"{path}: {message}")
    return globus(
        options.get("endpoints"),
        run_dir=run_dir,
        pools=pools,
        local_pools=tuple(options.get("local_pools", ())),
        backends=options.get("backends"),
        workers=options.get("workers"),
        user_endpoint_config=options.get("user_endpoint_config"),
        check_functions=bool(options.get("check_functions", True)),
        monitoring=monitoring,
        **hooks,
    )
