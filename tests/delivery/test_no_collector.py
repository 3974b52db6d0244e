"""Nothing listening: a short script exits at once and says what was not delivered, where, and why.

The README's first example, run as a new user runs it before starting a collector.
"""

from __future__ import annotations

import json
import re
import time

from tests.reliability.collector import spawn

from ._children import FIRST_EXAMPLE, LAST_LINE, nothing_listening

STATS = """
import json as _json
_s = tcc.stats()
print("STATS " + _json.dumps({"flushed": _flushed, "failed": _s.exports_failed, "dropped": _s.spans_dropped,
                               "exported": _s.spans_exported, "last_error": _s.last_error}), flush=True)
"""


def test_the_first_example_exits_at_once_and_names_the_url_and_what_was_lost() -> None:
    base = nothing_listening()
    with spawn(FIRST_EXAMPLE + LAST_LINE, {"OTEL_EXPORTER_OTLP_ENDPOINT": base}) as child:
        last = child.expect("LAST", timeout=60)["at"]
        code = child.wait(30)
        exited = time.monotonic()
    assert code == 0, child.stderr
    assert exited - last < 1.5, (exited - last, child.stderr)
    url = f"{base}/v1/traces"
    assert url in child.stderr, child.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in child.stderr  # where the URL came from
    assert "python -m contextcompany dev" in child.stderr  # the likely fix for a local endpoint
    # ... and how many spans were not delivered, and why.
    lost = re.search(r"(\d+) spans? (?:were|was) not delivered", child.stderr)
    assert lost is not None and int(lost.group(1)) == 2, child.stderr
    assert "refused" in child.stderr.lower(), child.stderr
    assert "Shutdown in progress" not in child.stderr  # not the exporter's misleading cause
    assert "Traceback" not in child.stderr


def test_the_default_endpoint_says_it_is_the_default() -> None:
    # Nothing set: the default http://localhost:4318, which may or may not have a listener on a shared
    # machine, so the script points the default at a closed port the same way a user's typo would not:
    # through the OTLP default only. Here: the warning's source for a configured URL is configure().
    base = nothing_listening()
    code_text = f"import contextcompany as tcc\ntcc.configure(endpoint={base!r})\n" + FIRST_EXAMPLE.replace(
        "import contextcompany as tcc\n", ""
    )
    with spawn(code_text, {}) as child:
        code = child.wait(30)
    assert code == 0
    assert f"{base}/v1/traces" in child.stderr and "configure(endpoint=" in child.stderr, child.stderr


def test_flush_and_stats_tell_the_truth_while_the_export_retries() -> None:
    base = nothing_listening()
    code_text = FIRST_EXAMPLE + "_flushed = tcc.flush(2000)\n" + STATS
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": base}) as child:
        stats = child.expect("STATS", timeout=60)
        child.wait(30)
    assert stats["flushed"] is False
    assert stats["exported"] == 0
    # The exporter is still retrying (connection errors are retried for up to 10 s), yet the failure shows.
    assert stats["last_error"] and "refused" in stats["last_error"].lower(), stats
    # ... and the warning came at once, not after the retries.
    assert f"{base}/v1/traces" in child.stderr
    assert child.stderr.count("exporting spans failed") == 1, child.stderr


def test_an_explicit_shutdown_counts_what_it_could_not_deliver() -> None:
    base = nothing_listening()
    code_text = FIRST_EXAMPLE + "tcc.shutdown()\n_flushed = None\n" + STATS + LAST_LINE
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": base}) as child:
        stats = child.expect("STATS", timeout=60)
        code = child.wait(30)
    assert code == 0
    assert stats["dropped"] == 2 and stats["failed"] >= 1, stats
    assert "refused" in (stats["last_error"] or "").lower(), stats
    assert "Shutdown in progress" not in json.dumps(stats) + child.stderr
