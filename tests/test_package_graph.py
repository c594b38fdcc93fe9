"""The import graph of gradcheck at the PACKAGE level has no cycle, and gradcheck.theory stays a
leaf (pure math: no measurement, claim, report, training, pipeline or CLI code).

Imports are read with ``ast`` from every module of ``gradcheck/`` — module level and inside
functions, classes and ``try`` blocks; relative imports resolved; ``from P import name`` counts as
an import of the submodule ``P.name`` when that is a module, else of ``P``. Imports under
``if TYPE_CHECKING:`` never run and are left out of the cycle check (they are still listed in
the failure message when they would close a cycle). Nodes: each subpackage
(``gradcheck.probe``, ``gradcheck.claims``, ...) and each top-level module (``gradcheck.cli``,
``gradcheck.pipeline``, ...); the root package ``gradcheck`` itself is a node too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gradcheck"
PKG = "gradcheck"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = [PKG, *p.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _node(mod: str) -> str:
    """The package-level node of a gradcheck module: 'gradcheck.<first component>'."""
    parts = mod.split(".")
    return ".".join(parts[:2])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(mod: str, path: Path):
    """Yield ``(target module, line, type_only)`` for every gradcheck import in ``mod``."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                for n in ast.walk(sub):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        type_only_lines.add(n.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                assert base, f"{path}:{node.lineno}: relative import beyond the package"
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            targets = []
            for a in node.names:
                sub = f"{src}.{a.name}"
                targets.append(sub if sub in MODULES else src)
        else:
            continue
        for t in targets:
            if t == PKG or t.startswith(PKG + "."):
                yield t, node.lineno, node.lineno in type_only_lines


def _edges(include_type_only: bool = False) -> dict[tuple[str, str], list[str]]:
    """(from node, to node) -> evidence 'file:line' for every cross-node import."""
    edges: dict[tuple[str, str], list[str]] = {}
    for mod, path in MODULES.items():
        for target, line, type_only in _imports(mod, path):
            if type_only and not include_type_only:
                continue
            a, b = _node(mod), _node(target)
            if a != b:
                where = f"{path.relative_to(ROOT.parent)}:{line}" + (" (TYPE_CHECKING)"
                                                                      if type_only else "")
                ev = edges.setdefault((a, b), [])
                if where not in ev:
                    ev.append(where)
    return edges


def _cycles(edges) -> list[list[str]]:
    """Concrete cycles: for every strongly connected component with more than one node
    (Tarjan), the shortest cycle through each of its members (BFS), duplicates dropped."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    cycles = []
    for comp in sccs:
        members = set(comp)
        for start in comp:          # one shortest cycle through every member of the component
            prev, frontier, seen = {}, [start], {start}
            found = None
            while frontier and found is None:
                nxt = []
                for v in frontier:
                    for w in sorted(graph[v] & members):
                        if w == start:
                            found = v
                            break
                        if w not in seen:
                            seen.add(w)
                            prev[w] = v
                            nxt.append(w)
                    if found is not None:
                        break
                frontier = nxt
            path = [found]
            while path[-1] != start:
                path.append(prev[path[-1]])
            cyc = path[::-1] + [start]
            key = frozenset(zip(cyc, cyc[1:]))
            if all(frozenset(zip(c, c[1:])) != key for c in cycles):
                cycles.append(cyc)
    return cycles


def _describe(cycles, edges) -> str:
    lines = []
    for cyc in cycles:
        lines.append(" -> ".join(cyc))
        for a, b in zip(cyc, cyc[1:]):
            lines.append(f"    {a} -> {b}: " + ", ".join(edges[(a, b)][:4])
                         + (" ..." if len(edges[(a, b)]) > 4 else ""))
    return "\n".join(lines)


def test_modules_are_found():
    assert f"{PKG}.claims" in MODULES and f"{PKG}.theory.graph" in MODULES
    assert f"{PKG}.cli" in MODULES and f"{PKG}.pipeline" in MODULES
    nodes = {_node(m) for m in MODULES}
    assert {f"{PKG}.{n}" for n in ("probe", "claims", "theory", "schemes", "models", "report",
                                   "train", "cli", "pipeline")} <= nodes


def test_relative_imports_are_resolved():
    edges = _edges()
    # claims/c1_gradient_bound.py: 'from ..theory.bounds import ...' (module level)
    assert (f"{PKG}.claims", f"{PKG}.theory") in edges
    # claims/_base.py: 'from ..schemes.registry import SCHEMES' inside a property
    assert any("claims/_base.py" in w for w in edges[(f"{PKG}.claims", f"{PKG}.schemes")])


def test_no_package_level_import_cycle():
    edges = _edges()
    cycles = _cycles(edges)
    typed = _edges(include_type_only=True)
    extra = [c for c in _cycles(typed) if c not in cycles]
    msg = "package-level import cycles (runtime imports, incl. function-level):\n" + \
        _describe(cycles, edges)
    inside = {n for c in cycles for n in c}
    msg += "\nevery import between the nodes on these cycles:\n" + "\n".join(
        f"    {a} -> {b}: " + ", ".join(w) for (a, b), w in sorted(edges.items())
        if a in inside and b in inside)
    if extra:
        msg += "\nfurther cycles through TYPE_CHECKING-only imports:\n" + _describe(extra, typed)
    assert not cycles, msg


def test_theory_is_a_leaf():
    forbidden = {f"{PKG}.{n}" for n in ("probe", "claims", "report", "train", "pipeline", "cli")}
    bad = []
    for mod, path in MODULES.items():
        if _node(mod) != f"{PKG}.theory":
            continue
        for target, line, _ in _imports(mod, path):      # type-only imports count here too
            if _node(target) in forbidden:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert not bad, "gradcheck.theory must stay pure math:\n" + "\n".join(bad)


def test_cycle_finder_on_known_graphs():
    dag = {("a", "b"): ["x"], ("b", "c"): ["x"], ("a", "c"): ["x"]}
    assert _cycles(dag) == []
    cyc = _cycles({**dag, ("c", "a"): ["x"], ("d", "a"): ["x"]})
    assert cyc and all(c[0] == c[-1] for c in cyc)
    assert {n for c in cyc for n in c} == {"a", "b", "c"}
