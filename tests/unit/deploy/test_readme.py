"""The README's Repository table names every folder of the tree, and only folders that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def table_folders() -> set[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Repository", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)/` \|", section, flags=re.M))


def test_every_package_and_top_level_folder_is_in_the_repository_table() -> None:
    folders = table_folders()
    top = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    top -= {"node_modules", "build", "dist"} | {p for p in top if p.endswith(".egg-info")}
    expected = {t for t in top if (REPO / t).is_dir() and any((REPO / t).glob("*"))}
    expected -= {"tests"}  # listed by its parts
    packages = {
        str(p.parent.relative_to(REPO))
        for p in (REPO / "streams").glob("*/__init__.py")
    }
    test_parts = {f"tests/{p.name}" for p in (REPO / "tests").iterdir()
                  if p.is_dir() and p.name != "__pycache__"}
    missing = (expected | packages | test_parts) - folders
    assert not missing, f"README's Repository table lacks: {sorted(missing)}"
    absent = {f for f in folders if not (REPO / f).is_dir()}
    assert not absent, f"README's Repository table names folders that do not exist: {sorted(absent)}"
