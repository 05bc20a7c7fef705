"""Static checks of the source tree, read with ``ast`` and never imported.

The rules live here as plain functions of a source root, so that
``tests/unit/test_architecture.py`` can run each one on the real packages and
also on a small synthetic tree, which proves the rule can fail.

Every check returns a list of human-readable violations; an empty list means
the rule holds.

>>> resolve_from("streams.app", "factory", {"streams.app", "streams.app.factory"})
'streams.app.factory'
>>> resolve_from("streams.app", "Factory", {"streams.app", "streams.app.factory"})
'streams.app'
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: the packages these rules cover, in layer order: a package may import only
#: from itself and from the packages before it (config <- streams <- producers)
PACKAGES: tuple[str, ...] = ("config", "streams", "producers")

#: the repository root (tests/unit/support_architecture.py -> ../..)
REPO_ROOT = Path(__file__).resolve().parents[2]

MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80

#: the only package that may read the environment
ENVIRONMENT_PACKAGE = "config"
#: attributes of ``os`` that read (or change) the process environment
ENVIRONMENT_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})


@dataclass(frozen=True)
class SourceModule:
    """One ``.py`` file, with its dotted module name (a package is its ``__init__``)."""

    name: str
    path: Path
    root: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        """The package relative imports are resolved against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def relpath(self) -> str:
        return self.path.relative_to(self.root).as_posix()

    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))


@dataclass(frozen=True)
class ImportSite:
    """Where one explicit import statement names another module of the tree."""

    source: str
    target: str
    relpath: str
    lineno: int

    def __str__(self) -> str:
        return f"{self.relpath}:{self.lineno}"


def module_name(root: Path, path: Path) -> str:
    """``root/a/b/c.py`` -> ``a.b.c``; ``root/a/b/__init__.py`` -> ``a.b``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path = REPO_ROOT, packages: Iterable[str] = PACKAGES) -> list[SourceModule]:
    """Every ``.py`` file under the given top-level packages, sorted by module name."""
    found: list[SourceModule] = []
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            found.append(SourceModule(module_name(root, path), path, root))
    return sorted(found, key=lambda module: module.name)


def resolve_module(dotted: str, known: set[str]) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the tree, if any.

    ``import a.b.c`` imports ``a.b.c`` (and implicitly runs ``a`` and ``a.b``,
    which are *not* edges).
    """
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def resolve_from(base: str, name: str, known: set[str]) -> str | None:
    """``from base import name``: the submodule ``base.name`` if it exists, else ``base``."""
    if name != "*" and f"{base}.{name}" in known:
        return f"{base}.{name}"
    return resolve_module(base, known)


def absolute_base(module: SourceModule, node: ast.ImportFrom) -> str | None:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module
    parts = module.package.split(".") if module.package else []
    up = node.level - 1
    if up > len(parts):
        return None  # relative import beyond the top level: not ours
    parts = parts[: len(parts) - up]
    if node.module:
        parts.append(node.module)
    return ".".join(parts) or None


