"""The ``parsl-quantum`` command: run, plan and manage workflow templates.

Bad input (template, circuit, observable, pools, limits) is reported as one line on stderr with
exit code 2, before any pool starts or any task is submitted.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import yaml

from parsl_quantum.workflow.template import (
    Template,
    TemplateError,
    full_schema,
    load_template,
    read_template,
    validate,
)

if TYPE_CHECKING:
    from parsl_quantum.executors import PoolInfo

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: Console width of tables written to a pipe or a file: wide enough that no cell is cut.
PIPE_WIDTH = 250
#: Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: What ``run`` records in the run directory besides the template, for ``run --resume``.
RUN_INFO = "run.json"


class BadInput(Exception):
    """Raised for input errors detected before submission (exit code 2)."""


def templates_dir() -> Path:
    """The published templates shipped with the package.

    Returns
    -------
    pathlib.Path
        Their directory.
    """
    return Path(__file__).resolve().parent.parent / "templates"


def published_templates() -> dict[str, Path]:
    """Published template names (file stems) and their paths.

    Returns
    -------
    dict of str to pathlib.Path
        Paths by name, sorted.
    """
    return {p.stem: p for p in sorted(templates_dir().glob("*.yaml"))}


def template_path(name: str) -> Path:
    """A template file, or the file of a published template of that name (``templates list``).

    An existing file wins over a published name.

    Parameters
    ----------
    name : str
        A path, or a published template's name.

    Returns
    -------
    pathlib.Path
        The template file (a path that does not exist is returned as is: loading it reports
        what is wrong with it).

    Raises
    ------
    BadInput
        When ``name`` is neither a template file nor a published template.
    """
    path = Path(name)
    if path.is_file():
        return path
    published = published_templates()
    if name in published:
        return published[name]
    if path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        return path  # a path: loading it reports what is wrong with it
    raise BadInput(
        f"{name!r} is neither a template file nor a published template ({', '.join(published)})"
    )


#: ``site.options`` the local site takes, passed to :func:`parsl_quantum.configs.local`.
LOCAL_SITE_OPTIONS = ("backends", "backend_options")


def _local_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(LOCAL_SITE_OPTIONS))
    if unknown:
        raise BadInput(
            f"site.options.{unknown[0]}: unknown option of the local site "
            f"(allowed: {', '.join(LOCAL_SITE_OPTIONS)})"
        )
    for key, value in options.items():
        if not isinstance(value, dict) or not all(
            isinstance(v, dict if key == "backend_options" else list) for v in value.values()
        ):
            shape = "backend name -> options" if key == "backend_options" else "pool -> [names]"
            raise BadInput(f"site.options.{key}: expected a mapping of {shape}")
    return options


@runtime_checkable
class UsesPools(Protocol):
    """A prepared job that knows which pools its plan sends tasks to."""

    @property
    def pools_used(self) -> list[str]:
        """Labels of the pools the plan assigns tasks to."""
        ...


@runtime_checkable
class ReachesPools(Protocol):
    """A prepared job that knows which pools any of its tasks may go to, failovers included."""

    def pools_reachable(self, pools: Mapping[str, PoolInfo]) -> list[str]:
        """Labels of the pools the plan or a failover may send a task to.

        Parameters
        ----------
        pools : mapping of str to PoolInfo
            Every pool of the run, described.

        Returns
        -------
        list of str
            The labels.
        """
        ...


def _site_config(
    template: Template, run_dir: Path, monitoring: bool, cold: Sequence[str] = ()
) -> Any:
    """The Parsl Config of the template's site and pools.

    Parameters
    ----------
    template : Template
        The validated template (its ``site``, ``pools`` and ``run`` settings).
    run_dir : Path
        The run directory (Parsl's files and the monitoring database go there).
    monitoring : bool
        Write Parsl's monitoring database.
    cold : sequence of str
        Pools of the local site that start with no block (the plan sends them nothing);
        Parsl's scaling strategy starts one if work is sent there. Other sites start their
        pools as configured.

    Returns
    -------
    parsl.config.Config
        The Config to load.
    """
    from parsl_quantum import configs

    site = template.site
    options = dict(site.get("options", {}))
    workers = template.data.get("run", {}).get("workers")
    if site["name"] == "local":
        return configs.local(
            run_dir,
            template.pools,
            workers=workers,
            monitoring=monitoring,
            force_workers=bool(template.data.get("run", {}).get("force_workers", False)),
            cold=cold,
            **_local_options(options),
        )
    if site["name"] in ("slurm", "pbs"):
        from parsl_quantum.configs.clusters import ClusterPool, check_site_options
        from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS

        check_site_options(site["name"], options)
        monitoring = bool(options.pop("monitoring", monitoring))

        pools = {
            p: ClusterPool(backends=DEFAULT_POOL_BACKENDS.get(p, ("aer",))) for p in template.pools
        }
        factory = configs.slurm if site["name"] == "slurm" else configs.pbs
        return factory(run_dir, pools, monitoring=monitoring, **options)
    from parsl_quantum.configs.globus import globus_from_site_options

    return globus_from_site_options(
        options, pools=template.pools, run_dir=run_dir, monitoring=monitoring
    )


def _import_parsl(template: Template, monitoring: bool) -> None:
    """Import Parsl for a run of ``template``; on the local site, without the packages the run
    cannot use (:func:`parsl_quantum.lean_start.driver_packages_hidden`: the Globus Compute
    SDK and boto3, and SQLAlchemy unless the run is monitored), which takes ``import parsl``
    from about 0.6 s to 0.3 s. They stay importable afterwards."""
    from parsl_quantum.lean_start import DRIVER_ONLY, driver_packages_hidden

    hidden: tuple[str, ...] = ()
    if template.site["name"] == "local":
        hidden = tuple(n for n in DRIVER_ONLY if not (monitoring and n == "sqlalchemy"))
    with driver_packages_hidden(hidden):
        import parsl  # noqa: F401


def _default_run_dir(template: Template) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{template.name}-{stamp}"


def _print_result(result: dict[str, Any], kind: str) -> None:
    from rich.table import Table

    from parsl_quantum.workflow.summary import headline, pictures

    def number(val: Any) -> str:
        return "n/a" if val is None else f"{val:.12g}"

    console = _console()
    table = Table(title=f"parsl-quantum {kind}", show_header=False)
    head = headline(kind, result)
    table.add_row(head.metric, number(head.value))
    if result.get("std_error") is not None:
        label = "std_error (statistical)" if kind == "circuit-cutting" else "std_error"
        table.add_row(label, f"{result['std_error']:.3g}")
    table.add_row(head.reference_label, number(head.reference))
    table.add_row(head.flag_label, {True: "yes", False: "NO", None: "n/a"}[head.flag])
    if result.get("reference") is not None and "value" in result and kind != "ensemble":
        table.add_row("|value - reference|", f"{abs(result['value'] - result['reference']):.3g}")
    config = result.get("configuration")
    if isinstance(config, dict) and "partitions" in config:
        parts = ", ".join(f"{p['qubits']}q@{p['pool']}" for p in config["partitions"])
        table.add_row("partitions", parts)
        cuts = config.get("cuts", [])
        where = ", ".join(
            f"{c['kind']} {c.get('gate', '')}@{c.get('instruction', '?')}"
            f" q{','.join(map(str, c.get('qubits', [])))}"
            for c in cuts[:6]
        )
        more = f", ... ({len(cuts) - 6} more)" if len(cuts) > 6 else ""
        table.add_row("cuts", f"{len(cuts)}" + (f": {where}{more}" if cuts else ""))
        if config.get("noisy_backends"):
            table.add_row(
                "device bias",
                f"the value also carries the noise bias of {', '.join(config['noisy_backends'])}, "
                "not included in std_error",
            )
        table.add_row("subexperiments", str(config.get("subexperiments")))
        table.add_row("why", str(config.get("reason", "")))
    if "tasks" in result:
        table.add_row("tasks", str(result["tasks"]))
    for stage, secs in (result.get("timings") or {}).items():
        table.add_row(f"time: {stage}", f"{secs:.3f} s")
    if isinstance(config, dict):
        for pool, n in (config.get("retries") or {}).items():
            table.add_row(f"retries: {pool}", str(n))
        moves = Counter((m["from_pool"], m["to_pool"]) for m in config.get("failovers") or [])
        for (src, dst), n in moves.items():
            table.add_row("failovers", f"{n} task(s) {src} -> {dst}")
        if "reused_from_checkpoint" in config:
            table.add_row("reused from checkpoint", str(config["reused_from_checkpoint"]))
        if config.get("dropped_from_checkpoint"):
            table.add_row(
                "dropped from checkpoint (recomputed)", str(config["dropped_from_checkpoint"])
            )
    for picture in pictures(result):
        table.add_row("picture", str(picture))
    table.add_row("run_dir", str(result.get("run_dir")))
    console.print(table)


def _resume_source(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """The template file, its base directory (for relative paths) and the run directory of a
    ``run --resume RUN_DIR``, which re-reads the run's own template and nothing else."""
    if args.template or args.set or args.run_dir:
        raise BadInput(
            "--resume re-runs RUN_DIR's own template: give no TEMPLATE, --set or --run-dir"
        )
    run_dir = Path(args.resume)
    source = run_dir / "template.yaml"
    if not source.is_file():
        raise BadInput(f"--resume {run_dir}: not a run directory (no template.yaml)")
    try:
        base = Path(json.loads((run_dir / RUN_INFO).read_text())["base_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        base = run_dir
    return source, base, run_dir


def _pin_profile(data: dict[str, Any], run_dir: Path) -> None:
    """Copy the planner's cost profile into the run directory and point the template at the
    copy, so that a resumed run plans exactly the same tasks even after a new calibration."""
    from parsl_quantum.planner.cost import default_profile_path

    planner = data.get("planner")
    if not isinstance(planner, dict):
        return
    source = Path(planner["profile"]) if planner.get("profile") else default_profile_path()
    if not source.is_file():
        return
    copy = (run_dir / "profile.json").resolve()
    if source.resolve() != copy:
        shutil.copyfile(source, copy)
    planner["profile"] = str(copy)


def cmd_run(args: argparse.Namespace) -> int:
    """``parsl-quantum run``: validate and plan a template, then run it on its pools.

    Everything that can fail on bad input (template, circuit, pools, planning) is checked
    before the first task. On the local site the simulator pools start while the driver
    prepares and plans (:mod:`parsl_quantum.workflow.startup`); bad input found then stops them
    and leaves no Parsl run behind. The other pools start once the plan is made: cold when it
    sends them nothing, and not at all when no task of the run can reach them.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``run`` arguments.

    Returns
    -------
    int
        0 on success, 2 for bad input, 1 for a failed run, 130 when interrupted.
    """
    from parsl_quantum.workflow.rundir import check_writable, claim_run_dir, shut_down

    if args.help:
        return _run_help(args)
    started = time.perf_counter()
    launched = time.time()
    lock = None
    early: PoolStart | None = None
    try:
        if args.resume:
            source, base_dir, run_dir = _resume_source(args)
            data, lines = read_template(source)
            template = validate(data, str(source), lines, body=False)
        elif args.template:
            source = template_path(args.template)
            base_dir = source.resolve().parent
            data, lines = read_template(source, args.set or [])
            # the envelope (pools, site, run) is all the pools need; the kind's own fields
            # are checked while they start
            template = validate(data, str(source), lines, body=False)
            run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(template)
        else:
            raise BadInput("run needs a TEMPLATE, or --resume RUN_DIR")
        if args.json:
            check_writable(Path(args.json))
        lock = claim_run_dir(run_dir, resume=bool(args.resume))
        monitoring = (
            args.monitoring
            if args.monitoring is not None
            else bool(template.data.get("run", {}).get("monitoring", False))
        )
        _import_parsl(template, monitoring)
        import parsl

        from parsl_quantum.configs.site import with_executors
        from parsl_quantum.executors import pool_infos
        from parsl_quantum.reliability import Reliability, template_digest
        from parsl_quantum.workflow.context import RunContext
        from parsl_quantum.workflow.progress import ProgressRecorder, RunProgress
        from parsl_quantum.workflow.startup import (
            PoolStart,
            first_task_after_pool_start,
            split_early,
        )

        config = _site_config(template, run_dir, monitoring)
        executors = list(config.executors)
        failover = bool(template.data.get("execution", {}).get("failover", False))
        reliability = Reliability(
            failover=failover, resume=bool(args.resume), run_key=template_digest(template.data)
        )
        now, later = split_early(executors)
        if now and template.site["name"] == "local":
            config = with_executors(config, now)
            guards = reliability.apply(config)
            early = PoolStart(config).start()
            early.wait_launched()
        template = validate(data, str(source), lines)
        module = template.kind.load()
        plans = hasattr(module, "prepare")
        pools = pool_infos(executors)
        missing = [p for p in template.pools if p not in pools]
        if missing:
            raise BadInput(
                f"pool {missing[0]!r} is not available here (have: {', '.join(pools) or 'none'})"
            )
        prepared = module.prepare(template.data, pools, base_dir) if plans else None
        used = set(prepared.pools_used) if isinstance(prepared, UsesPools) else set(pools)
        reachable = (
            set(prepared.pools_reachable(pools))
            if isinstance(prepared, ReachesPools)
            else set(pools)
        )
        if early is None:
            # every pool in one Config; those the plan sends nothing start cold
            cold = [p for p in template.pools if p not in used]
            if cold:
                config = _site_config(template, run_dir, monitoring, cold)
            config = with_executors(config, [e for e in config.executors if e.label in reachable])
            guards = reliability.apply(config)
        else:
            later = [e for e in later if e.label in reachable]
            for executor in later:
                if executor.label not in used:
                    executor.provider.init_blocks = 0
            reliability.guard(later)
    except BaseException as exc:
        if early is not None:
            early.abandon()
        if lock is not None:
            lock.release()
        if isinstance(exc, (BadInput, ValueError, OSError)):
            return _bad_input(_one_line(exc))
        raise
    if not args.resume:
        _pin_profile(template.data, run_dir)
        (run_dir / "template.yaml").write_text(yaml.safe_dump(template.data, sort_keys=False))
        info = {
            "template": str(source.resolve()),
            "base_dir": str(base_dir),
            "pools": {n: {"kind": p.kind, "workers": p.workers} for n, p in pools.items()},
        }
        (run_dir / RUN_INFO).write_text(json.dumps(info, indent=2))
    dfk = None
    try:
        if early is not None:
            dfk = early.result()
            t0 = time.perf_counter()
            if later:
                guards.add_pools({e.label: pools[e.label] for e in later})
                dfk.add_executors(later)
            startup = early.seconds + time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            dfk = parsl.load(config)
            startup = time.perf_counter() - t0
        running = {label: pools[label] for label in dfk.executors if label in pools}
        with RunProgress(live=None if not args.quiet else False) as progress:
            # progress counts every task the run records, so its totals are the tasks submitted
            ctx = RunContext(
                run_dir,
                running,
                ProgressRecorder(run_dir / "tasks.csv", progress=progress),
                resume=bool(args.resume),
                prepared=prepared,
            )
            result = template.kind.runner(template.data, ctx)
        _check_finite(result)
    except KeyboardInterrupt:
        print(
            f"parsl-quantum: interrupted; finished tasks are checkpointed: "
            f"parsl-quantum run --resume {shlex.quote(str(run_dir))}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as exc:
        print(f"parsl-quantum: run failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if dfk is not None:
            shut_down(dfk)
        if lock is not None:
            lock.release()
    guards.record(result.setdefault("configuration", {}))
    not_started = [p for p in pools if p not in running]
    if not_started:
        result["configuration"]["pools_not_started"] = not_started
    timings = result.setdefault("timings", {})
    timings["startup"] = startup
    first_task = first_task_after_pool_start(run_dir, since=launched)
    if first_task is not None:
        timings["first_task_after_pool_start"] = first_task
    timings["total"] = time.perf_counter() - started
    result["run_dir"] = str(run_dir)
    try:
        text = json.dumps(result, indent=2, default=float, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere in the result: not valid JSON
        print("parsl-quantum: run failed: the result holds a non-finite number", file=sys.stderr)
        return EXIT_FAILED
    (run_dir / "result.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    _print_result(result, template.kind.name)
    return 0


def _run_help(args: argparse.Namespace) -> int:
    """``run --help``: the options, then the ``--set`` keys of the named template (types and
    current values, from its kind's schema), or the published templates to name."""
    from rich.table import Table

    from parsl_quantum.workflow.settings import set_keys

    args.parser.print_help()
    console = _console()
    if not args.template:
        print("\npublished templates (run NAME --help lists its --set keys):")
        for name in published_templates():
            print(f"  {name}")
        return 0
    try:
        template = load_template(template_path(args.template))
    except (BadInput, ValueError, OSError) as exc:
        return _bad_input(_one_line(exc))
    table = Table(title=f"--set keys of {template.name} ({template.kind.name})")
    for col in ("key", "type", "value in the template"):
        table.add_column(col)
    for key in set_keys(template):
        table.add_row(key.key, key.type, key.shown_value)
    console.print(table)
    return 0


def _console() -> Any:
    """A rich console on stdout: a terminal keeps its width; a pipe or file gets whole lines
    (rich would otherwise squeeze tables to 80 columns there)."""
    from rich.console import Console

    wide = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, markup=False, width=wide)


def _check_finite(result: dict[str, Any]) -> None:
    """A result whose value or standard error is NaN or infinite is an error, not an answer."""
    for key in ("value", "std_error"):
        value = result.get(key)
        if isinstance(value, int | float) and not math.isfinite(value):
            raise ValueError(f"the {key} is not finite ({value}): the run produced no answer")


def cmd_plan(args: argparse.Namespace) -> int:
    """``parsl-quantum plan``: plan a circuit-cutting template without running it.

    Prints the plan, and writes it as JSON, GraphML or pictures where asked.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``plan`` arguments.

    Returns
    -------
    int
        0 on success, 2 for bad input.
    """
    from parsl_quantum.executors import pool_infos
    from parsl_quantum.workflow import cut_and_run

    try:
        source = template_path(args.template)
        template = load_template(source, args.set or [])
        if template.kind.name != "circuit-cutting":
            raise BadInput(f"`plan` works on circuit-cutting templates, not {template.kind.name!r}")
        config = _site_config(template, Path(args.run_dir or "runs/plan"), monitoring=False)
        pools = {k: v for k, v in pool_infos(config).items() if k in template.pools}
        prepared = cut_and_run.prepare(template.data, pools, source.resolve().parent)
    except (BadInput, ValueError, OSError) as exc:
        return _bad_input(_one_line(exc))
    from parsl_quantum.planner.report import print_plan, write_graph

    print_plan(prepared.plan, console=_console())
    if args.json:
        plan = prepared.plan
        doc = {
            "chosen": plan.chosen.summary(),
            "reason": plan.reason,
            "cost_model": plan.model_source,
            "candidates": [c.summary() for c in plan.candidates],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=float))
    if args.graphml or args.picture:
        write_graph(prepared.plan.chosen.graph, graphml=args.graphml, picture=args.picture)
    if args.circuit_picture:
        from parsl_quantum.planner.report import draw_cut_circuit

        draw_cut_circuit(prepared.circuit, prepared.plan, args.circuit_picture)
        print(f"circuit with cuts: {args.circuit_picture}")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    """``parsl-quantum templates``: list, show, print the schema of, or validate templates.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``templates`` arguments.

    Returns
    -------
    int
        0 on success, 2 for bad input (or when a template does not validate).
    """
    published = published_templates()
    if args.action == "list":
        for name, path in published.items():
            data = yaml.safe_load(path.read_text())
            print(f"{name:28s} {data.get('kind', '?'):24s} {data.get('description', '')}")
        return 0
    if args.action == "show":
        if not args.names:
            return _bad_input("templates show needs a NAME")
        for name in args.names:
            if name not in published:
                return _bad_input(f"no published template {name!r}")
            print(published[name].read_text(), end="")
        return 0
    if args.action == "schema":
        kind = args.names[0] if args.names else None
        try:
            schema = full_schema(kind)
        except TemplateError as exc:
            return _bad_input(str(exc))
        print(json.dumps(schema, indent=2))
        return 0
    status = 0
    for name in args.names or [str(p) for p in published.values()]:
        path = published.get(name, Path(name))
        try:
            template = load_template(path)
            print(f"{path}: ok ({template.kind.name})")
        except TemplateError as exc:
            status = _bad_input(str(exc))
    return status


def cmd_report(args: argparse.Namespace) -> int:
    """``parsl-quantum report``: print the report of a run directory and draw its timeline.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``report`` arguments.

    Returns
    -------
    int
        0 on success, 2 for bad input.
    """
    from parsl_quantum.workflow.run_report import (
        TIMELINE,
        ReportError,
        draw_timeline,
        load_report,
        print_report,
    )

    try:
        report = load_report(args.run_dir)
        picture = Path(args.picture) if args.picture else Path(args.run_dir) / TIMELINE
        print_report(report)
        if report.lanes:
            draw_timeline(report, picture)
            print(f"timeline: {picture}")
    except (ReportError, OSError) as exc:
        return _bad_input(_one_line(exc))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``parsl-quantum doctor``: print what this installation can do, as a table or as JSON.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``doctor`` arguments.

    Returns
    -------
    int
        0.
    """
    from parsl_quantum.workflow.doctor import diagnose, print_doctor

    report = diagnose()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_doctor(report)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``parsl-quantum calibrate``: calibrate the local pools and write the cost-model profile.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``calibrate`` arguments.

    Returns
    -------
    int
        0 on success, 2 for bad input.
    """
    from rich.table import Table

    from parsl_quantum.workflow.calibration import run_calibration

    pools = [p.strip() for p in args.pools.split(",") if p.strip()]
    try:
        workers = {k: int(v) for k, v in (w.split("=", 1) for w in args.workers or [])}
    except ValueError:
        return _bad_input("--workers takes POOL=N")
    try:
        path, calibration = run_calibration(
            pools,
            profile=args.profile,
            workers=workers,
            run_dir=args.run_dir,
            repeats=args.repeats,
            quick=args.quick,
            max_qubits=args.max_qubits,
            log=lambda line: print(line, file=sys.stderr),
        )
    except (ValueError, OSError) as exc:
        return _bad_input(_one_line(exc))
    table = Table(title=f"cost-model profile {path}")
    for col in ("pool", "coefficient", "value", ""):
        table.add_column(col)
    model = calibration.model
    for name, coef in model.pools.items():
        for key, value in vars(coef).items():
            table.add_row(name, key, f"{value:.4g}", "")
        for kind, fit in calibration.fits[name].items():
            table.add_row(name, f"{kind} fit", f"{fit.median_error:.1%}", f"{fit.samples} probes")
    for key, value in vars(model.driver).items():
        table.add_row("driver", key, f"{value:.4g}", "")
    _console().print(table)
    print(f"calibrated in {calibration.seconds:.0f} s; profile written to {path}")
    return 0


def _bad_input(message: str) -> int:
    """Say what is wrong with the input on stderr; returns the exit code for bad input."""
    print(f"parsl-quantum: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def version_line() -> str:
    """``parsl-quantum X (parsl Y, qiskit Z, qiskit-aer W)``: what a bug report needs.

    Returns
    -------
    str
        The line.
    """
    from importlib.metadata import PackageNotFoundError, version

    from parsl_quantum import __version__

    parts = []
    for dist in ("parsl", "qiskit", "qiskit-aer"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return f"parsl-quantum {__version__} ({', '.join(parts)})"


def build_parser() -> argparse.ArgumentParser:
    """The ``parsl-quantum`` argument parser, one subcommand per ``cmd_*`` function.

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    parser = argparse.ArgumentParser(prog="parsl-quantum", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow template on its pools", add_help=False)
    run.add_argument("template", nargs="?", help="template file (YAML) or published template name")
    run.add_argument(
        "-h", "--help", action="store_true", help="show this help and the template's --set keys"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run: re-run its template, reusing every finished task",
    )
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field (repeatable)"
    )
    run.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    run.add_argument("--run-dir", metavar="DIR", help="run directory (default: runs/NAME-TIME)")
    run.add_argument(
        "--monitoring",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write Parsl's monitoring database (the timeline of `parsl-quantum report`); off "
        "unless the template's run.monitoring is true: it starts three more processes",
    )
    run.add_argument("--quiet", action="store_true", help="no live progress display")
    run.set_defaults(func=cmd_run, parser=run)

    plan = sub.add_parser("plan", help="print the candidate cut configurations without running")
    plan.add_argument("template")
    plan.add_argument("--set", action="append", metavar="KEY=VALUE")
    plan.add_argument("--run-dir", metavar="DIR", help=argparse.SUPPRESS)
    plan.add_argument("--json", metavar="PATH", help="write the candidates as JSON")
    plan.add_argument("--graphml", metavar="PATH", help="write the chosen DAG as GraphML")
    plan.add_argument("--picture", metavar="PATH", help="draw the chosen DAG (PNG/SVG/PDF)")
    plan.add_argument(
        "--circuit-picture", metavar="PATH", help="draw the input circuit with the cuts marked"
    )
    plan.set_defaults(func=cmd_plan)

    rep = sub.add_parser("report", help="per-pool summary and timeline picture of a run")
    rep.add_argument("run_dir", metavar="RUN_DIR")
    rep.add_argument(
        "--picture", metavar="PATH", help="timeline picture (default: RUN_DIR/timeline.png)"
    )
    rep.set_defaults(func=cmd_report)

    doc = sub.add_parser("doctor", help="versions, GPUs, backends, profile, optional features")
    doc.add_argument("--json", action="store_true", help="print the findings as JSON")
    doc.set_defaults(func=cmd_doctor)

    cal = sub.add_parser("calibrate", help="measure the local pools and fit the cost model")
    cal.add_argument("--pools", default="cpu,qpu", help="pools to calibrate (default: cpu,qpu)")
    cal.add_argument("--profile", metavar="PATH", help="profile to write (default: user config)")
    cal.add_argument("--workers", action="append", metavar="POOL=N", help="workers of a pool")
    cal.add_argument("--repeats", type=int, default=3, help="runs of each probe (median)")
    cal.add_argument("--quick", action="store_true", help="fewer, smaller probes")
    cal.add_argument("--max-qubits", type=int, help="widest probe (default: 14 or the pool's)")
    cal.add_argument("--run-dir", default="runs/calibrate", help=argparse.SUPPRESS)
    cal.set_defaults(func=cmd_calibrate)

    tpl = sub.add_parser("templates", help="list, show, validate or export published templates")
    tpl.add_argument("action", choices=["list", "show", "validate", "schema"])
    tpl.add_argument("names", nargs="*", help="template names or files (schema: a kind)")
    tpl.set_defaults(func=cmd_templates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parsl-quantum`` console script.

    Parameters
    ----------
    argv : Sequence of str or None
        Command-line arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status.
    """
    from parsl_quantum.workflow.rundir import stop_on_signals

    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals():
            return int(args.func(args))
    except KeyboardInterrupt:
        print("parsl-quantum: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def console_main() -> int:
    """The ``parsl-quantum`` console script: :func:`main`, then a quick interpreter exit.

    Before the process exits, every object still alive is moved out of the garbage
    collector's reach (:func:`gc.freeze`), so the exit does not walk the object graphs of
    Qiskit, NumPy and Parsl one last time (about 0.45 s of a short run on two cores). The run's
    files are written and its pools shut down by then; ``atexit`` handlers still run.

    Returns
    -------
    int
        The exit status.
    """
    import gc

    try:
        return main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
