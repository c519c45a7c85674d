"""One layering for the whole house (issue 35): ``kfp_llmops/`` (the shared library) never imports a component, a
component imports only ``kfp_llmops`` and its own folder, and no modules import each other in a circle. Every import
counts, at module level or inside a function, and so does a module named in a string (an import table).

``setup.py`` maps ``components/``, ``pipelines/`` and ``cli/`` to ``kfp_llmops.components``, ``.pipelines`` and ``.cli``;
pipelines and the CLI are the applications on top and may import any component. ``KNOWN`` listed what was still to be
moved while issue 35 moved it, and is empty: the test fails on any crossing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("kfp_llmops.pipelines", "kfp_llmops.cli")  # the top: may use any component

# (importing module, imported component) still to be moved down into kfp_llmops/ (issue 35)
KNOWN: set[tuple[str, str]] = set()  # none left
KNOWN_CIRCLES: set[frozenset] = set()  # none left


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] in ("components", "pipelines", "cli"):
        parts = ["kfp_llmops", *parts]
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [p for top in ("kfp_llmops", "components", "pipelines", "cli") for p in ROOT.glob(f"{top}/**/*.py")]
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module of ours that ``path`` imports (or names in a string), resolved to a module that exists."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"kfp_llmops(\.\w+)+", node.value):
            names = [node.value]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("kfp_llmops"):
                found.add(name)
    return found


def component(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[2:4]) if parts[:2] == ["kfp_llmops", "components"] and len(parts) >= 4 else None


def graph() -> dict[str, set[str]]:
    mods = sources()
    return {m: imports(p, set(mods)) - {m} for m, p in mods.items()}


def crossings(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    out = set()
    for src, targets in edges.items():
        if src.startswith(APPS):
            continue
        for dst in targets:
            theirs, ours = component(dst), component(src)
            if ours is None and dst.startswith(APPS):
                out.add((src, dst.split(".")[1]))  # the library reaching up into the pipelines or the CLI
                continue
            if theirs is None or theirs == ours or dst.startswith(APPS):
                continue
            out.add((ours or src, theirs))
    return out


def circles(edges: dict[str, set[str]]) -> set[frozenset]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), set(), [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.add(frozenset(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_library_never_imports_a_component_and_components_never_each_other():
    found = crossings(graph())
    assert not found - KNOWN, f"new imports across the layers (move what is shared into kfp_llmops/): {sorted(found - KNOWN)}"
    assert not KNOWN - found, f"moved, take them off KNOWN: {sorted(KNOWN - found)}"


def test_no_modules_import_each_other_in_a_circle():
    found = circles(graph())
    assert not found - KNOWN_CIRCLES, f"new circles: {[sorted(c) for c in found - KNOWN_CIRCLES]}"
    assert not KNOWN_CIRCLES - found, f"gone, take them off KNOWN_CIRCLES: {[sorted(c) for c in KNOWN_CIRCLES - found]}"


def test_the_checks_see_a_crossing_and_a_circle():
    edges = {"kfp_llmops.a": {"kfp_llmops.components.x.y.core"}, "kfp_llmops.components.x.y.core": {"kfp_llmops.components.z.w.core"},
             "kfp_llmops.b": {"kfp_llmops.c"}, "kfp_llmops.c": {"kfp_llmops.b"}}
    edges["kfp_llmops.d"] = {"kfp_llmops.pipelines.p.pipeline", "kfp_llmops.cli.submit"}
    edges["kfp_llmops.pipelines.p.pipeline"] = {"kfp_llmops.components.x.y.core"}  # the top may use any component
    assert crossings(edges) == {("kfp_llmops.a", "x.y"), ("x.y", "z.w"), ("kfp_llmops.d", "pipelines"),
                                ("kfp_llmops.d", "cli")}
    assert circles(edges) == {frozenset({"kfp_llmops.b", "kfp_llmops.c"})}
