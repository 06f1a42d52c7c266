"""The layering of docs/architecture.md: imports only go down, and no module cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "sc_cello1"

#: Floor of each top-level module or subpackage (higher may import lower, not back).
FLOORS = {
    "_answer": 0,
    "_config": 0,
    "_docs": 0,
    "_hub": 0,
    "_io": 0,
    "_secrets": 0,
    "_settings": 0,
    "_logging": 0,
    "_validate": 0,
    "_version": 0,
    "pp": 1,
    "get": 1,
    "data": 2,
    "models": 3,
    "metrics": 3,
    "inference": 4,
    "tl": 5,
    "train": 5,
    "pl": 5,
    "cli": 6,
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(mod: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every sc_cello1 module ``mod`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                pkg = ".".join(base + ([node.module] if node.module else []))
            else:
                pkg = node.module or ""
            subs = [f"{pkg}.{a.name}" for a in node.names if f"{pkg}.{a.name}" in modules]
            names = subs if subs and len(subs) == len(node.names) else [pkg, *subs]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("sc_cello1") and name != mod:
                found.add(name)
    return found


def _floor(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) == 1:
        return None  # the package root re-exports; it is not a library
    key = parts[1]
    return FLOORS.get(key, 6 if key.endswith("_cli") else None)


#: Known exceptions, each with its reason (a new upward import still fails the test).
ALLOWED_UP: set[str] = set()

#: Modules that still import the package root (``sc_cello1``), which re-exports and is
#: not a library; each owned by open work, to be fixed and removed from here.
ALLOWED_ROOT_IMPORTS: set[str] = set()


def test_imports_only_go_down():
    modules = _modules()
    wrong = []
    for mod, path in modules.items():
        here = _floor(mod)
        if here is None:
            continue
        for dep in _imports(mod, path, modules):
            there = _floor(dep)
            if dep == "sc_cello1" and mod in ALLOWED_ROOT_IMPORTS:
                continue
            if (there is None or there > here) and f"{mod} -> {dep}" not in ALLOWED_UP:
                wrong.append(f"{mod} -> {dep}")
    assert not wrong, "imports that go up a floor:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    modules = _modules()
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    graph = {
        m: {d for d in _imports(m, p, modules) if d not in packages}
        for m, p in modules.items()
        if m not in packages
    }
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_answer_format_sits_below_data_and_metrics():
    modules = _modules()
    assert _imports("sc_cello1._answer", modules["sc_cello1._answer"], modules) == set()
    for mod in ("sc_cello1.data._puzzle", "sc_cello1.data._prompts"):
        assert not any(
            d.startswith("sc_cello1.metrics") for d in _imports(mod, modules[mod], modules)
        )


def test_allowed_root_imports_are_still_needed():
    modules = _modules()
    importing = {m for m, p in modules.items() if "sc_cello1" in _imports(m, p, modules)}
    assert ALLOWED_ROOT_IMPORTS <= importing, "fixed: remove them from ALLOWED_ROOT_IMPORTS"
