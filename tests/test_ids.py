"""Ids: derived run span ids, and random ids an application's random.seed() cannot repeat."""

from __future__ import annotations

import os
import random
import uuid

import pytest

from contextcompany import _checks, _ids


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
