"""Workflow templates: versioned YAML documents, validated by JSON Schema with errors that name
the field and the line.

Every template has the same envelope (``apiVersion``, ``kind``, ``name``, ``pools``, ``site``)
and a kind-specific body. Kinds are found through the entry points of group
:data:`ENTRY_POINT_GROUP` (``parsl_quantum.template_kinds``): this package declares its own
(the circuit-cutting job and each mini-app in ``miniapps/``) in ``setup.cfg``, and any installed
distribution can add one the same way, so the CLI, the schema export and ``templates validate``
all see the same kinds. A kind's module is imported only when a template of that kind (or every
kind's schema) is needed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import jsonschema
import yaml

API_VERSION = "parsl-quantum/v1"


class TemplateError(ValueError):
    """A template that cannot be loaded or does not validate.

    ``str()`` is one line: ``FILE:LINE: FIELD: problem``.

    Parameters
    ----------
    message : str
        The problem.
    source : str
        The template file, or another source such as ``--set``.
    field : str
        The dotted field path at fault, if any.
    line : int or None
        The line of the field in ``source``, if known.
    """

    def __init__(self, message: str, *, source: str = "", field: str = "", line: int | None = None):
        self.source, self.field, self.line = source, field, line
        where = source + (f":{line}" if line else "")
        parts = [p for p in (where, field, message) if p]
        super().__init__(": ".join(parts))


#: The entry-point group of template kinds: ``name = module``, the module defining
#: ``TEMPLATE_SCHEMA`` (the JSON Schema of the body's properties), a one-line ``DESCRIPTION`` and
#: ``run_template(template, ctx)``.
ENTRY_POINT_GROUP = "parsl_quantum.template_kinds"
#: What a kind's module must define.
KIND_ATTRIBUTES = ("TEMPLATE_SCHEMA", "DESCRIPTION", "run_template")


@dataclass(frozen=True)
class KindInfo:
    """One template kind, as an entry point names it; its module is imported on first use.

    ``runner(template, ctx)`` executes a validated template inside a loaded Parsl DataFlowKernel
    and returns a JSON-serialisable result dict (see :mod:`parsl_quantum.workflow.context`).

    Attributes
    ----------
    name : str
        The kind's name.
    entry_point : importlib.metadata.EntryPoint
        The entry point naming its module.
    """

    name: str
    entry_point: EntryPoint

    @property
    def module(self) -> str:
        """The entry point's target (``package.module``)."""
        return str(self.entry_point.value)

    def load(self) -> Any:
        """The kind's module.

        Returns
        -------
        Any
            The imported module.

        Raises
        ------
        TemplateError
            Naming the entry point, when the module cannot be imported or lacks one of
            :data:`KIND_ATTRIBUTES`.
        """
        ep = self.entry_point
        dist = f", distribution {ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
        where = f"template kind {self.name!r} (entry point {ep.value!r}{dist})"
        try:
            module = ep.load()
        except Exception as exc:  # any failure of third-party code: one line, named
            detail = "".join(str(exc).splitlines()[:1])
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            raise TemplateError(f"{where} cannot be loaded: {reason}") from None
        missing = [a for a in KIND_ATTRIBUTES if not hasattr(module, a)]
        if missing:
            raise TemplateError(f"{where} does not define {', '.join(missing)}")
        return module

    @property
    def description(self) -> str:
        """The kind's one-line ``DESCRIPTION``.

        Returns
        -------
        str
            The description.
        """
        return str(self.load().DESCRIPTION)

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the kind's body (``TEMPLATE_SCHEMA``).

        Returns
        -------
        dict of str to Any
            The schema.
        """
        return dict(self.load().TEMPLATE_SCHEMA)

    @property
    def runner(self) -> Callable[..., dict[str, Any]]:
        """The kind's ``run_template(template, ctx)``.

        Returns
        -------
        Callable of (...) to dict of str to Any
            The runner.
        """
        runner: Callable[..., dict[str, Any]] = self.load().run_template
        return runner


def template_kinds() -> dict[str, KindInfo]:
    """The installed template kinds by name, without importing any of them.

    They come from the entry points of :data:`ENTRY_POINT_GROUP`. Where two distributions
    declare one name, the first on ``sys.path`` wins, as an import would.

    Returns
    -------
    dict of str to KindInfo
        The kinds by name.
    """
    kinds: dict[str, KindInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kinds.setdefault(ep.name, KindInfo(ep.name, ep))
    return dict(sorted(kinds.items()))


ENVELOPE_PROPERTIES: dict[str, Any] = {
    "apiVersion": {"const": API_VERSION},
    "kind": {"type": "string"},
    "name": {"type": "string"},
    "description": {"type": "string"},
    "pools": {
        "type": "array",
        "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$"},
        "minItems": 1,
        "uniqueItems": True,
    },
    "site": {
        "type": "object",
        "properties": {
            "name": {"enum": ["local", "slurm", "pbs", "globus"]},
            "options": {"type": "object"},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
    "run": {
        "type": "object",
        "properties": {
            "monitoring": {"type": "boolean"},
            "workers": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1},
            },
            "force_workers": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
}


def full_schema(kind: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a template (of one kind, or of any installed kind), for editors.

    Parameters
    ----------
    kind : str or None
        The kind; any installed kind when omitted.

    Returns
    -------
    dict of str to Any
        The schema.

    Raises
    ------
    TemplateError
        When ``kind`` is not installed.
    """
    installed = template_kinds()
    if kind is not None and kind not in installed:
        raise TemplateError(f"unknown kind {kind!r} (known: {', '.join(installed)})")
    kinds = [installed[kind]] if kind else list(installed.values())
    variants = []
    for info in kinds:
        props = {**ENVELOPE_PROPERTIES, **info.schema.get("properties", {})}
        props["kind"] = {"const": info.name}
        variants.append(
            {
                "type": "object",
                "properties": props,
                "required": ["apiVersion", "kind", *info.schema.get("required", [])],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema["title"] = "parsl-quantum workflow template"
    if len(variants) == 1:
        schema.update(variants[0])
    else:
        schema["oneOf"] = variants
    return schema


#: The largest template file read (bytes): templates are a few kilobytes.
MAX_TEMPLATE_BYTES = 1 << 20


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key and refuses aliases (so no
    template can expand to more than its own size, as a "billion laughs" document would)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in templates", event.start_mark
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    seen: set[Any] = set()
    for key, _ in node.value:
        if key.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key.value!r}", key.start_mark
            )
        seen.add(key.value)
    mapping: dict[str, Any] = {
        str(k): v for k, v in loader.construct_mapping(node, deep=True).items()
    }
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _split_lines(obj: Any, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> Any:
    if isinstance(obj, dict):
        lines = obj.pop("__lines__", {})
        for key, line in lines.items():
            out[(*path, key)] = line
        return {k: _split_lines(v, (*path, str(k)), out) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_split_lines(v, (*path, str(i)), out) for i, v in enumerate(obj)]
    return obj


def parse_yaml(
    text: str, source: str = "<string>"
) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Parse YAML into a dict plus the line of each field path.

    Aliases, duplicate keys and documents over :data:`MAX_TEMPLATE_BYTES` are errors.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        Where it came from, for error messages.

    Returns
    -------
    tuple of (dict of str to Any, dict of tuple of str to int)
        The data, and the line of each field path.

    Raises
    ------
    TemplateError
        When the YAML is malformed, breaks those rules, or is not a mapping.
    """
    if len(text.encode(errors="replace")) > MAX_TEMPLATE_BYTES:
        raise TemplateError(
            f"template larger than {MAX_TEMPLATE_BYTES // 1024} KiB", source=source, line=None
        )
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TemplateError(f"malformed YAML: {problem}", source=source, line=line) from None
    lines: dict[tuple[str, ...], int] = {}
    data = _split_lines(raw, (), lines)
    if not isinstance(data, dict):
        raise TemplateError("a template must be a YAML mapping", source=source, line=1)
    return data, lines


@dataclass
class Template:
    """A validated template: its data, where it came from, and its kind.

    Attributes
    ----------
    data : dict of str to Any
        The template's data.
    source : str
        The file (or other source) it came from.
    kind : KindInfo
        Its kind.
    """

    data: dict[str, Any]
    source: str
    kind: KindInfo

    @property
    def name(self) -> str:
        """The template's ``name``, else its kind's name."""
        return str(self.data.get("name", self.kind.name))

    @property
    def pools(self) -> list[str]:
        """The template's ``pools``, else ``["cpu"]``."""
        return list(self.data.get("pools", ["cpu"]))

    @property
    def site(self) -> dict[str, Any]:
        """The template's ``site``, else the local site."""
        return dict(self.data.get("site", {"name": "local"}))


def _numbers(obj: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], float]]:
    """Every float in a template's data, with its field path."""
    if isinstance(obj, float):
        yield path, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _numbers(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _numbers(value, (*path, i))


def _field(path: Sequence[Any]) -> str:
    # a key that is not a plain one-line word is quoted, so the error stays on one line
    return (
        ".".join(
            str(p) if str(p).isprintable() and "." not in str(p) else repr(str(p)) for p in path
        )
        or "(top level)"
    )


def validate(
    data: Mapping[str, Any],
    source: str = "<template>",
    lines: Mapping[tuple[str, ...], int] | None = None,
    *,
    body: bool = True,
) -> Template:
    """Validate template data against the envelope and its kind's schema.

    Parameters
    ----------
    data : Mapping of str to Any
        The template's data.
    source : str
        Where it came from, for error messages.
    lines : Mapping of tuple of str to int or None
        The line of each field path, for error messages.
    body : bool
        Also validate the kind's own fields against its schema, which imports the kind's
        module. Without it only the envelope (``apiVersion``, ``kind`` among the installed
        kinds, ``name``, ``pools``, ``site``, ``run``) is checked, which is all a run needs to
        start its pools; ``parsl-quantum run`` validates the body while they start.

    Returns
    -------
    Template
        The validated template.

    Raises
    ------
    TemplateError
        One line naming the source, line and field at fault.
    """
    lines = lines or {}
    for path, value in _numbers(data, ()):
        if not math.isfinite(value):
            raise TemplateError(
                f"{value} is not a finite number",
                source=source,
                field=_field(path),
                line=lines.get(tuple(str(p) for p in path)),
            )
    kind = data.get("kind")
    installed = template_kinds()
    if not isinstance(kind, str) or kind not in installed:
        known = ", ".join(installed)
        raise TemplateError(
            f"unknown kind {kind!r} (known: {known})",
            source=source,
            field="kind",
            line=lines.get(("kind",)),
        )
    if body:
        try:
            schema = full_schema(kind)
        except TemplateError as exc:
            raise TemplateError(
                str(exc), source=source, field="kind", line=lines.get(("kind",))
            ) from None
    else:
        schema = {
            "type": "object",
            "properties": {**ENVELOPE_PROPERTIES, "kind": {"const": kind}},
            "required": ["apiVersion", "kind"],
        }
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(dict(data)),
        key=lambda e: (len(e.absolute_path), list(e.absolute_path)),
    )
    if errors:
        err = errors[0]
        path = tuple(str(p) for p in err.absolute_path)
        message = err.message
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            if extra:
                path = (*path, str(extra[0]))
                allowed = ", ".join(sorted(err.schema.get("properties", {})))
                message = f"unknown field (allowed: {allowed})"
        line = None
        for cut in range(len(path), -1, -1):
            line = lines.get(path[:cut])
            if line:
                break
        raise TemplateError(message, source=source, field=_field(path), line=line)
    return Template(copy.deepcopy(dict(data)), source, installed[kind])


