"""Prove the tests by breaking the code: ``python -m prove`` (``make prove``).

Each break in ``prove/breaks.toml`` names a promise of ``docs/guarantees.md`` (its heading) and one or
more exact edits (a text in a file of the package and what replaces it); its tests are those the page
cites for that promise (after any the break lists itself, which run first). The repository is copied to a
temporary directory (without ``.git``, ``.venv`` and caches); the cited tests first run there unbroken and
must pass; then each break is applied to the copy alone, its tests run with this interpreter (the project
venv's) against the copy, and the copy is restored. A break its tests still pass is a promise no test
holds: ``make prove`` fails naming it. A break whose text no longer occurs exactly once is stale (the code
moved on): that fails too, so the list cannot quietly stop breaking anything.

>>> python -m prove                      # every break
>>> python -m prove rollup-drops-cache-write flush-ignores-its-timeout
>>> python -m prove --list
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
BREAKS = REPO / "prove" / "breaks.toml"
PAGE = REPO / "docs" / "guarantees.md"
# On the page, under a promise: "Broken on purpose by `make prove`: `break-id`, `other-id`."
_NAMED = re.compile(r"^Broken on purpose by `make prove`: (.+)\.$")
_CITED = re.compile(r"^- `(tests/[^`]+\.py::[^`]+)`")
# Not copied: the venv (the interpreter running this is used instead), git data and caches.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "*.egg-info"
)
PER_BREAK_TIMEOUT_S = 900


class BreakError(Exception):
    """The list of breaks is wrong: a stale text, a missing file, a test that does not exist."""


@dataclass(frozen=True)
class Edit:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Break:
    id: str
    promise: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]


@dataclass
class Outcome:
    brk: Break
    verdict: str  # "caught", "SURVIVED", "ERROR"
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Promise:
    """A section of the guarantees page: the tests it cites and the breaks it names."""

    heading: str
    tests: tuple[str, ...]
    breaks: tuple[str, ...]


def promises(page: Path = PAGE) -> dict[str, Promise]:
    """The promises of the guarantees page, by heading."""
    found: dict[str, Promise] = {}
    heading: str | None = None
    tests: list[str] = []
    named: list[str] = []

    def close() -> None:
        if heading is not None:
            found[heading] = Promise(heading, tuple(tests), tuple(named))

    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            close()
            heading, tests, named = line[3:].strip(), [], []
        elif (cited := _CITED.match(line)) is not None:
            tests.append(cited.group(1))
        elif (names := _NAMED.match(line)) is not None:
            named.extend(name.strip().strip("`") for name in names.group(1).split(","))
    close()
    return found


def check_page(breaks: Sequence[Break], page: dict[str, Promise]) -> list[str]:
    """What does not match between the breaks and the page: a promise the page does not have, a break the
    page does not name under its promise, or one it names that does not exist."""
    problems = [f"{b.id}: no promise {b.promise!r} in {PAGE.name}" for b in breaks if b.promise not in page]
    for promise in page.values():
        listed = {b.id for b in breaks if b.promise == promise.heading}
        if set(promise.breaks) != listed:
            problems.append(
                f"{PAGE.name}, {promise.heading!r}: names the breaks {sorted(promise.breaks)}, "
                f"{BREAKS.name} has {sorted(listed)}"
            )
    return problems


def tests_for(brk: Break, page: dict[str, Promise]) -> list[str]:
    """The break's own tests first (they are the quickest to see it), then those the page cites."""
    cited = page[brk.promise].tests if brk.promise in page else ()
    return list(dict.fromkeys([*brk.tests, *cited]))


