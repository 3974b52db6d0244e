"""Print each finished agent run as a tree: steps, tool calls and feedback under the run.

Spans arrive in export batches and a run span ends after everything beneath it, so the printer
holds spans per trace and prints a run's tree when the run span itself arrives. Spans that turn
up for a run already printed (feedback sent later, say) get a one-line note instead.

Example::

    printer = RunTreePrinter()
    with OTLPReceiver(port=4318, on_spans=printer):
        ...  # run an agent exporting to http://127.0.0.1:4318
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.semconv.attributes import exception_attributes as _exc
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from contextcompany import _semconv as sc
from contextcompany._usage import Usage
from contextcompany.dev._receiver import ReceivedSpan
from contextcompany.dev._text import (
    format_cost,
    format_duration,
    json_preview,
    message_preview,
    number,
    shorten,
)

__all__ = ["RunTreePrinter", "format_cost", "format_duration", "message_preview"]

STATUS_ERROR: Final = 2
PREVIEW_CHARS: Final = 80
TOOL_PREVIEW_CHARS: Final = 60


@dataclass
class _Trace:
    """What is held for one trace until its run span arrives."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    # Runs of this trace printed already: shown as a stub if an enclosing run is printed later.
    printed_runs: list[ReceivedSpan] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.printed_runs)


@dataclass(frozen=True)
class _Glyphs:
    ok: str
    error: str
    late: str
    arrow: str
    ellipsis: str
    feedback: str
    sep: str


_UNICODE: Final = _Glyphs(ok="✔", error="✘", late="↪", arrow="→", ellipsis="…", feedback="★", sep=" · ")
_ASCII: Final = _Glyphs(ok="ok", error="ERR", late="->", arrow="->", ellipsis="...", feedback="*", sep=" | ")


# --- formatting (shared with the web viewer in _text) ------------------------------------------

_number = number
_shorten = shorten
_json_preview = json_preview


# --- the printer --------------------------------------------------------------------------------


def _exception_type(span: ReceivedSpan) -> str | None:
    for event in reversed(span.events):
        if event.name == "exception" and event.attributes.get(_exc.EXCEPTION_TYPE):
            return str(event.attributes[_exc.EXCEPTION_TYPE])
    return None


def _is_run(span: ReceivedSpan) -> bool:
    return span.attributes.get(sc.OPERATION_NAME) == sc.OP_INVOKE_AGENT


def _is_feedback(span: ReceivedSpan) -> bool:
    return span.name == sc.FEEDBACK_SPAN_NAME


def _run_id(span: ReceivedSpan) -> str:
    value = span.attributes.get(sc.RUN_ID)
    return str(value) if value is not None else f"span {span.span_id}"


