"""The ``--set`` keys of a template, generated from its kind's JSON Schema.

``parsl-quantum run TEMPLATE --help`` prints them with their types and the values the template
has now, so a user sees what can be changed without reading the schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from parsl_quantum.workflow.template import Template, full_schema

#: Envelope fields that identify a template rather than configure a run.
FIXED = frozenset({"apiVersion", "kind", "name", "description"})


@dataclass(frozen=True)
class SetKey:
    """One dotted ``--set`` key: its value type as the schema says, and its current value.

    Attributes
    ----------
    key : str
        The dotted key.
    type : str
        Short human name of its value type (:func:`type_name`).
    value : Any
        Its current value in the template.
    """

    key: str
    type: str
    value: Any

    @property
    def shown_value(self) -> str:
        """The current value as ``--set`` would take it (``-`` when the template sets none)."""
        if self.value is None:
            return "-"
        if isinstance(self.value, list):
            return ",".join(str(v) for v in self.value)
        if isinstance(self.value, bool):
            return str(self.value).lower()
        return str(self.value)


def set_keys(template: Template) -> list[SetKey]:
    """Every leaf key of ``template``'s kind, in schema order, with its type and current value.

    Parameters
    ----------
    template : Template
        A validated template.

    Returns
    -------
    list of SetKey
        The keys.
    """
    schema = full_schema(template.kind.name)
    keys = []
    for key, kind in _leaves(schema.get("properties", {}), ""):
        if key.split(".")[0] in FIXED:
            continue
        if key == "pools":  # the one list ``--set`` takes comma-separated
            kind = "comma-separated pool names"
        keys.append(SetKey(key, kind, _lookup(template.data, key)))
    return keys


def _leaves(properties: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for name, sub in properties.items():
        key = f"{prefix}{name}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from _leaves(sub["properties"], key + ".")
        else:
            yield key, type_name(sub)


def type_name(schema: Mapping[str, Any]) -> str:
    """A short human name of a schema's value type: ``integer >= 1``, ``one of a|b``...

    Parameters
    ----------
    schema : Mapping of str to Any
        The JSON Schema of one value.

    Returns
    -------
    str
        The name.
    """
    if "enum" in schema:
        return "one of " + "|".join(
            str(v).lower() if isinstance(v, bool) else str(v) for v in schema["enum"]
        )
    if "const" in schema:
        return f"= {schema['const']}"
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"list of {type_name(schema.get('items', {}))} (YAML: [a, b])"
    if kind == "object":
        return "mapping (edit the template)"
    bounds = [
        f">= {schema['minimum']}" if "minimum" in schema else "",
        f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else "",
        f"<= {schema['maximum']}" if "maximum" in schema else "",
    ]
    return " ".join([kind, *(b for b in bounds if b)])


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


__all__ = ["SetKey", "set_keys", "type_name"]
