"""The after-fork registry runs every module's hook in its phase, whatever the import order."""

from __future__ import annotations

import os

import pytest

from contextcompany import _forksafe as forksafe

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hooks these tests add must not run in the children that later tests fork.
    monkeypatch.setattr(forksafe, "_hooks", list(forksafe._hooks))


def _in_child(check: object) -> int:
    """Fork, run ``check`` in the child, return the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if check() else 3  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_hooks_run_by_phase_then_in_registration_order() -> None:
    seen: list[str] = []
    forksafe.after_fork(lambda: seen.append("workers"), forksafe.Phase.WORKERS)
    forksafe.after_fork(lambda: seen.append("state-1"), forksafe.Phase.STATE)
    forksafe.after_fork(lambda: seen.append("locks"), forksafe.Phase.LOCKS)
    forksafe.after_fork(lambda: seen.append("state-2"), forksafe.Phase.STATE)

    def check() -> bool:
        mine = [s for s in seen if s in ("workers", "state-1", "locks", "state-2")]
        return mine == ["locks", "state-1", "state-2", "workers"]

    assert _in_child(check) == 0
    assert seen == []  # the parent runs none of them


def test_a_weak_hook_goes_away_with_its_object() -> None:
    calls: list[str] = []

    class Owner:
        def hook(self) -> None:
            calls.append("called")

    owner = Owner()
    forksafe.after_fork(owner.hook, forksafe.Phase.WORKERS, weak=True)
    assert _in_child(lambda: calls == ["called"]) == 0
    del owner
    assert _in_child(lambda: calls == []) == 0


def test_a_failing_hook_does_not_stop_the_others() -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    forksafe.after_fork(broken, forksafe.Phase.LOCKS)
    forksafe.after_fork(lambda: ran.append("after"), forksafe.Phase.LOCKS)
    assert _in_child(lambda: ran == ["after"]) == 0
