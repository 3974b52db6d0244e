"""``make prove``'s list of breaks stays true without running it: every break applies to the code as it is
now (its text occurs exactly once), names a promise of the guarantees page, and the page names it back;
applying a break and restoring leaves the file as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from prove.__main__ import REPO, BreakError, Edit, apply, check_page, load, promises, resolved, restore


def test_every_break_applies_to_the_code_as_it_is() -> None:
    for brk in load():
        for edit in brk.edits:
            assert (REPO / edit.file).is_file(), f"{brk.id}: stale, {edit.file} is gone"
            text = (REPO / edit.file).read_text(encoding="utf-8")
            assert text.count(edit.find) == 1, (
                f"{brk.id}: stale, the text occurs {text.count(edit.find)} times"
            )


def test_the_breaks_and_the_guarantees_page_agree() -> None:
    assert check_page(load(), promises()) == []
    for brk in resolved():
        assert brk.tests, f"{brk.id}: no tests to run"
        for test in brk.tests:
            path, name = test.split("::")
            source = (REPO / path).read_text(encoding="utf-8")
            assert f"def {name.split('[')[0]}(" in source, f"{brk.id}: {test} does not exist"


def test_apply_then_restore(tmp_path: Path) -> None:
    brk = load()[0]
    for edit in brk.edits:
        target = tmp_path / edit.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((REPO / edit.file).read_text(encoding="utf-8"), encoding="utf-8")
    before = {edit.file: (tmp_path / edit.file).read_text(encoding="utf-8") for edit in brk.edits}
    originals = apply(tmp_path, brk)
    for edit in brk.edits:
        assert edit.replace in (tmp_path / edit.file).read_text(encoding="utf-8")
    restore(originals)
    assert {edit.file: (tmp_path / edit.file).read_text(encoding="utf-8") for edit in brk.edits} == before


def test_a_stale_break_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    brk = load()[0]
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("y = 2\ny = 2\n", encoding="utf-8")
    first = Edit("a.py", "x = 1", "x = 2")
    for stale in (Edit("a.py", "gone", "z"), Edit("b.py", "y = 2", "y = 3")):  # absent, then twice
        broken = type(brk)(brk.id, brk.promise, (first, stale), brk.tests)
        with pytest.raises(BreakError, match="stale"):
            apply(tmp_path, broken)
        assert (tmp_path / "a.py").read_text(encoding="utf-8") == "x = 1\n"  # the first edit was undone


def test_a_break_that_does_not_compile_is_an_error(tmp_path: Path) -> None:
    brk = load()[0]
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    broken = type(brk)(brk.id, brk.promise, (Edit("a.py", "x = 1", "x = (1"),), brk.tests)
    with pytest.raises(BreakError, match="does not compile"):
        apply(tmp_path, broken)
    assert (tmp_path / "a.py").read_text(encoding="utf-8") == "x = 1\n"


def test_every_break_compiles() -> None:
    for brk in load():
        for edit in brk.edits:
            path = REPO / edit.file
            compile(path.read_text(encoding="utf-8").replace(edit.find, edit.replace), str(path), "exec")
