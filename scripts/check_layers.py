"""Imports run downhill: every vitdeploy module stands on a floor (docs/architecture.md) and
imports only from its own floor or below, with no import circle. `make check` runs this.

    python scripts/check_layers.py [--graph]

Every import counts, lazy ones inside functions too. The one way up is a plugin façade that says
so: an import line ending in ``# layers: façade (why)``. Exit 1 with one line per upward import,
circle or module without a floor; ``--graph`` prints each module's floor and imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vitdeploy"
MARKER = "# layers: façade"

# floor -> module prefixes (dotted, below vitdeploy); the longest matching prefix wins
FLOORS: dict[int, tuple[str, ...]] = {
    0: ("errors", "options", "quiet", "resources", "about", "ray_local"),
    1: ("models", "checkpoint", "zoo"),
    2: ("artifact", "precision", "preprocess", "lite"),
    3: ("runtimes",),
    4: ("predictor",),
    5: ("export", "convert", "quantize", "check", "bench", "bundles", "doctor", "search", "bulk"),
    6: ("cli", "serve", "report", ""),  # "": the package's own __init__ (its public face)
}
NAMES = {0: "ground", 1: "models", 2: "formats and toolchains", 3: "runtimes", 4: "predictor",
         5: "workflows", 6: "interface"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, floor)
    for floor, prefixes in FLOORS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + ".") or (prefix == "" and module == ""):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), floor)
    return best[1] if best else None


def _exists(module: str) -> bool:
    base = PACKAGE.joinpath(*module.split(".")) if module else PACKAGE
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported vitdeploy module, line, marked as a façade) for every import in ``path``."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name.removeprefix("vitdeploy").lstrip(".") for a in node.names
                       if a.name == "vitdeploy" or a.name.startswith("vitdeploy.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1] if node.level > 1 else base
                stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == "vitdeploy" or node.module.startswith("vitdeploy.")):
                stem = node.module.removeprefix("vitdeploy").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import lite`: the submodule, when there is one
                sub = f"{stem}.{alias.name}" if stem else alias.name
                targets.append(sub if sub in modules else stem)
        marked = any(MARKER in lines[n - 1] for n in range(node.lineno, getattr(node, "end_lineno",
                                                                                node.lineno) + 1)) \
            if targets else False
        found += [(t, node.lineno, marked) for t in targets if t != me]
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(show_graph: bool = False) -> list[str]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    problems, graph = [], {}
    for path in files:
        me = module_name(path)
        mine = floor_of(me)
        if mine is None:
            problems.append(f"{path.relative_to(ROOT)}: module {me!r} has no floor in "
                            "scripts/check_layers.py FLOORS")
            continue
        edges = imports(path, modules)
        graph[me] = {t for t, _, marked in edges if not marked and _exists(t)}
        if show_graph:
            print(f"{mine} {me or 'vitdeploy'}: {', '.join(sorted(graph[me])) or '-'}")
        for target, line, marked in edges:
            theirs = floor_of(target)
            if theirs is not None and theirs > mine and not marked:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {me or 'vitdeploy'} "
                                f"({NAMES[mine]}) imports {target or 'vitdeploy'} "
                                f"({NAMES[theirs]}), a floor up")
    for comp in _cycles(graph):
        problems.append("import circle: " + " -> ".join(comp))
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", action="store_true", help="print every module's floor and imports")
    problems = check(ap.parse_args().graph)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} layering problem(s); see docs/architecture.md", file=sys.stderr)
        return 1
    print(f"imports run downhill: {sum(1 for _ in PACKAGE.rglob('*.py'))} modules, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
