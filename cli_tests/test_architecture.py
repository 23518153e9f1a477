"""The package's shape, checked: no import cycles (type-only and function-level imports included), the library
never imports the CLI, and docs/architecture.md lists every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "icdreason"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def import_graph() -> dict[str, set[str]]:
    """Every icdreason module -> the icdreason modules it imports anywhere in its file (top level, inside functions,
    under ``if TYPE_CHECKING:``). ``from pkg import name`` counts as importing ``pkg.name`` when that is a module."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        base = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                    module = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            else:
                continue
            edges.update(t for t in map(known, (t for t in targets if t.startswith("icdreason"))) if t)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_never_imports_the_cli():
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d == "icdreason.cli" or d.startswith("icdreason.cli."))
                 for m, deps in graph.items()
                 if not (m == "icdreason.cli" or m.startswith("icdreason.cli.")) and m != "icdreason.__main__"}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_graph_sees_function_level_and_type_only_imports():
    graph = import_graph()
    # predict.py imports the engine registry inside build_engine(); the KB store imports its search lazily
    assert "icdreason.engines.registry" in graph["icdreason.predict"]
    assert graph["icdreason.cli"]  # the CLI package imports its command modules


def undocumented_modules(doc: str) -> list[str]:
    """Modules and packages of icdreason that ``doc`` does not name in backticks by their path (``kb/alpha/parse.py``,
    ``kb/alpha/``)."""
    named = set(re.findall(r"`([a-z0-9_/]+(?:\.py|/))`", doc))
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__main__.py" or (relative.name == "__init__.py" and relative.parent == Path(".")):
            continue
        key = f"{relative.parent.as_posix()}/" if relative.name == "__init__.py" else relative.as_posix()
        if key not in named:
            missing.append(key)
    return missing


def test_the_architecture_page_lists_every_module():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert undocumented_modules(doc) == []
    assert "](../" not in doc and "../shared" not in doc  # the page stands on its own


def test_the_module_list_check_finds_a_missing_module():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert undocumented_modules(doc.replace("`kb/alpha/words.py`", "words")) == ["kb/alpha/words.py"]
