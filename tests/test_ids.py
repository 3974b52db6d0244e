"""Ids: derived run span ids, and random ids an application's random.seed() cannot repeat."""

from __future__ import annotations

import os
import random
import re
import uuid

import pytest

import contextcompany as tcc
from contextcompany import _checks, _ids
from tests.conftest import Captured

# The canonical text of a random (version 4) UUID: the version nibble is 4 and the variant bits are 10
# (the first hex digit of the fourth group is 8, 9, a or b). ``uuid.UUID(text, version=4)`` is no check:
# it overwrites those bits instead of reading them, so it accepts a uuid1, a nil UUID, any UUID at all.
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def assert_uuid4(text: object) -> None:
    """``text`` is a str in the format of ``str(uuid.uuid4())``, its version and variant bits read from it.

    >>> assert_uuid4(r.run_id)
    """
    assert isinstance(text, str) and _UUID4.fullmatch(text), f"not the text of a uuid4: {text!r}"


@pytest.mark.parametrize(
    "text",
    [
        str(uuid.uuid1()),
        str(uuid.UUID(int=0)),
        str(uuid.uuid3(uuid.NAMESPACE_DNS, "x")),
        str(uuid.uuid4()).upper(),
    ],
    ids=["uuid1", "nil", "uuid3", "upper-case"],
)
def test_the_uuid4_check_refuses_other_uuids(text: str) -> None:
    uuid.UUID(text, version=4)  # the check the tests used to make: it accepts every one of these
    with pytest.raises(AssertionError):
        assert_uuid4(text)


def test_ids_default_to_uuid4_on_the_record_and_on_the_wire(captured: Captured) -> None:
    r = tcc.run()
    s = r.step().prompt("p").response("a")
    tc = r.tool_call("t")
    for made in (r.run_id, s.step_id, tc.tool_call_id, _checks.uuid4()):
        assert_uuid4(made)
    tc.end()
    s.end()
    r.prompt("q").end()
    sent = tcc.send_run(prompt="q")
    assert_uuid4(sent)
    wire = [
        (span.attributes or {}).get(key)
        for span in captured.spans()
        for key in ("tcc.run.id", "tcc.step.id", "gen_ai.tool.call.id")
        if key in (span.attributes or {})
    ]
    assert {r.run_id, s.step_id, tc.tool_call_id, sent} <= set(wire)
    for value in wire:
        assert_uuid4(value)


def test_random_ids_ignore_the_applications_seed() -> None:
    # Reproducible code seeds the global generator; ids made after the same seed must still differ.
    made = []
    for _ in range(2):
        random.seed(1234)
        made.append(
            (_checks.uuid4(), _ids.OwnRandomIds().generate_span_id(), _ids.OwnRandomIds().generate_trace_id())
        )
    assert made[0][0] != made[1][0] and made[0][1] != made[1][1] and made[0][2] != made[1][2]
    record_id = uuid.UUID(made[0][0])
    assert record_id.version == 4 and record_id.variant == uuid.RFC_4122 and str(record_id) == made[0][0]
    assert_uuid4(made[0][0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, f"{_checks.uuid4()} {_ids.OwnRandomIds().generate_span_id()}".encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    parent = [_checks.uuid4(), str(_ids.OwnRandomIds().generate_span_id())]
    assert child[0] != parent[0] and child[1] != parent[1]


def test_run_ids_derive_the_same_span_context_everywhere() -> None:
    first, second = _ids.run_span_context("order-1234"), _ids.run_span_context("order-1234")
    assert (first.trace_id, first.span_id) == (second.trace_id, second.span_id)
    assert first.is_remote and first.trace_flags.sampled
    assert _ids.run_ids("order-1234") != _ids.run_ids("order-1235")
