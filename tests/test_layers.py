"""The package's modules form layers: each imports only modules below it (docs/development.md's map).

A reader follows a value from the setter to the wire without a call back up the layers. Imports made for
type checking only (under ``if TYPE_CHECKING:``) do not run and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import contextcompany as tcc

# Top to bottom, as docs/development.md lists them.
ORDER = [
    "__main__",
    "dev",
    "_decorators",
    "_api",
    "_import",
    "_records",
    "_feedback",
    "_fields",
    "_lifetimes",
    "_span",
    "_registry",
    "_content",
    "_messages",
    "_pipeline",
    "_sigterm",
    "_meter",
    "_export",
    "_calls",
    "_metrics",
    "_pricing",
    "_destinations",
    "_settings",
    "_usage",
    "_checks",
    "_ids",
    "_semconv",
    "_forksafe",
    "_diag",
    "_redact",
]
PACKAGE = Path(tcc.__file__).parent


def _runtime_imports(path: Path) -> set[str]:
    """The top-level tcc modules ``path`` imports when it runs (``_export``/``dev`` for their insides)."""
    own = path.parent.name if path.parent != PACKAGE else path.stem
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if module.split(".")[0] != "contextcompany":
                    continue
                parts = module.split(".")[1:]
            elif path.parent != PACKAGE and node.level == 1:
                parts = [own]  # inside a subpackage: itself
            else:
                parts = module.split(".") if module else []
            if parts:
                found.add(parts[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "contextcompany" and len(parts) > 1:
                    found.add(parts[1])
    return (found & set(ORDER)) - {own}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        name = relative.parts[0].removesuffix(".py")
        if name != "__init__":
            found.append((name, path))
    return found


def test_every_module_has_a_place_in_the_order() -> None:
    assert {name for name, _ in _modules()} == set(ORDER)


def test_no_module_imports_a_module_above_it() -> None:
    problems = []
    for name, path in _modules():
        above = set(ORDER[: ORDER.index(name)])
        up = _runtime_imports(path) & above
        if up:
            problems.append(f"{path.relative_to(PACKAGE)} imports {sorted(up)}")
    assert not problems, "\n".join(problems)


def test_the_development_page_lists_the_modules_in_this_order() -> None:
    text = (PACKAGE.parent / "docs" / "development.md").read_text()
    listed = [line.split()[0].rstrip("/").removesuffix(".py") for line in _map_lines(text)]
    assert [m for m in listed if m in ORDER] == [m for m in ORDER if m in listed]
    assert set(ORDER) <= set(listed)


def _map_lines(text: str) -> list[str]:
    block = text.split("## Module map", 1)[1].split("```", 2)[1]
    return [line.strip() for line in block.splitlines()[2:] if line.startswith("  ") and line.strip()]
