"""The public API's docstrings follow one convention, NumPy style, so the API reference shows
parameter tables.

The test reads the source with :mod:`ast`: in every public module of the packages in
:data:`CONVERTED`, every public function and method that takes a parameter besides
``self``/``cls`` has a ``Parameters`` section naming each parameter; a public class with its own
``__init__`` names the constructor's parameters in the class docstring (or in ``__init__``'s);
a public dataclass names each field in an ``Attributes`` section; every entry of those sections
gives a type (``name : type``); and a public function or method (not a property) annotated to
return something has a ``Returns`` (or ``Yields``) section. Names with a leading underscore
(modules, classes, functions, dunders) are not public API, except the names a package
re-exports from its private modules. Only a class whose docstring is
built at import time (``__doc__ = f"..."``) is imported, to read it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages and modules whose docstrings are in NumPy style, relative to the repository root.
CONVERTED = (
    "parsl_quantum/planner",
    "parsl_quantum/configs",
    "parsl_quantum/workflow",
    "parsl_quantum/backends",
    "parsl_quantum/executors",
    "parsl_quantum/providers",
    "parsl_quantum/cutting",
    "parsl_quantum/circuits.py",
    "parsl_quantum/primitives.py",
    "parsl_quantum/remote.py",
    "parsl_quantum/parent_watch.py",
    "parsl_quantum/lean_start.py",
    "parsl_quantum/reliability",
)

_HEADER = re.compile(r"^(\w[\w ]*)\n-+$", re.M)
#: The names of a section entry: everything before the first colon that ends a word.
_NAME = re.compile(r"^(.*?)(?:\s*:(?:\s|$)|$)")
#: A section entry with a type: ``name : type`` (Parsl's shared HTEX docs also write
#: ``name: type``).
_TYPED = re.compile(r"^[^:]+?\s?:\s+\S")


def sections(doc: str) -> dict[str, list[str]]:
    """The NumPy-style sections of a cleaned docstring: title -> the lines under its underline."""
    found = list(_HEADER.finditer(doc))
    out: dict[str, list[str]] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(doc)
        out[match.group(1)] = doc[match.end() : end].strip("\n").splitlines()
    return out


def documented_names(lines: list[str]) -> set[str]:
    """The names a ``Parameters``/``Attributes`` section lists (``a, b : int`` names both)."""
    names: set[str] = set()
    for line in lines:
        if line and not line[0].isspace():
            for name in _NAME.match(line).group(1).split(","):  # type: ignore[union-attr]
                names.add(name.strip().lstrip("*"))
    return names


def untyped(lines: list[str]) -> list[str]:
    """The entries of a ``Parameters``/``Attributes`` section that give no type."""
    return [line for line in lines if line and not line[0].isspace() and not _TYPED.match(line)]


def parameter_names(func: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    """A function's parameters in order, without the ``self``/``cls`` of a method."""
    args = func.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def is_overload(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``func`` is a ``typing.overload`` stub (the implementation carries the docs)."""
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in func.decorator_list
    )


def is_setter(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``func`` is a property's setter or deleter (the getter carries the docs)."""
    return any(
        isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
        for d in func.decorator_list
    )


def is_property(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``func`` is a property (its docstring describes a value, without sections)."""
    return any(
        (isinstance(d, ast.Name) and d.id in ("property", "cached_property"))
        or (isinstance(d, ast.Attribute) and d.attr == "cached_property")
        for d in func.decorator_list
    )


def returns_something(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``func`` is annotated to return a value (not ``None``, not a property)."""
    return (
        func.returns is not None
        and ast.unparse(func.returns) not in ("None", "NoReturn")
        and not is_property(func)
    )


def is_dataclass(cls: ast.ClassDef) -> bool:
    """Whether ``cls`` is decorated with ``dataclass`` (bare or called)."""
    for d in cls.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if (isinstance(target, ast.Name) and target.id == "dataclass") or (
            isinstance(target, ast.Attribute) and target.attr == "dataclass"
        ):
            return True
    return False


def missing(doc: str | None, section: str, names: list[str]) -> list[str]:
    """The names ``section`` of ``doc`` does not list (all of them when there is no docstring)."""
    if not names:
        return []
    listed = documented_names(sections(doc or "").get(section, []))
    return [n for n in names if n not in listed]


def class_doc(file: Path, cls: ast.ClassDef) -> str | None:
    """A class's docstring; one built at import time (``__doc__ = f"..."`` in the class body,
    e.g. to include Parsl's shared parameter docs) is read from the imported class."""
    assigns_doc = any(
        isinstance(item, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__doc__" for t in item.targets)
        for item in cls.body
    )
    if not assigns_doc:
        return ast.get_docstring(cls)
    doc = getattr(importlib.import_module(dotted(file)), cls.name).__doc__
    return inspect.cleandoc(doc) if doc else None


def dotted(file: Path) -> str:
    """The module name of a source file (``parsl_quantum.executors.pools``)."""
    return ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def reexported(file: Path) -> set[str]:
    """The names of a private module that its package's ``__init__`` imports (public API)."""
    init = file.parent / "__init__.py"
    if not init.exists():
        return set()
    return {
        alias.asname or alias.name
        for node in ast.walk(ast.parse(init.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == dotted(file)
        for alias in node.names
    }


def modules() -> Iterator[tuple[Path, set[str] | None]]:
    """The modules of :data:`CONVERTED` with public API: each public module (all its public
    names), and each private one whose names its package re-exports (those names only)."""
    for entry in CONVERTED:
        path = ROOT / entry
        files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
        for file in files:
            parts = file.relative_to(ROOT).with_suffix("").parts
            if not any(p.startswith("_") and p != "__init__" for p in parts):
                yield file, None
            elif names := reexported(file):
                yield file, names


def offenders(file: Path, only: set[str] | None = None) -> Iterator[str]:
    """``module:line name: what is missing`` for each public callable or class of ``file``
    (those named in ``only`` when given) whose docstring lacks a NumPy section or entry."""
    where = file.relative_to(ROOT)
    tree = ast.parse(file.read_text(), str(file))

    def check(func: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, method: bool):
        if func.name.startswith("_") or is_overload(func) or is_setter(func):
            return
        doc = ast.get_docstring(func)
        lost = missing(doc, "Parameters", parameter_names(func, method))
        if lost:
            yield f"{where}:{func.lineno} {qualname}: Parameters lacks {', '.join(lost)}"
        found = sections(doc or "")
        if returns_something(func) and not {"Returns", "Yields"} & set(found):
            yield f"{where}:{func.lineno} {qualname}: no Returns section"
        for line in untyped(found.get("Parameters", [])):
            yield f"{where}:{func.lineno} {qualname}: untyped Parameters entry: {line}"

    for node in tree.body:
        if only is not None and getattr(node, "name", None) not in only:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from check(node, node.name, method=False)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            doc = class_doc(file, node)
            for section in ("Parameters", "Attributes"):
                for line in untyped(sections(doc or "").get(section, [])):
                    yield f"{where}:{node.lineno} {node.name}: untyped {section} entry: {line}"
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    if item.name == "__init__":
                        names = parameter_names(item, method=True)
                        lost = missing(doc, "Parameters", names)
                        if lost and missing(ast.get_docstring(item), "Parameters", names):
                            yield (
                                f"{where}:{node.lineno} {node.name}: constructor Parameters "
                                f"lacks {', '.join(lost)}"
                            )
                    else:
                        yield from check(item, f"{node.name}.{item.name}", method=True)
            if is_dataclass(node):
                fields = [
                    item.target.id
                    for item in node.body
                    if isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and not item.target.id.startswith("_")
                    and "ClassVar" not in ast.unparse(item.annotation)
                ]
                lost = missing(doc, "Attributes", fields)
                if lost:
                    yield f"{where}:{node.lineno} {node.name}: Attributes lacks {', '.join(lost)}"


def test_sections_parse_names() -> None:
    doc = (
        "Summary.\n\nParameters\n----------\na, *b : int\n    What.\nc\ne: str\n"
        "f : :class:`~x.Y`\n    Why.\n\nReturns\n-------\nint"
    )
    found = sections(doc)
    assert set(found) == {"Parameters", "Returns"}
    assert documented_names(found["Parameters"]) == {"a", "b", "c", "e", "f"}
    assert missing(doc, "Parameters", ["a", "b", "d"]) == ["d"]
    assert missing(None, "Parameters", ["a"]) == ["a"]
    assert missing(None, "Parameters", []) == []
    assert untyped(found["Parameters"]) == ["c"]


def test_returns_and_properties_are_told_apart() -> None:
    tree = ast.parse(
        "def f() -> int: ...\n"
        "def g() -> None: ...\n"
        "def h(): ...\n"
        "@property\n"
        "def p(self) -> int: ...\n"
    )
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [returns_something(f) for f in funcs] == [True, False, False, False]


@pytest.mark.parametrize("entry", CONVERTED)
def test_public_api_has_numpy_sections(entry: str) -> None:
    assert (ROOT / entry).exists(), f"{entry} is not in the repository"
    found = [
        line
        for file, only in modules()
        if file == ROOT / entry or (ROOT / entry) in file.parents
        for line in offenders(file, only)
    ]
    assert found == [], "NumPy-style sections missing:\n" + "\n".join(found)
