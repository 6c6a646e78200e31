"""The package layout holds: imports point down the layers, no cycle, small modules.

Layers, lowest first (a module may import its own subpackage and the ones below):

    core < data < models < engines < quality < experiments < fleet < report < top level (cli, notebook)

A saraikit import inside a function hides who depends on whom; it is allowed
only with a ``# lazy:`` comment on the line saying why (a heavy optional
dependency, or a spawned worker that must import little).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "saraikit"
LAYERS = ["core", "data", "models", "engines", "quality", "experiments", "fleet", "report"]
TOP_RANK = len(LAYERS)
MAX_LINES = 520  # "about 500"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return TOP_RANK


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if not prefix.startswith("saraikit"):
        return []
    return [f"{prefix}.{a.name}" if _is_module(f"{prefix}.{a.name}") else prefix for a in node.names]


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def _imports():
    """(importer, imported, line, lineno, top_level) for every saraikit import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(node, module, path.name == "__init__.py")
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("saraikit")]
            else:
                continue
            for target in targets:
                found.append((module, target, lines[node.lineno - 1], node.lineno, id(node) in top_level, path))
    return found


def test_imports_point_down_the_layers():
    upward = [f"{path.relative_to(PACKAGE.parent)}:{lineno} {importer} -> {imported}"
              for importer, imported, _, lineno, _, path in _imports()
              if _rank(imported) > _rank(importer)]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for importer, imported, _, _, top, _ in _imports():
        if importer != imported:
            graph.setdefault(importer, set()).add(imported)
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    # a package __init__ that re-exports nothing is not part of a cycle; everything else is
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_function_local_saraikit_imports_say_why():
    hidden = [f"{path.relative_to(PACKAGE.parent)}:{lineno}: {line.strip()}"
              for _, _, line, lineno, top, path in _imports()
              if not top and "# lazy:" not in line]
    assert not hidden, "function-local saraikit imports without a '# lazy:' reason:\n" + "\n".join(hidden)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (limit about 500): split it"


def test_every_subpackage_says_what_it_holds_and_may_import():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
        assert "may import" in doc.lower(), f"saraikit/{layer}/__init__.py must say what lives there and what it may import"
