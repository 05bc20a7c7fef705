"""Architecture rules for config/, streams/ and producers/, checked statically with ``ast``.

Each rule is one test on the real tree; the ``test_detector_*`` tests run the
same checks on a small synthetic tree, so that a rule that can no longer fail
is noticed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.unit.support_architecture import (
    MAX_CLASS_LINES,
    MAX_FUNCTION_LINES,
    PACKAGES,
    discover,
    environment_reads,
    import_cycles,
    import_graph,
    layering_violations,
    long_definitions,
    missing_docstrings,
    strongly_connected_components,
)


@pytest.fixture(scope="module")
def modules():
    found = discover()
    assert found, f"no modules found under {PACKAGES}"
    return found


def _report(title: str, lines: list[str], count: int | None = None) -> str:
    count = len(lines) if count is None else count
    return f"{title} ({count}):\n" + "\n".join(f"  {line}" for line in lines)


# --- the rules, on the real tree ---------------------------------------------------------


def test_no_import_cycles(modules) -> None:
    cycles = import_cycles(modules)
    assert not cycles, _report(
        "strongly connected groups of modules, each with its import cycles (file:line of every hop); "
        "every import statement counts, in functions and under TYPE_CHECKING too",
        cycles,
        count=sum(not line.startswith(" ") for line in cycles),
    )


def test_no_long_classes_or_functions(modules) -> None:
    offenders = long_definitions(modules)
    assert not offenders, _report(
        f"classes over {MAX_CLASS_LINES} lines or functions over {MAX_FUNCTION_LINES} lines",
        offenders,
    )


def test_every_module_has_a_docstring(modules) -> None:
    offenders = missing_docstrings(modules)
    assert not offenders, _report("modules without a docstring whose first line says something", offenders)


def test_only_config_reads_the_environment(modules) -> None:
    offenders = environment_reads(modules)
    assert not offenders, _report("environment access outside config/", offenders)


def test_layering_config_then_streams_then_producers(modules) -> None:
    offenders = layering_violations(modules)
    assert not offenders, _report(
        "imports against the layering config <- streams <- producers "
        "(config/ imports neither, streams/ never imports producers/)",
        offenders,
    )


# --- the detectors, on a synthetic tree ---------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relpath, source in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def test_detector_finds_cycles_through_functions_and_type_checking(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""Package."""\n',
            "pkg/a.py": '''\
                """A."""
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from pkg.b import Thing
                ''',
            "pkg/b.py": '''\
                """B."""
                def late():
                    from . import c
                ''',
            "pkg/c.py": '''\
                """C."""
                import pkg.a
                ''',
            "pkg/d.py": '"""D."""\nfrom pkg import a\n',
        },
    )
    mods = discover(root, ["pkg"])
    cycles = import_cycles(mods)
    assert cycles[0] == "cycle among {pkg.a, pkg.b, pkg.c}:"
    assert cycles[1] == "    pkg.a -> pkg.b (pkg/a.py:4) -> pkg.c (pkg/b.py:3) -> pkg.a (pkg/c.py:2)"
    assert len(cycles) == 2


