"""Template kinds come from entry points (group ``parsl_quantum.template_kinds``): ours from
setup.cfg, a third party's from its own distribution's metadata, found by importlib.metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parsl_quantum.workflow.template import (
    ENTRY_POINT_GROUP,
    KIND_ATTRIBUTES,
    TemplateError,
    full_schema,
    template_kinds,
)

ROOT = Path(__file__).resolve().parents[1]
OURS = {
    "circuit-cutting",
    "distributed-simulation",
    "ensemble",
    "error-mitigation",
    "qml-compression",
    "qml-generative",
    "qml-training",
    "variational",
}

THIRD_PARTY_KIND = '''
"""A template kind from another distribution: squares numbers as Parsl tasks."""

import parsl

DESCRIPTION = "Square numbers on a pool."
TEMPLATE_SCHEMA = {
    "properties": {"numbers": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
    "required": ["numbers"],
}


def square(x):
    return x * x


def run_template(template, ctx):
    pool = next(iter(ctx.pools))
    app = parsl.python_app(square, executors=[pool])
    futures = [app(x) for x in template["numbers"]]
    return {"value": float(sum(f.result() for f in futures)), "tasks": len(futures)}
'''


def _environment(extra: Path) -> dict[str, str]:
    """This process's environment with ``extra`` first on the Python path (workers inherit it)."""
    path = os.pathsep.join(p for p in (str(extra), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _third_party(tmp_path: Path) -> Path:
    """A directory holding a kind module and an installed distribution's metadata naming it,
    plus a second kind whose module does not exist."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "squares_kind.py").write_text(THIRD_PARTY_KIND)
    info = site / "thirdparty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nsquares = squares_kind\nbroken = no_such_kind_module\n"
    )
    return site


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parsl_quantum.workflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_environment(site),
        cwd=site.parent,
    )


def test_our_kinds_are_listed_without_importing_them() -> None:
    code = (
        "import json, sys; from parsl_quantum.workflow.template import template_kinds; "
        "print(json.dumps(sorted(template_kinds()))); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('miniapps') "
        "or m == 'parsl_quantum.workflow.cut_and_run')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=_environment(ROOT),
    )
    names, imported = done.stdout.strip().splitlines()
    assert set(json.loads(names)) >= OURS
    assert json.loads(imported) == []


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_of_our_kinds_defines_what_a_kind_must(name: str) -> None:
    kind = template_kinds()[name]
    module = kind.load()
    assert all(hasattr(module, attr) for attr in KIND_ATTRIBUTES)
    assert kind.description and "\n" not in kind.description
    assert isinstance(kind.schema.get("properties"), dict) and callable(kind.runner)


def test_unknown_kind_in_schema_export_names_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown kind 'cooking' \(known: .*circuit-cutting"):
        full_schema("cooking")


def test_a_third_party_kind_runs_and_a_broken_one_is_one_line(tmp_path: Path) -> None:
    site = _third_party(tmp_path)
    good = tmp_path / "squares.yaml"
    good.write_text(
        "apiVersion: parsl-quantum/v1\nkind: squares\npools: [cpu]\n"
        "run: {monitoring: false, workers: {cpu: 1}}\nnumbers: [1, 2, 3]\n"
    )
    out = tmp_path / "result.json"
    done = _cli(site, "run", str(good), "--run-dir", str(tmp_path / "run"), "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["value"] == 14.0 and result["tasks"] == 3

    # bad input for the new kind is caught by its own schema, before anything starts
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("numbers: [1, 2, 3]", "numbers: []"))
    done = _cli(site, "run", str(bad), "--run-dir", str(tmp_path / "bad-run"))
    assert done.returncode == 2 and "numbers" in done.stderr
    assert not (tmp_path / "bad-run" / "result.json").exists()

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: parsl-quantum/v1\nkind: broken\npools: [cpu]\n")
    for args in (["run", str(broken)], ["templates", "schema"]):
        done = _cli(site, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and "Traceback" not in done.stderr
        assert "'broken'" in lines[0] and "no_such_kind_module" in lines[0]
        assert "thirdparty 0.1" in lines[0]