def import_sites(module: SourceModule, known: set[str], tree: ast.Module | None = None) -> Iterator[ImportSite]:
    """Every import statement anywhere in the file (module level, in functions,
    under ``if TYPE_CHECKING:``) that names a module of the tree."""
    tree = tree if tree is not None else module.tree()
    for node in ast.walk(tree):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [resolve_module(alias.name, known) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(module, node)
            if base is not None:
                targets = [resolve_from(base, alias.name, known) for alias in node.names]
        for target in dict.fromkeys(targets):  # one site per statement and target
            if target is not None:
                yield ImportSite(module.name, target, module.relpath, node.lineno)


Graph = Mapping[str, Mapping[str, list[ImportSite]]]


def import_graph(modules: Iterable[SourceModule]) -> dict[str, dict[str, list[ImportSite]]]:
    """module -> imported module -> the statements that import it.

    Self-imports (a package ``__init__`` naming its own non-module attribute)
    are not edges: a module cannot wait on itself.
    """
    modules = list(modules)
    known = {module.name for module in modules}
    graph: dict[str, dict[str, list[ImportSite]]] = {module.name: {} for module in modules}
    for module in modules:
        for site in import_sites(module, known):
            if site.target != module.name:
                graph[module.name].setdefault(site.target, []).append(site)
    return graph


def strongly_connected_components(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components are sorted, singletons included."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = lowlink[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = lowlink[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    lowlink[node] = min(lowlink[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def elementary_cycles(graph: Graph, component: list[str], limit: int = 50) -> list[list[str]]:
    """Simple cycles inside one strongly connected component, each starting at
    its smallest module (so each is listed once), at most ``limit`` of them."""
    members = set(component)
    cycles: list[list[str]] = []
    for start in sorted(members):
        allowed = {m for m in members if m >= start}
        path = [start]
        on_path = {start}
        work: list[Iterator[str]] = [iter(sorted(graph[start]))]
        while work:
            if len(cycles) >= limit:
                return cycles
            succ = next(work[-1], None)
            if succ is None:
                work.pop()
                on_path.discard(path.pop())
                continue
            if succ == start:
                cycles.append([*path, start])
            elif succ in allowed and succ not in on_path:
                path.append(succ)
                on_path.add(succ)
                work.append(iter(sorted(graph[succ])))
    return cycles


def describe_cycle(graph: Graph, cycle: list[str]) -> str:
    """``a -> b (a.py:3) -> a (b.py:7)``: every hop with the statement that makes it."""
    hops = [cycle[0]]
    for source, target in itertools.pairwise(cycle):
        where = ", ".join(str(site) for site in graph[source][target])
        hops.append(f"{target} ({where})")
    return " -> ".join(hops)


def import_cycles(modules: Iterable[SourceModule]) -> list[str]:
    """One line per import cycle: the component, then each of its simple cycles."""
    graph = import_graph(modules)
    report: list[str] = []
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue
        report.append(f"cycle among {{{', '.join(component)}}}:")
        limit = 50
        cycles = elementary_cycles(graph, component, limit=limit)
        report.extend(f"    {describe_cycle(graph, cycle)}" for cycle in cycles)
        if len(cycles) >= limit:
            report.append(f"    ... (first {limit} cycles shown)")
    return report


def long_definitions(
    modules: Iterable[SourceModule],
    max_class: int = MAX_CLASS_LINES,
    max_function: int = MAX_FUNCTION_LINES,
) -> list[str]:
    """Classes and functions (methods and nested ones included) over their limit.

    Length is ``end_lineno - lineno + 1`` of the node: from the ``def``/``class``
    line (decorators excluded) to its last line.
    """
    offenders: list[str] = []
    for module in modules:
        for node in ast.walk(module.tree()):
            if isinstance(node, ast.ClassDef):
                limit, kind = max_class, "class"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit, kind = max_function, "function"
            else:
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                offenders.append(
                    f"{module.relpath}:{node.lineno} {node.name} ({length} lines; {kind} limit {limit})"
                )
    return sorted(offenders, key=_natural_site)


def missing_docstrings(modules: Iterable[SourceModule]) -> list[str]:
    """Modules without a docstring, or whose docstring's first line is blank."""
    offenders: list[str] = []
    for module in modules:
        docstring = ast.get_docstring(module.tree(), clean=False)
        if docstring is None:
            offenders.append(f"{module.relpath}: no module docstring")
        elif not docstring.split("\n", 1)[0].strip():
            offenders.append(f"{module.relpath}: the docstring's first line is empty")
    return offenders


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def environment_reads(modules: Iterable[SourceModule], allowed: str = ENVIRONMENT_PACKAGE) -> list[str]:
    """Uses of ``os.environ``/``os.getenv`` (and friends) outside the ``allowed`` package.

    Catches ``os.environ``, ``import os as o; o.getenv``, ``from os import environ``,
    and ``pydantic_settings`` (whose ``BaseSettings`` reads the environment).
    """
    offenders: list[str] = []
    for module in modules:
        if _in_package(module.name, allowed):
            continue
        tree = module.tree()
        os_aliases = {"os"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                os_aliases.update(alias.asname or alias.name for alias in node.names if alias.name == "os")
        for node in ast.walk(tree):
            what: str | None = None
            if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
                if isinstance(node.value, ast.Name) and node.value.id in os_aliases:
                    what = f"os.{node.attr}"
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
                names = [alias.name for alias in node.names if alias.name in ENVIRONMENT_NAMES or alias.name == "*"]
                if names:
                    what = f"from os import {', '.join(names)}"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pydantic_settings":
                what = f"from {node.module} import ..."
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "pydantic_settings"]
                if names:
                    what = f"import {', '.join(names)}"
            if what is not None:
                offenders.append(f"{module.relpath}:{node.lineno} {what}")
    return sorted(offenders, key=_natural_site)


def layering_violations(modules: Iterable[SourceModule], layers: tuple[str, ...] = PACKAGES) -> list[str]:
    """Imports from a later layer into an earlier one (config <- streams <- producers)."""
    modules = list(modules)
    known = {module.name for module in modules}
    rank = {package: position for position, package in enumerate(layers)}
    offenders: list[str] = []
    for module in modules:
        own = rank.get(module.name.split(".")[0])
        if own is None:
            continue
        for site in import_sites(module, known):
            theirs = rank.get(site.target.split(".")[0])
            if theirs is not None and theirs > own:
                offenders.append(f"{site}: {module.name} imports {site.target}")
    return sorted(offenders, key=_natural_site)


def _natural_site(line: str) -> tuple[str, int, str]:
    """Sort ``path:line ...`` by path, then by line number."""
    where, _, rest = line.partition(" ")
    path, _, lineno = where.rstrip(":").rpartition(":")
    return (path, int(lineno) if lineno.isdigit() else 0, rest)