def load_template(path: str | Path, overrides: Sequence[str] = ()) -> Template:
    """Read, override (``KEY=VALUE`` with dotted keys) and validate a template file.

    Parameters
    ----------
    path : str or pathlib.Path
        The template file.
    overrides : Sequence of str
        ``KEY=VALUE`` overrides.

    Returns
    -------
    Template
        The validated template.

    Raises
    ------
    TemplateError
        When the file cannot be read, an override is malformed, or the result does not
        validate.
    """
    data, lines = read_template(path, overrides)
    return validate(data, str(path), lines)


def read_template(
    path: str | Path, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Read a template file and apply ``KEY=VALUE`` overrides, without validating it.

    Parameters
    ----------
    path : str or pathlib.Path
        The template file.
    overrides : Sequence of str
        ``KEY=VALUE`` overrides.

    Returns
    -------
    tuple of (dict of str to Any, dict of tuple of str to int)
        The data, and the line of each field path (for :func:`validate`'s messages).

    Raises
    ------
    TemplateError
        When the file cannot be read or parsed, or an override is malformed.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read template: {exc.strerror}", source=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    return apply_overrides(data, overrides, source=str(path)), lines


def apply_overrides(
    data: Mapping[str, Any], overrides: Sequence[str], source: str = ""
) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE`` overrides.

    Values are parsed as YAML scalars, and a comma list for ``pools``. Unknown keys are caught by
    validation afterwards.

    Parameters
    ----------
    data : Mapping of str to Any
        The template's data (not changed).
    overrides : Sequence of str
        ``KEY=VALUE`` overrides, with dotted keys.
    source : str
        Where the data came from, for error messages.

    Returns
    -------
    dict of str to Any
        The data with the overrides applied.

    Raises
    ------
    TemplateError
        When an override is not ``KEY=VALUE``, a key is given twice, or a key cannot be set.
    """
    out = copy.deepcopy(dict(data))
    given: set[str] = set()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise TemplateError(f"override {item!r} is not KEY=VALUE", source="--set")
        if key in given:
            raise TemplateError(f"{key!r} is set twice", source="--set")
        given.add(key)
        parts = key.split(".")
        value: Any
        if parts == ["pools"]:
            value = [p.strip() for p in raw.split(",") if p.strip()]
        else:
            try:
                value = yaml.load(raw, Loader=_LineLoader) if raw else ""  # noqa: S506
            except yaml.YAMLError:
                value = raw
            value = _split_lines(value, (), {})
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise TemplateError(
                    f"cannot set {key!r}: {part!r} is not a mapping", source="--set"
                )
            node = child
        node[parts[-1]] = value
    return out
