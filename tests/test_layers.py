"""Lower layers never import higher ones (docs/architecture.md draws the same layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import memproxy_cli

# Top to bottom; a module may import its own layer or any layer below.
LAYERS: dict[str, int] = {
    "__main__": 1,
    "cli": 1,
    "docsgen": 1,
    "doctor": 1,
    "daemon": 2,
    "gateway": 3,
    "api": 4,
    "upstream": 4,
    "memory": 4,
    "store": 4,
    "budget": 4,
    "observability": 4,
    "paths": 5,
    "config": 5,
    "config_file": 5,
    "config_model": 5,
    "config_base": 5,
    "config_memory": 5,
    "config_routing": 5,
    "errors": 5,
    "names": 5,
    "registry": 5,
    "local_token": 5,
    "__init__": 5,
}
PACKAGE = Path(memproxy_cli.__file__).parent


def _part(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "memproxy_cli":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def upward_imports() -> list[str]:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        layer = LAYERS[part]
        for target in _imported_parts(ast.parse(path.read_text(encoding="utf-8"))):
            if LAYERS[target] < layer:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {target}")
    return offenders


def test_every_module_has_a_layer() -> None:
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(LAYERS), parts - set(LAYERS)


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from memproxy_cli.gateway.state import STATE\n")
    assert _imported_parts(tree) == {"gateway"}
    assert LAYERS["gateway"] < LAYERS["upstream"]
