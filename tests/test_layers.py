"""The package's architecture, checked from the source: layers, no import cycles, no private cross-module imports.

Layers, lowest first: core < engine < analyses < figures < experiments < cli < the apps (the
top-level modules). A module may import from its own layer and the ones below, never above;
the import graph (function-level imports included) has no cycle; no module imports another
module's underscore names.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gdchaos"
LAYERS = ["core", "engine", "analyses", "figures", "experiments", "cli", "apps"]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the package itself: the public API re-exports every layer
    return parts[1] if parts[1] in LAYERS else "apps" if len(parts) == 2 else None


def imports(path: pathlib.Path):
    """(imported module, names, line) for every gdchaos import in ``path``, at any depth, doctests excluded."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gdchaos":
            yield node.module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gdchaos":
                    yield alias.name, [], node.lineno


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def where(path: pathlib.Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path.name}:{line}"


def resolve(module: str, names: list[str], modules: dict) -> list[str]:
    """The gdchaos modules an import statement loads (``from pkg import submodule`` counts as the submodule)."""
    found = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
    return found or ([module] if module in modules else [])


def layer_violations(modules: dict) -> list[str]:
    out = []
    for m, path in modules.items():
        own = layer(m)
        if own is None:
            continue
        for target, names, line in imports(path):
            for t in resolve(target, names, modules):
                other = layer(t)
                if other is not None and LAYERS.index(other) > LAYERS.index(own):
                    out.append(f"{where(path, line)} ({own}) imports {t} ({other})")
    return out


def cycles(modules: dict) -> list[str]:
    edges = {m: set() for m in modules}
    for m, path in modules.items():
        for target, names, _ in imports(path):
            edges[m].update(t for t in resolve(target, names, modules) if t != m)
    state, stack, found = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                found.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state and m != "gdchaos":  # the package __init__ re-exports; nothing inside imports it
            visit(m)
    return found


def private_imports(modules: dict) -> list[str]:
    return [f"{where(path, line)} imports {target}.{n}"
            for m, path in modules.items() for target, names, line in imports(path)
            for n in names if n.startswith("_") and target != m]


def test_each_layer_imports_only_from_itself_and_below():
    assert not (found := layer_violations(MODULES)), "\n".join(found)


def test_the_import_graph_has_no_cycle():
    assert not (found := cycles(MODULES)), "\n".join(found)


def test_no_module_imports_another_modules_private_names():
    assert not (found := private_imports(MODULES)), "\n".join(found)


@pytest.mark.parametrize("module, source, check, expected", [
    ("gdchaos.engine.ensemble", "from gdchaos.experiments.results import load", layer_violations,
     "(engine) imports gdchaos.experiments.results (experiments)"),
    ("gdchaos.engine.ensemble", "from gdchaos.core.errors import _private", private_imports, "imports gdchaos.core.errors._private"),
    ("gdchaos.engine.programs", "from gdchaos.engine import ensemble", cycles, "gdchaos.engine.programs"),
])
def test_the_checks_catch_a_planted_violation(tmp_path, module, source, check, expected):
    fake = tmp_path / "planted.py"
    fake.write_text(MODULES[module].read_text() + f"\n\ndef _planted():\n    {source}\n")
    assert not check(MODULES)
    found = check({**MODULES, module: fake})
    assert found and expected in found[0], found