def load(path: Path = BREAKS) -> list[Break]:
    """The breaks in ``path``, checked for shape (not yet against the code)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    breaks: list[Break] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("breaks", [])):
        where = f"{path.name}: break {i + 1}"
        for key in ("id", "promise", "edits"):
            if key not in raw:
                raise BreakError(f"{where}: no {key!r}")
        if raw["id"] in seen:
            raise BreakError(f"{where}: the id {raw['id']!r} is used twice")
        seen.add(raw["id"])
        if not all(isinstance(t, str) and "::" in t for t in raw.get("tests", [])):
            raise BreakError(f"{where} ({raw['id']}): tests must be a list of 'tests/path.py::test_name'")
        edits = []
        for edit in raw["edits"]:
            if set(edit) != {"file", "find", "replace"} or edit["find"] == edit["replace"]:
                raise BreakError(f"{where} ({raw['id']}): an edit needs file, find and a different replace")
            edits.append(Edit(edit["file"], edit["find"], edit["replace"]))
        breaks.append(Break(raw["id"], raw["promise"], tuple(edits), tuple(raw.get("tests", []))))
    if not breaks:
        raise BreakError(f"{path}: no breaks")
    return breaks


def resolved() -> list[Break]:
    """The breaks, each with the tests to run for it; BreakError when they and the page disagree."""
    breaks, page = load(), promises()
    problems = check_page(breaks, page)
    if problems:
        raise BreakError("the breaks and the guarantees page disagree:\n  " + "\n  ".join(problems))
    return [dataclasses.replace(b, tests=tuple(tests_for(b, page))) for b in breaks]


def apply(root: Path, brk: Break) -> dict[Path, str]:
    """Apply ``brk``'s edits under ``root``; returns the original text of each file changed. Every text
    to replace must occur exactly once in its file (else BreakError, and nothing is left changed)."""
    originals: dict[Path, str] = {}
    try:
        for edit in brk.edits:
            path = root / edit.file
            if not path.is_file():
                raise BreakError(f"{brk.id}: {edit.file} does not exist")
            text = path.read_text(encoding="utf-8")
            count = text.count(edit.find)
            if count != 1:
                raise BreakError(
                    f"{brk.id}: the text to replace occurs {count} times in {edit.file} "
                    f"(stale?):\n{edit.find}"
                )
            broken = text.replace(edit.find, edit.replace)
            if path.suffix == ".py":
                try:  # a break changes behaviour; one that does not even compile proves nothing
                    compile(broken, str(path), "exec")
                except SyntaxError as e:
                    raise BreakError(f"{brk.id}: {edit.file} does not compile with the break: {e}") from None
            originals.setdefault(path, text)
            path.write_text(broken, encoding="utf-8")
    except BaseException:
        restore(originals)
        raise
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy's package first on the path (ahead of the venv's editable install of the original), and no
    # bytecode: a break and its restore can fall in the same second, which .pyc files cannot tell apart.
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def pytest(copy: Path, tests: Sequence[str], *, stop_first: bool) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(copy),
    ]
    command += ["-x"] if stop_first else []
    return subprocess.run(
        [*command, *tests],
        cwd=copy,
        env=_env(copy),
        capture_output=True,
        text=True,
        timeout=PER_BREAK_TIMEOUT_S,
        check=False,
    )


def check_copy_is_imported(copy: Path) -> None:
    """The tests must import the copy's package, not the original the venv has installed."""
    found = subprocess.run(
        [sys.executable, "-c", "import contextcompany; print(contextcompany.__file__)"],
        cwd=copy,
        env=_env(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise BreakError(f"the copy's tests would import {found}, not the copy in {copy}")


def _failed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The node ids pytest's short summary lists as failed."""
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def _tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])


def run_one(copy: Path, brk: Break, unusable: set[str]) -> Outcome:
    started = time.monotonic()
    tests = [t for t in brk.tests if t not in unusable and not any(t.startswith(u + "[") for u in unusable)]
    tests = [t for t in tests if not any(u.startswith(t + "[") for u in unusable)]
    if not tests:
        return Outcome(brk, "ERROR", 0.0, "every cited test fails without the break")
    try:
        originals = apply(copy, brk)
    except BreakError as e:
        return Outcome(brk, "ERROR", 0.0, str(e))
    try:
        result = pytest(copy, tests, stop_first=True)
    except subprocess.TimeoutExpired:
        return Outcome(
            brk, "ERROR", time.monotonic() - started, f"its tests ran over {PER_BREAK_TIMEOUT_S} s"
        )
    finally:
        restore(originals)
    took = time.monotonic() - started
    # pytest: 0 all passed, 1 some failed; anything else (no such test, usage error) is the list's fault.
    if result.returncode == 1:
        return Outcome(brk, "caught", took, ", ".join(_failed(result))[:300])
    if result.returncode == 0:
        return Outcome(brk, "SURVIVED", took, "every cited test passed with the break in place")
    return Outcome(brk, "ERROR", took, f"pytest exited {result.returncode}:\n{_tail(result)}")


