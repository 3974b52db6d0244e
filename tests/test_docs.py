"""The docs against the code: what the manual and the README name must exist.

- docs/attributes.md lists, one table row each (``| `key` |``), exactly the attribute keys of
  ``contextcompany._semconv.ATTRIBUTES``; a prefix is written with a placeholder (``tcc.metadata.<key>``).
- Every test cited anywhere in docs/ or the README (``tests/path/file.py::test_name``) exists.
- The README stays a front page: at most 200 lines, linking only to files that exist.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from contextcompany import _semconv

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 200

# A table row whose first cell is one backticked attribute key: dotted lower-case names, a prefix
# ending in a placeholder such as <key>. Rows that start with an API call (`tcc.run()`) do not match.
_KEY_ROW = re.compile(r"^\| `([a-z_][a-z0-9_]*(?:\.(?:[a-z0-9_]+|<[a-z_]+>))+)` \|", re.MULTILINE)
# tests/reliability/test_faults.py::test_name, with an optional class and parametrised id.
_CITATION = re.compile(r"\b(tests/[\w/]+\.py)((?:::[A-Za-z_]\w*)+)(\[[^\]\s]*\])?")
# [text](target) links; images too.
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def documented_keys(text: str) -> set[str]:
    """The attribute keys a page's tables list, a placeholder turned back into its prefix.

    >>> sorted(documented_keys("| `tcc.metadata.<key>` | str |\\n| `tcc.run()` | span |"))
    ['tcc.metadata.']
    """
    return {re.sub(r"<[a-z_]+>$", "", key) for key in _KEY_ROW.findall(text)}


def citations(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each cited test as (file, (class..., function)), parametrised ids stripped.

    >>> citations("`tests/test_x.py::test_a[fault0]`, tests/test_y.py::TestZ::test_b")
    [('tests/test_x.py', ('test_a',)), ('tests/test_y.py', ('TestZ', 'test_b'))]
    """
    return [(path, tuple(names.split("::")[1:])) for path, names, _ in _CITATION.findall(text)]


@cache
def _defined(path: Path) -> frozenset[tuple[str, ...]]:
    """Every function and class in a test file, as qualified name paths (``("TestZ", "test_b")``)."""
    found: set[tuple[str, ...]] = set()

    def visit(node: ast.AST, prefix: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add((*prefix, child.name))
                visit(child, (*prefix, child.name))

    visit(ast.parse(path.read_text(encoding="utf-8")), ())
    return frozenset(found)


def test_attributes_page_lists_exactly_the_semconv_keys() -> None:
    documented = documented_keys((DOCS / "attributes.md").read_text(encoding="utf-8"))
    missing = sorted(_semconv.ATTRIBUTES - documented)
    unknown = sorted(documented - _semconv.ATTRIBUTES)
    assert not missing and not unknown, (
        f"keys in _semconv.ATTRIBUTES without a row in docs/attributes.md: {missing}; "
        f"rows in docs/attributes.md for keys _semconv.ATTRIBUTES lacks: {unknown}"
    )


def test_the_guarantees_page_cites_tests() -> None:
    # The check below would pass vacuously if the citation format changed; the page must cite some.
    assert len(citations((DOCS / "guarantees.md").read_text(encoding="utf-8"))) >= 20


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_test_exists(document: Path) -> None:
    problems = []
    for path, names in citations(document.read_text(encoding="utf-8")):
        file = ROOT / path
        if not file.is_file():
            problems.append(f"{path}: no such file")
        elif names not in _defined(file):
            problems.append(f"{path}::{'::'.join(names)}: not defined in {path}")
    assert not problems, f"{document.name} cites tests that do not exist:\n" + "\n".join(problems)


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the front page keeps to 200"


def test_readme_links_only_to_files_that_exist() -> None:
    targets = _LINK.findall(README.read_text(encoding="utf-8"))
    local = [t.split("#", 1)[0] for t in targets if "://" not in t and not t.startswith(("#", "mailto:"))]
    assert any(t.startswith("docs/") for t in local), "the README links to the manual"
    missing = sorted({t for t in local if t and not (ROOT / t).exists()})
    assert not missing, f"README.md links to files that do not exist: {missing}"