class RunTreePrinter:
    """Prints each agent run as a tree once its run span has arrived; use as ``on_spans``.

    Memory stays bounded: printed spans are forgotten (only their ids are remembered, to recognise
    late arrivals), and traces whose run never finishes are dropped oldest first beyond
    ``max_pending_traces`` traces or ``max_pending_spans`` spans.

    Example::

        printer = RunTreePrinter(Console(file=io.StringIO(), width=120))
        printer(receiver.spans)
        print(printer.console.file.getvalue())
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        max_pending_traces: int = 4096,
        max_pending_spans: int = 100_000,
        max_remembered_spans: int = 100_000,
    ) -> None:
        self.console = console if console is not None else Console(highlight=False)
        self._max_traces = max(1, max_pending_traces)
        self._max_spans = max(1, max_pending_spans)
        self._max_remembered = max(1, max_remembered_spans)
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Trace] = OrderedDict()
        self._pending_count = 0
        # span id -> run id for every printed span, so later children become notes naming the run.
        self._printed: OrderedDict[str, str] = OrderedDict()
        self._printed_run_ids: OrderedDict[str, None] = OrderedDict()
        self._runs_printed = 0
        self._spans_seen = 0
        encoding = (self.console.encoding or "").lower()
        # A file that is not UTF-8 (a redirect on Windows, say) gets ASCII glyphs and guides.
        self._unicode = encoding.startswith("utf")
        self._g = _UNICODE if self._unicode else _ASCII
        # The spans of the trace being printed, by parent id (for the run's step counts).
        self._children: dict[str, list[ReceivedSpan]] = {}

    @property
    def runs_printed(self) -> int:
        """How many run trees have been printed."""
        return self._runs_printed

    @property
    def spans_seen(self) -> int:
        """How many spans were handed to the printer."""
        return self._spans_seen

    @property
    def pending_span_count(self) -> int:
        """Spans held, not shown yet: their run has not finished, or their trace has no run."""
        with self._lock:
            return sum(len(t.spans) for t in self._pending.values())

    def __call__(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans_seen += len(spans)
            touched: dict[str, None] = {}
            for span in spans:
                run_id = self._late_run_id(span)
                if run_id is not None:
                    self._remember(span.span_id, run_id)
                    self._emit(self._late_note(span, run_id))
                    continue
                trace = self._pending.get(span.trace_id)
                if trace is None:
                    trace = self._pending[span.trace_id] = _Trace()
                self._pending.move_to_end(span.trace_id)  # recently active traces are evicted last
                trace.spans.append(span)
                self._pending_count += 1
                touched[span.trace_id] = None
            for trace_id in touched:
                self._print_finished_runs(trace_id)
            self._enforce_caps()

    # -- bookkeeping --

    def _late_run_id(self, span: ReceivedSpan) -> str | None:
        if span.parent_span_id is not None and span.parent_span_id in self._printed:
            return self._printed[span.parent_span_id]
        if _is_feedback(span):
            run_id = span.attributes.get(sc.RUN_ID)
            if run_id is not None and str(run_id) in self._printed_run_ids:
                return str(run_id)
        return None

    def _remember(self, span_id: str, run_id: str) -> None:
        self._printed[span_id] = run_id
        if len(self._printed) > self._max_remembered:
            self._printed.popitem(last=False)

    def _enforce_caps(self) -> None:
        while len(self._pending) > self._max_traces or (
            self._pending_count > self._max_spans and len(self._pending) > 1
        ):
            _, dropped = self._pending.popitem(last=False)
            self._pending_count -= len(dropped)
        if self._pending_count > self._max_spans:
            # One trace alone is over the limit: keep its newest spans.
            trace = next(iter(self._pending.values()))
            excess = self._pending_count - self._max_spans
            del trace.spans[:excess]
            self._pending_count = len(trace)

    def _print_finished_runs(self, trace_id: str) -> None:
        trace = self._pending[trace_id]
        by_id = {s.span_id: s for s in trace.spans}
        tops = [s for s in trace.spans if _is_run(s) and not self._inside_run(s, by_id)]
        if not tops:
            return
        for run in sorted(tops, key=lambda s: s.start_time_unix_nano):
            self._print_run(run, trace)
        if not trace:
            del self._pending[trace_id]

    @staticmethod
    def _inside_run(span: ReceivedSpan, by_id: Mapping[str, ReceivedSpan]) -> bool:
        # A nested agent ends before the agent that called it: it is printed inside that one.
        seen = {span.span_id}
        parent_id = span.parent_span_id
        while parent_id is not None and parent_id not in seen:
            parent = by_id.get(parent_id)
            if parent is None:
                return False
            if _is_run(parent):
                return True
            seen.add(parent_id)
            parent_id = parent.parent_span_id
        return False

    def _print_run(self, run: ReceivedSpan, trace: _Trace) -> None:
        held = len(trace)
        children: dict[str, list[ReceivedSpan]] = {}
        for span in (*trace.spans, *trace.printed_runs):
            if span.parent_span_id is not None and span is not run:
                children.setdefault(span.parent_span_id, []).append(span)
        stubs = {id(s) for s in trace.printed_runs}
        self._children = children

        tree = Tree(self._run_label(run, nested=False), guide_style="dim")
        printed: list[ReceivedSpan] = [run]
        used_stubs: list[ReceivedSpan] = []
        self._remember(run.span_id, _run_id(run))

        visited = {run.span_id}  # malformed ids (a span its own ancestor) must not recurse forever

        def add_children(node: Tree, parent: ReceivedSpan, run_id: str) -> None:
            kids = sorted(children.get(parent.span_id, ()), key=lambda s: s.start_time_unix_nano)
            for kid in kids:
                if kid.span_id in visited:
                    continue
                visited.add(kid.span_id)
                if id(kid) in stubs:
                    node.add(self._stub_label(kid))
                    used_stubs.append(kid)
                    continue
                printed.append(kid)
                kid_run_id = _run_id(kid) if _is_run(kid) else run_id
                self._remember(kid.span_id, kid_run_id)
                add_children(node.add(self._label(kid)), kid, kid_run_id)

        add_children(tree, run, _run_id(run))
        self._emit(tree)
        self._runs_printed += 1
        self._printed_run_ids[_run_id(run)] = None
        if len(self._printed_run_ids) > self._max_remembered:
            self._printed_run_ids.popitem(last=False)

        printed_ids = {id(s) for s in printed}
        trace.spans = [s for s in trace.spans if id(s) not in printed_ids]
        used = {id(s) for s in used_stubs}
        trace.printed_runs = [s for s in trace.printed_runs if id(s) not in used]
        if run.parent_span_id is not None:
            # It may be a nested agent whose caller ends later: remember it for that caller's tree.
            trace.printed_runs.append(run)
        self._pending_count += len(trace) - held

    def _emit(self, renderable: Tree | Text) -> None:
        if self._unicode:
            self.console.print(renderable)
        else:
            # Names and previews are the user's text and may hold characters the file cannot encode:
            # replaced, so a run is never lost to a UnicodeEncodeError.
            with self.console.capture() as capture:
                self.console.print(renderable)
            encoding = self.console.encoding
            self.console.file.write(capture.get().encode(encoding, "replace").decode(encoding))
            self.console.file.flush()
        if isinstance(renderable, Tree):
            self.console.print()  # a blank line between runs

    # -- labels --

    def _status(self, span: ReceivedSpan) -> Text:
        if span.status_code == STATUS_ERROR:
            return Text(self._g.error, style="bold red")
        return Text(self._g.ok, style="green")

    def _error_text(self, span: ReceivedSpan) -> Text | None:
        if span.status_code != STATUS_ERROR:
            return None
        error_type = span.attributes.get(sc.ERROR_TYPE)
        if error_type in (None, sc.ERROR_TYPE_OTHER):
            error_type = _exception_type(span)
        message = span.status_message
        if not message:
            message = str(error_type or "failed")
        elif error_type and not message.startswith(str(error_type)):
            # "ValueError: city not found": the type says what kind of failure it was.
            message = f"{error_type}: {message}"
        return Text(_shorten(message, PREVIEW_CHARS, self._g.ellipsis), style="red")

    def _line(
        self, head: Text, fields: Iterable[Text | str | None], span: ReceivedSpan, *, timed: bool = True
    ) -> Text:
        if not timed:
            out, items = head, (*fields,)
        else:
            # Duration first: it lines up under the name, and a wrapped line loses the least useful end.
            out = Text.assemble(self._status(span), " ", head)
            items = (Text(format_duration(span.duration_ms), style="dim"), *fields, self._error_text(span))
        for item in items:
            if item:
                out.append(self._g.sep, style="dim")
                out.append(item)
        return out

    def _label(self, span: ReceivedSpan) -> Text:
        if _is_run(span):
            return self._run_label(span, nested=True)
        operation = span.attributes.get(sc.OPERATION_NAME)
        if operation == sc.OP_CHAT:
            return self._step_label(span)
        if operation == sc.OP_EXECUTE_TOOL:
            return self._tool_label(span)
        if _is_feedback(span):
            return self._feedback_label(span)
        return self._line(Text(span.name, style="bold"), (), span)

    def _run_label(self, run: ReceivedSpan, *, nested: bool) -> Text:
        attrs = run.attributes
        head = Text.assemble((run.name, "bold magenta" if not nested else "magenta"), "  ", ("run ", "dim"))
        head.append(_run_id(run), style="cyan")
        label = self._line(head, (), run)
        ellipsis = self._g.ellipsis
        prompt = message_preview(attrs.get(sc.INPUT_MESSAGES), "user", PREVIEW_CHARS, ellipsis)
        response = message_preview(attrs.get(sc.OUTPUT_MESSAGES), None, PREVIEW_CHARS, ellipsis)
        session = attrs.get(sc.CONVERSATION_ID)
        metadata = self._g.sep.join(
            f"{key[len(sc.METADATA_PREFIX) :]}={_shorten(str(value), TOOL_PREVIEW_CHARS, ellipsis)}"
            for key, value in sorted(attrs.items())
            if key.startswith(sc.METADATA_PREFIX)
        )
        for name, value in (
            ("prompt  ", prompt),
            ("response", response),
            ("totals  ", self._totals(run)),
            ("session ", None if session is None else str(session)),
            ("metadata", metadata),
        ):
            if value:
                label.append("\n")
                # Indented past the status glyph, under the run's name.
                label.append(f"  {name}  ", style="dim")
                label.append(value)
        return label

    def _step_counts(self, run: ReceivedSpan) -> tuple[int, int]:
        """The run's steps (LLM spans not inside another LLM span) and how many of them are priced."""
        steps = priced = 0
        stack = [(kid, False) for kid in self._children.get(run.span_id, ())]
        seen = {run.span_id}
        while stack:
            span, under_step = stack.pop()
            if span.span_id in seen:
                continue
            seen.add(span.span_id)
            is_step = span.attributes.get(sc.OPERATION_NAME) == sc.OP_CHAT
            if is_step and not under_step:
                steps += 1
                if _number(span.attributes.get(sc.COST_USD)) is not None:
                    priced += 1
            stack.extend((kid, under_step or is_step) for kid in self._children.get(span.span_id, ()))
        return steps, priced

    def _totals(self, run: ReceivedSpan) -> Text | None:
        attrs = run.attributes
        parts: list[Text] = []
        usage = Usage.from_run_attributes(attrs)
        if usage is not None:
            for value, unit, always in (
                (usage.input, "in", True),
                (usage.cache_read, "cached", True),
                (usage.cache_write, "cache write", False),  # shown when some were written
                (usage.output, "out", True),
            ):
                if value is not None and (always or value):
                    parts.append(Text(f"{value:,} {unit}"))
        cost = _number(attrs.get(sc.RUN_COST_USD))
        if cost is not None:
            parts.append(Text(format_cost(cost), style="bold"))
        if not parts:
            return None  # no totals: a bare step count would read as if the run cost nothing
        steps, priced = self._step_counts(run)
        if steps:
            text = f"{steps:,} step{'' if steps == 1 else 's'}"
            if priced != steps:
                # The cost above leaves the others out, so it is a lower bound.
                parts.append(Text(f"{text}, {priced:,} priced", style="yellow" if cost is not None else ""))
            else:
                parts.append(Text(text))
        return Text(self._g.sep).join(parts)

    def _step_label(self, span: ReceivedSpan) -> Text:
        attrs = span.attributes
        model = attrs.get(sc.RESPONSE_MODEL) or attrs.get(sc.REQUEST_MODEL)
        head = Text("chat", style="bold")
        if model:
            head.append(f" {model}", style="cyan")
        usage = Usage.from_attributes(attrs)
        tokens = []
        if usage is not None:
            tokens = [
                f"{count:,} {unit}"
                for count, unit in (
                    (usage.input, "in"),
                    (usage.cache_read, "cached"),
                    (usage.cache_write, "cache write"),
                    (usage.output, "out"),
                )
                if count is not None
            ]
        return self._line(head, (" / ".join(tokens), self._step_cost(attrs), self._finish(attrs)), span)

    @staticmethod
    def _step_cost(attrs: Mapping[str, Any]) -> Text | None:
        source = attrs.get(sc.COST_SOURCE)
        if source == sc.COST_SOURCE_NO_PRICE:
            return Text("no price", style="yellow")
        cost = _number(attrs.get(sc.COST_USD))
        if cost is None:
            return None
        out = Text(format_cost(cost))
        if source:
            out.append(f" ({source})", style="dim")
        return out

    @staticmethod
    def _finish(attrs: Mapping[str, Any]) -> Text | None:
        reasons = attrs.get(sc.RESPONSE_FINISH_REASONS)
        if not reasons:
            return None
        text = reasons if isinstance(reasons, str) else ", ".join(str(r) for r in reasons)
        return Text(text, style="italic")  # "stop", "tool_calls", "length": they read as what they are

    def _tool_label(self, span: ReceivedSpan) -> Text:
        attrs = span.attributes
        name = attrs.get(sc.TOOL_NAME) or span.name
        head = Text.assemble(("tool", "bold"), " ", (str(name), "yellow"))
        arguments = _json_preview(attrs.get(sc.TOOL_CALL_ARGUMENTS), TOOL_PREVIEW_CHARS, self._g.ellipsis)
        if arguments is not None:
            head.append(f"({arguments})")
        result = _json_preview(attrs.get(sc.TOOL_CALL_RESULT), TOOL_PREVIEW_CHARS, self._g.ellipsis)
        if result is not None:
            head.append(f" {self._g.arrow} ", style="dim")
            head.append(result)
        return self._line(head, (), span)

    def _feedback_label(self, span: ReceivedSpan) -> Text:
        attrs = span.attributes
        head = Text.assemble((self._g.feedback + " ", "yellow"), ("feedback", "bold"))
        label = attrs.get(sc.EVALUATION_SCORE_LABEL)
        score = _number(attrs.get(sc.EVALUATION_SCORE_VALUE))
        explanation = attrs.get(sc.EVALUATION_EXPLANATION)
        fields: list[Text | str | None] = [
            Text(str(label), style="bold") if label is not None else None,
            f"score {score:g}" if score is not None else None,
            f'"{_shorten(str(explanation), PREVIEW_CHARS, self._g.ellipsis)}"' if explanation else None,
        ]
        # Feedback is a moment, not an operation: no status or duration to show.
        return self._line(head, fields, span, timed=False)

    def _stub_label(self, run: ReceivedSpan) -> Text:
        head = Text.assemble((run.name, "magenta"), "  ", ("run ", "dim"), (_run_id(run), "cyan"))
        head.append("  (printed above)", style="dim")
        return self._line(head, (), run)

    def _late_note(self, span: ReceivedSpan, run_id: str) -> Text:
        note = Text.assemble((f"{self._g.late} for run ", "dim"), (run_id, "cyan"), (": ", "dim"))
        note.append_text(self._label(span))
        return note
