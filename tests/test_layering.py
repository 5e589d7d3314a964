"""The core's layering: no import cycle among ganzoo's modules (module-level imports; imports
inside functions are deliberate late bindings), and ``ganzoo.__all__`` is what it exports."""
from __future__ import annotations

import ast
from pathlib import Path

import ganzoo

ROOT = Path(ganzoo.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in ast.walk(node) if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)) else []:
                if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    targets = [sub.module] + [f"{sub.module}.{a.name}" for a in sub.names]
                elif isinstance(sub, ast.Import):
                    targets = [a.name for a in sub.names]
                else:
                    continue
                deps |= {t for t in targets if t in modules and t != name}
        # a package's __init__ runs before its submodules: importing ganzoo.x imports ganzoo
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_public_api_is_all_of_it():
    assert sorted(ganzoo.__all__) == sorted(set(ganzoo.__all__))
    for name in ganzoo.__all__:
        assert hasattr(ganzoo, name), name
