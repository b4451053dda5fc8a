"""Imports point one way: the layers of ``pyproject.toml`` ([tool.importlinter]) hold, and
nothing imports the repository's folders by their bare names (``flows``, ``sinks``, ...),
which are not installed."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("schemas", "producers", "sinks", "features", "models", "flows", "reports")


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    done = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _python_files() -> list[Path]:
    roots = [REPO / name for name in (*FOLDERS, "basketflow", "tests", "benchmarks")]
    return sorted(p for root in roots for p in root.rglob("*.py") if not root.is_symlink())


def test_nothing_imports_a_folder_by_its_bare_name() -> None:
    bare = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            bare += [f"{path.relative_to(REPO)}: {n}" for n in names
                     if n.split(".")[0] in FOLDERS]
    assert not bare, "import these through basketflow.<folder>:\n" + "\n".join(bare)
