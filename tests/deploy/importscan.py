"""Static import scan: which third-party distributions a service's code can import.

Why static: an image is honest only if its ``pip install ".[extra]"`` brings every module the
service's code may import, including lazy imports inside functions and the shared core modules it
pulls in. Importing the code to find out would miss every branch not taken, so the scan reads the
source with ``ast``: it starts at a service's package, follows first-party imports
(``edgeinspect.core.*``, ``edgeinspect_<service>.*``, ``edgeinspect_cloud.*``) transitively, and
collects the top-level names of everything else that is not the standard library.

Imports under ``if TYPE_CHECKING:`` never run and are skipped. Imports guarded by
``try: ... except ImportError`` are optional by construction (the code reports how to install
them) and are collected separately, so the tests can list them with their reason.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (
    ROOT / "lib",
    ROOT / "services" / "camera",
    ROOT / "services" / "inference",
    ROOT / "services" / "model-manager",
    ROOT / "services" / "uploader",
    ROOT / "services" / "ui",
    ROOT / "services" / "line-io",
    ROOT / "cloud",
)
FIRST_PARTY = re.compile(r"^edgeinspect(_[a-z_]+)?$")
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


@dataclass
class ScanResult:
    """Third-party top-level modules reached from the start files, with one importer each."""

    required: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)
    files: set[Path] = field(default_factory=set)


def module_file(name: str) -> Path | None:
    """The source file of a first-party module or package (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    rel = Path(*name.split("."))
    for root in SOURCE_ROOTS:
        for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _package_of(path: Path) -> str:
    """The dotted package a file belongs to (for relative imports)."""
    for root in SOURCE_ROOTS:
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).parts[:-1])
    raise ValueError(f"{path} is outside the source roots")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names):
            return True
    return False


class _Collector(ast.NodeVisitor):
    """Every imported dotted name in one file, split into required and optional."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.required: set[str] = set()
        self.optional: set[str] = set()
        self._optional_depth = 0

    def _add(self, name: str) -> None:
        (self.optional if self._optional_depth else self.required).add(name)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = _guards_import_error(node)
        self._optional_depth += guarded
        for statement in node.body:
            self.visit(statement)
        self._optional_depth -= guarded
        others: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
        for other in others:
            self.visit(other)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parent = parts[: len(parts) - node.level + 1]
            base = ".".join([*parent, base] if base else parent)
        self._add(base)
        for alias in node.names:
            self._add(f"{base}.{alias.name}")  # may be a submodule; harmless when it is an attribute


@cache
def _file_imports(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    collector = _Collector(_package_of(path))
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return frozenset(collector.required), frozenset(collector.optional)


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def scan(starts: list[Path]) -> ScanResult:
    """Follow first-party imports from ``starts`` (files or package folders) and collect the rest."""
    result = ScanResult()
    todo = [f for start in starts for f in (sorted(start.rglob("*.py")) if start.is_dir() else [start])]
    while todo:
        path = todo.pop()
        if path in result.files:
            continue
        result.files.add(path)
        required, optional = _file_imports(path)
        for names, bucket in ((required, result.required), (optional, result.optional)):
            for name in sorted(names):
                top = name.split(".")[0]
                if FIRST_PARTY.match(top):
                    todo.extend(f for n in _with_parents(name) if (f := module_file(n)) is not None)
                elif top and top not in sys.stdlib_module_names and top != "__future__":
                    bucket.setdefault(top, str(path.relative_to(ROOT)))
    for top in result.required:
        result.optional.pop(top, None)
    return result


def normalize(dist: str) -> str:
    """PEP 503 normalised distribution name (``Pillow`` -> ``pillow``, ``paho_mqtt`` -> ``paho-mqtt``)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@cache
def _module_map() -> dict[str, frozenset[str]]:
    return {
        top: frozenset(normalize(d) for d in dists)
        for top, dists in importlib.metadata.packages_distributions().items()
    }


def distributions_of(module: str) -> frozenset[str]:
    """Installed distributions providing top-level ``module`` (empty when none here provides it)."""
    return _module_map().get(module, frozenset())