def baseline(copy: Path, chosen: Sequence[Break], console: Console) -> set[str] | None:
    """Run the cited tests unbroken; the ones that fail twice (unusable), or None when they cannot run."""
    started = time.monotonic()
    tests = list(dict.fromkeys(t for b in chosen for t in b.tests))
    console.print(f"baseline: {len(tests)} cited tests, unbroken ...")
    base = pytest(copy, tests, stop_first=False)
    unusable: set[str] = set()
    if base.returncode == 1:
        # A timing test can fail once on a machine under load: those that failed get one more run.
        again = _failed(base)
        console.print(f"[yellow]failed unbroken, run again:[/yellow] {escape(', '.join(again))}")
        if again:
            unusable = set(_failed(pytest(copy, again, stop_first=False)))
    elif base.returncode != 0:
        console.print(f"[red]prove: the cited tests cannot run:[/red]\n{escape(_tail(base, 60))}")
        return None
    if unusable:
        # A test that fails unbroken proves nothing: the breaks run without it, and prove fails.
        console.print(
            f"[red]failing without any break (left out):[/red] {escape(', '.join(sorted(unusable)))}"
        )
    console.print(f"baseline done in {time.monotonic() - started:.0f} s")
    return unusable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prove", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="only these breaks (default: all)")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the tests unbroken first")
    args = parser.parse_args(argv)
    console = Console(highlight=False)

    try:
        breaks = resolved()
    except BreakError as e:
        console.print(f"[red]prove: {escape(str(e))}[/red]")
        return 2
    if args.list:
        for brk in breaks:
            console.print(f"{brk.id}: {brk.promise} ({len(brk.tests)} tests)")
        return 0
    unknown = set(args.ids) - {b.id for b in breaks}
    if unknown:
        console.print(f"[red]prove: no such break: {', '.join(sorted(unknown))}[/red]")
        return 2
    chosen = [b for b in breaks if not args.ids or b.id in args.ids]

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tcc-prove-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(REPO, copy, ignore=IGNORED)
        try:
            check_copy_is_imported(copy)
        except (BreakError, subprocess.CalledProcessError) as e:
            console.print(f"[red]prove: {e}[/red]")
            return 2
        unusable = set() if args.no_baseline else baseline(copy, chosen, console)
        if unusable is None:
            return 2
        outcomes = []
        for brk in chosen:
            outcome = run_one(copy, brk, unusable)
            colour = {"caught": "green", "SURVIVED": "red", "ERROR": "red"}[outcome.verdict]
            console.print(f"[{colour}]{outcome.verdict:>8}[/{colour}] {brk.id} ({outcome.seconds:.0f} s)")
            if outcome.verdict == "caught":
                console.print(f"         by {escape(outcome.detail)}", soft_wrap=True)
            outcomes.append(outcome)

    table = Table(title=f"make prove: {len(outcomes)} breaks in {time.monotonic() - started:.0f} s")
    for column in ("break", "promise", "verdict", "s"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        table.add_row(o.brk.id, o.brk.promise, o.verdict, f"{o.seconds:.0f}")
    console.print(table)
    bad = [o for o in outcomes if o.verdict != "caught"]
    for o in bad:
        console.print(f"[red]{o.verdict}: {o.brk.id} ({o.brk.promise})[/red]\n  {escape(o.detail)}")
    if unusable:
        console.print(
            f"[red]cited tests failing without any break:[/red] {escape(', '.join(sorted(unusable)))}"
        )
    if unusable or any(o.verdict == "ERROR" for o in bad):
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