def test_detector_ignores_the_implicit_parent_package_import(tmp_path: Path) -> None:
    # pkg/__init__ re-exports its submodules, which import each other and their
    # sibling package by full dotted name: running pkg/__init__ implicitly is not an edge.
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""Package."""\nfrom pkg.sub.x import X\nfrom pkg.y import Y\n',
            "pkg/sub/__init__.py": '"""Sub."""\nfrom .x import X\n',
            "pkg/sub/x.py": '"""X."""\nfrom .. import y\nX = y.Y\n',
            "pkg/y.py": '"""Y."""\nimport pkg.z\nY = 1\n',
            "pkg/z.py": '"""Z."""\n',
        },
    )
    mods = discover(root, ["pkg"])
    assert import_cycles(mods) == []
    graph = import_graph(mods)
    assert set(graph["pkg"]) == {"pkg.sub.x", "pkg.y"}
    assert set(graph["pkg.sub"]) == {"pkg.sub.x"}
    assert set(graph["pkg.sub.x"]) == {"pkg.y"}
    assert set(graph["pkg.y"]) == {"pkg.z"}


def test_detector_counts_importing_a_package_as_its_init(tmp_path: Path) -> None:
    # pkg/__init__ imports pkg.a, and pkg.a imports a name from pkg itself: a real cycle.
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": '"""Package."""\nfrom pkg.a import A\nNAME = 1\n',
            "pkg/a.py": '"""A."""\nfrom pkg import NAME\nA = NAME\n',
        },
    )
    cycles = import_cycles(discover(root, ["pkg"]))
    assert cycles == ["cycle among {pkg, pkg.a}:", "    pkg -> pkg.a (pkg/__init__.py:2) -> pkg (pkg/a.py:2)"]


def test_tarjan_finds_every_component() -> None:
    graph = {"a": {"b": []}, "b": {"a": []}, "c": {"d": []}, "d": {"e": []}, "e": {"c": []}, "f": {"a": []}}
    assert strongly_connected_components(graph) == [["a", "b"], ["c", "d", "e"], ["f"]]


def test_detector_finds_long_definitions(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    long_body = body + "\n    x = 0"
    source = (
        '"""M."""\n'
        "@decorator\n"  # decorators do not count
        "@decorator\n"
        f"def fits():\n{body}\n\n"
        f"def too_long():\n{long_body}\n\n"
        "class Big:\n" + "\n".join(f"    y{i} = {i}" for i in range(MAX_CLASS_LINES)) + "\n"
    )
    root = _tree(tmp_path, {"pkg/__init__.py": '"""P."""\n', "pkg/m.py": source})
    offenders = long_definitions(discover(root, ["pkg"]))
    assert offenders == [
        f"pkg/m.py:{4 + MAX_FUNCTION_LINES + 1} too_long ({MAX_FUNCTION_LINES + 1} lines; function limit {MAX_FUNCTION_LINES})",
        f"pkg/m.py:{4 + 2 * (MAX_FUNCTION_LINES + 1) + 1} Big ({MAX_CLASS_LINES + 1} lines; class limit {MAX_CLASS_LINES})",
    ]


def test_detector_finds_missing_docstrings(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/good.py": '"""Says something.\n\nMore.\n"""\n',
            "pkg/blank_first_line.py": '"""\nSays it too late.\n"""\n',
            "pkg/comment_only.py": "# a comment is not a docstring\nx = 1\n",
        },
    )
    assert missing_docstrings(discover(root, ["pkg"])) == [
        "pkg/__init__.py: no module docstring",
        "pkg/blank_first_line.py: the docstring's first line is empty",
        "pkg/comment_only.py: no module docstring",
    ]


def test_detector_finds_environment_reads(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "config/__init__.py": '"""C."""\nimport os\nX = os.environ["X"]\n',
            "streams/__init__.py": '"""S."""\n',
            "streams/a.py": '"""A."""\nimport os\ndef f():\n    return os.getenv("X")\n',
            "streams/b.py": '"""B."""\nimport os as o\nY = o.environ.get("Y")\n',
            "producers/__init__.py": '"""P."""\n',
            "producers/c.py": '"""C."""\nfrom os import environ\nimport os.path\nZ = os.path.join("a")\n',
        },
    )
    assert environment_reads(discover(root, PACKAGES)) == [
        "producers/c.py:2 from os import environ",
        "streams/a.py:4 os.getenv",
        "streams/b.py:3 os.environ",
    ]


def test_detector_finds_layering_violations(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "config/__init__.py": '"""C."""\n',
            "config/settings.py": '"""S."""\ndef f():\n    from streams import events\n',
            "streams/__init__.py": '"""S."""\n',
            "streams/events.py": '"""E."""\nfrom config.settings import f\n',
            "streams/b.py": '"""B."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import producers.cli\n',
            "producers/__init__.py": '"""P."""\n',
            "producers/cli.py": '"""C."""\nfrom streams.events import E\nfrom config import settings\n',
        },
    )
    assert layering_violations(discover(root, PACKAGES)) == [
        "config/settings.py:3: config.settings imports streams.events",
        "streams/b.py:4: streams.b imports producers.cli",
    ]
