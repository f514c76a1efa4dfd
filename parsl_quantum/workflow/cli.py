"""The ``parsl-quantum`` command: run, plan and manage workflow templates.

Bad input (template, circuit, observable, pools, limits) is reported as one line on stderr with
exit code 2, before any pool starts or any task is submitted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from parsl_quantum.workflow.template import (
    KINDS,
    Template,
    TemplateError,
    full_schema,
    load_template,
)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class BadInput(Exception):
    """Raised for input errors detected before submission (exit code 2)."""


def templates_dir() -> Path:
    """The published templates shipped with the package."""
    return Path(__file__).resolve().parent.parent / "templates"


def published_templates() -> dict[str, Path]:
    """Published template names (file stems) and their paths."""
    return {p.stem: p for p in sorted(templates_dir().glob("*.yaml"))}


def _site_config(template: Template, run_dir: Path, monitoring: bool) -> Any:
    from parsl_quantum import configs

    site = template.data.get("site", {"name": "local"})
    options = dict(site.get("options", {}))
    workers = template.data.get("run", {}).get("workers")
    if site["name"] == "local":
        return configs.local(run_dir, template.pools, workers=workers, monitoring=monitoring)
    if site["name"] in ("slurm", "pbs"):
        from parsl_quantum.configs.clusters import ClusterPool
        from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS

        pools = {
            p: ClusterPool(backends=DEFAULT_POOL_BACKENDS.get(p, ("aer",))) for p in template.pools
        }
        factory = configs.slurm if site["name"] == "slurm" else configs.pbs
        return factory(run_dir, pools, monitoring=monitoring, **options)
    from parsl_quantum.configs.globus import globus_from_site_options

    return globus_from_site_options(
        options, pools=template.pools, run_dir=run_dir, monitoring=monitoring
    )


def _default_run_dir(template: Template) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{template.name}-{stamp}"


def _print_result(result: dict[str, Any], kind: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    table = Table(title=f"parsl-quantum {kind}", show_header=False)
    for key in ("value", "std_error", "reference"):
        if key in result:
            val = result[key]
            table.add_row(key, "null" if val is None else f"{val:.12g}")
    if result.get("reference") is not None and "value" in result:
        table.add_row("|value - reference|", f"{abs(result['value'] - result['reference']):.3g}")
    config = result.get("configuration")
    if isinstance(config, dict) and "partitions" in config:
        parts = ", ".join(f"{p['qubits']}q@{p['pool']}" for p in config["partitions"])
        table.add_row("partitions", parts)
        table.add_row("cuts", str(len(config.get("cuts", []))))
        table.add_row("subexperiments", str(config.get("subexperiments")))
        table.add_row("why", str(config.get("reason", "")))
    if "tasks" in result:
        table.add_row("tasks", str(result["tasks"]))
    for stage, secs in (result.get("timings") or {}).items():
        table.add_row(f"time: {stage}", f"{secs:.3f} s")
    table.add_row("run_dir", str(result.get("run_dir")))
    console.print(table)


def cmd_run(args: argparse.Namespace) -> int:
    import parsl

    from parsl_quantum.configs import pool_infos
    from parsl_quantum.workflow.context import RunContext, TaskRecorder
    from parsl_quantum.workflow.progress import RunProgress

    started = time.perf_counter()
    try:
        template = load_template(args.template, args.set or [])
        run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(template)
        monitoring = template.data.get("run", {}).get("monitoring", not args.no_monitoring)
        config = _site_config(template, run_dir, monitoring)
        pools = pool_infos(config)
        missing = [p for p in template.pools if p not in pools]
        if missing:
            raise BadInput(
                f"pool {missing[0]!r} is not available here (have: {', '.join(pools) or 'none'})"
            )
        module = template.kind.load()
        prepared = None
        if hasattr(module, "prepare"):
            prepared = module.prepare(template.data, pools, Path(args.template).resolve().parent)
    except (BadInput, ValueError, OSError) as exc:
        print(f"parsl-quantum: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "template.yaml").write_text(yaml.safe_dump(template.data, sort_keys=False))
    t0 = time.perf_counter()
    dfk = parsl.load(config)
    startup = time.perf_counter() - t0
    try:
        with RunProgress(live=None if not args.quiet else False) as progress:
            ctx = RunContext(
                run_dir, pools, TaskRecorder(run_dir / "tasks.csv"), progress, prepared=prepared
            )
            result = template.kind.runner(template.data, ctx)
    except Exception as exc:
        print(f"parsl-quantum: run failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        dfk.cleanup()
        parsl.clear()
    timings = result.setdefault("timings", {})
    timings["startup"] = startup
    timings["total"] = time.perf_counter() - started
    result["run_dir"] = str(run_dir)
    text = json.dumps(result, indent=2, default=float)
    (run_dir / "result.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    _print_result(result, template.kind.name)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from parsl_quantum.configs import pool_infos
    from parsl_quantum.workflow import cutting

    try:
        template = load_template(args.template, args.set or [])
        if template.kind.name != "circuit-cutting":
            raise BadInput(f"`plan` works on circuit-cutting templates, not {template.kind.name!r}")
        config = _site_config(template, Path(args.run_dir or "runs/plan"), monitoring=False)
        pools = {k: v for k, v in pool_infos(config).items() if k in template.pools}
        prepared = cutting.prepare(template.data, pools, Path(args.template).resolve().parent)
    except (BadInput, ValueError, OSError) as exc:
        print(f"parsl-quantum: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from parsl_quantum.planner.report import print_plan, write_graph

    print_plan(prepared.plan)
    if args.graphml or args.picture:
        write_graph(prepared.plan.chosen.graph, graphml=args.graphml, picture=args.picture)
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    published = published_templates()
    if args.action == "list":
        for name, path in published.items():
            data = yaml.safe_load(path.read_text())
            print(f"{name:28s} {data.get('kind', '?'):24s} {data.get('description', '')}")
        return 0
    if args.action == "show":
        if not args.names:
            print("parsl-quantum: error: templates show needs a NAME", file=sys.stderr)
            return EXIT_BAD_INPUT
        for name in args.names:
            if name not in published:
                print(f"parsl-quantum: error: no published template {name!r}", file=sys.stderr)
                return EXIT_BAD_INPUT
            print(published[name].read_text(), end="")
        return 0
    if args.action == "schema":
        kind = args.names[0] if args.names else None
        if kind is not None and kind not in KINDS:
            print(f"parsl-quantum: error: unknown kind {kind!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(json.dumps(full_schema(kind), indent=2))
        return 0
    status = 0
    for name in args.names or [str(p) for p in published.values()]:
        path = published.get(name, Path(name))
        try:
            template = load_template(path)
            print(f"{path}: ok ({template.kind.name})")
        except TemplateError as exc:
            print(f"parsl-quantum: error: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
    return status


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parsl-quantum", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow template on its pools")
    run.add_argument("template", help="template file (YAML)")
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field (repeatable)"
    )
    run.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    run.add_argument("--run-dir", metavar="DIR", help="run directory (default: runs/NAME-TIME)")
    run.add_argument("--no-monitoring", action="store_true", help="do not start Parsl monitoring")
    run.add_argument("--quiet", action="store_true", help="no live progress display")
    run.set_defaults(func=cmd_run)

    plan = sub.add_parser("plan", help="print the candidate cut configurations without running")
    plan.add_argument("template")
    plan.add_argument("--set", action="append", metavar="KEY=VALUE")
    plan.add_argument("--run-dir", metavar="DIR", help=argparse.SUPPRESS)
    plan.add_argument("--graphml", metavar="PATH", help="write the chosen DAG as GraphML")
    plan.add_argument("--picture", metavar="PATH", help="draw the chosen DAG (PNG/SVG/PDF)")
    plan.set_defaults(func=cmd_plan)

    tpl = sub.add_parser("templates", help="list, show, validate or export published templates")
    tpl.add_argument("action", choices=["list", "show", "validate", "schema"])
    tpl.add_argument("names", nargs="*", help="template names or files (schema: a kind)")
    tpl.set_defaults(func=cmd_templates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parsl-quantum`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
