"""Workflow templates: loading, line-numbered errors, overrides, the published set, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parsl_quantum.workflow.cli import main, published_templates
from parsl_quantum.workflow.template import (
    API_VERSION,
    TemplateError,
    full_schema,
    load_template,
    parse_yaml,
    validate,
)

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "workflows" / "circuit-cutting.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


GOOD = f"""apiVersion: {API_VERSION}
kind: circuit-cutting
circuit:
  generator: efficient_su2
  qubits: 8
planner:
  max_subcircuit_qubits: 4
"""


def test_every_published_template_validates() -> None:
    names = published_templates()
    assert "circuit-cutting" in names
    for path in names.values():
        template = load_template(path)
        assert template.data["apiVersion"] == API_VERSION
    files = sorted(p.name for p in (ROOT / "workflows").glob("*.yaml"))
    assert sorted(p.name for p in names.values()) == files


def test_unknown_field_names_the_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  qubits: 8\n", "  qubits: 8\n  qbits: 9\n"))
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(err.value).startswith(f"{path}:6: circuit.qbits: unknown field")
    assert err.value.line == 6 and err.value.field == "circuit.qbits"


def test_wrong_type_names_the_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("qubits: 8", "qubits: eight"))
    with pytest.raises(
        TemplateError, match=r":5: circuit.qubits: 'eight' is not of type 'integer'"
    ):
        load_template(path)


def test_malformed_yaml_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "execution: [unclosed\n")
    with pytest.raises(TemplateError, match=r"t.yaml:\d+: malformed YAML"):
        load_template(path)


def test_unknown_kind_and_version(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r":2: kind: unknown kind 'cooking'"):
        load_template(write(tmp_path, GOOD.replace("circuit-cutting", "cooking")))
    with pytest.raises(TemplateError, match=r":1: apiVersion"):
        load_template(write(tmp_path, GOOD.replace(API_VERSION, "parsl-quantum/v0")))


def test_overrides_apply_and_unknown_override_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    template = load_template(
        path,
        [
            "circuit.qubits=10",
            "observable=0.5*ZZZZZZZZZZ, XIIIIIIIIX",
            "planner.max_subcircuit_qubits=5",
            "pools=cpu,qpu",
            "circuit.qasm=foo.qasm",
        ],
    )
    assert template.data["circuit"]["qubits"] == 10
    assert template.data["observable"] == "0.5*ZZZZZZZZZZ, XIIIIIIIIX"
    assert template.data["planner"]["max_subcircuit_qubits"] == 5
    assert template.pools == ["cpu", "qpu"]
    assert template.data["circuit"]["qasm"] == "foo.qasm"
    with pytest.raises(TemplateError, match="planner.max_width: unknown field"):
        load_template(path, ["planner.max_width=3"])
    with pytest.raises(TemplateError, match="not KEY=VALUE"):
        load_template(path, ["justakey"])


def test_schema_export_covers_every_kind() -> None:
    schema = full_schema()
    kinds = {v["properties"]["kind"]["const"] for v in schema["oneOf"]}
    assert {"circuit-cutting", "ensemble", "variational"} <= kinds
    one = full_schema("circuit-cutting")
    limit = one["properties"]["planner"]["properties"]["max_subcircuit_qubits"]
    assert limit["type"] == ["integer", "null"]  # optional: unset lets the planner not cut
    assert "required" not in one["properties"]["planner"]


def test_validate_plain_data_without_lines() -> None:
    data, lines = parse_yaml(GOOD)
    assert lines[("planner", "max_subcircuit_qubits")] == 7
    assert validate(data).kind.name == "circuit-cutting"


def test_templates_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "list"]) == 0
    assert "circuit-cutting" in capsys.readouterr().out
    assert main(["templates", "show", "circuit-cutting"]) == 0
    assert capsys.readouterr().out == MAIN.read_text()
    assert main(["templates", "validate"]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(published_templates())
    assert main(["templates", "schema", "circuit-cutting"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "parsl-quantum workflow template"
    bad = write(tmp_path, GOOD.replace("qubits: 8", "qubits: -1"))
    assert main(["templates", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "circuit.qubits" in err and ":5:" in err
