"""Print the import graph between basketflow's parts, and its largest modules.

Each line ``A -> B  (n)`` says that modules of part A import part B, n times; a part is a
subpackage or a top-level module of ``basketflow`` (``flows``, ``sinks``, ``cli``, ...).
Pairs that import each other are marked ``<->``, and so are modules that import each
other (also from inside a function). ``--legacy DIR`` reads a source tree of
the old layout (top-level packages ``flows``, ``sinks``, ... beside ``basketflow``), such
as ``git archive ae9f3f1 | tar -x -C DIR``, for a before-and-after comparison.

    python tools/import_graph.py
    python tools/import_graph.py --legacy /tmp/before
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import grimp

LEGACY_PACKAGES = ("basketflow", "schemas", "producers", "flows", "sinks", "reports")


def _part(module: str, legacy: bool) -> str:
    """The part a module belongs to: its top package (old layout) or its second name."""
    names = module.split(".")
    if legacy:
        return names[0] if names[0] != "basketflow" or len(names) < 2 else module
    return names[1] if len(names) > 1 else names[0]


def build(legacy_dir: Path | None) -> grimp.ImportGraph:
    """The module import graph of this tree, or of an old-layout tree."""
    if legacy_dir is not None:
        sys.path.insert(0, str(legacy_dir))
        return grimp.build_graph(*LEGACY_PACKAGES, cache_dir=None)
    return grimp.build_graph("basketflow", cache_dir=None)


def module_cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Pairs of modules that import each other (at any place in the module)."""
    return sorted((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                  if a < b and a in graph.find_modules_directly_imported_by(b))


def edges(graph: grimp.ImportGraph, legacy: bool) -> Counter[tuple[str, str]]:
    """``(importer part, imported part) -> number of imports`` between distinct parts."""
    counts: Counter[tuple[str, str]] = Counter()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = _part(importer, legacy), _part(imported, legacy)
            if a != b:
                counts[a, b] += 1
    return counts


def largest_modules(root: Path, legacy: bool, n: int = 8) -> list[tuple[int, str]]:
    """The ``n`` longest Python modules (lines) of the tree."""
    folders = LEGACY_PACKAGES if legacy else (
        "basketflow", "schemas", "producers", "sinks", "features", "models", "flows", "reports")
    sizes = [(len(p.read_text().splitlines()), str(p.relative_to(root)))
             for folder in folders if (root / folder).is_dir() and not (root / folder).is_symlink()
             for p in (root / folder).rglob("*.py") if not any(s.is_symlink() for s in p.parents)]
    return sorted(sizes, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--legacy", type=Path, help="a source tree of the old layout")
    args = parser.parse_args()
    graph = build(args.legacy)
    counts = edges(graph, args.legacy is not None)
    for (a, b), n in sorted(counts.items()):
        arrow = "<->" if (b, a) in counts else "->"
        print(f"{a:>28} {arrow} {b:<22} ({n})")
    cycles = {frozenset(pair) for pair in counts if pair[::-1] in counts}
    print(f"\n{len(counts)} edges between parts, {len(cycles)} pairs importing each other")
    for a, b in module_cycles(graph):
        print(f"modules importing each other: {a} <-> {b}")
    print("\nlargest modules (lines):")
    root = args.legacy or Path(__file__).resolve().parents[1]
    for lines, path in largest_modules(root, args.legacy is not None):
        print(f"  {lines:>5}  {path}")


if __name__ == "__main__":
    main()
