"""The ``contextcompany`` command line (needs the ``cli`` extra: ``pip install 'contextcompany[cli]'``).

``contextcompany dev`` receives OTLP traces on a local port, keeps them in SQLite, shows them in a web
viewer on the same port and prints each agent run as a tree::

    python -m contextcompany dev                      # serve until Ctrl-C; open the URL it prints
    python -m contextcompany dev -- python agent.py   # run a program against it, exit with its code

``contextcompany import`` sends complete runs from a JSON Lines file, one ``tcc.send_run()`` record a
line::

    python -m contextcompany import runs.jsonl --tcc-url https://collector.example.com:4318
    gunzip -c runs.jsonl.gz | python -m contextcompany import -
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import ipaddress
import json
import os
import shlex
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from contextcompany import __version__, flush, send_run, stats
from contextcompany.dev._metrics import MetricTotals
from contextcompany.dev._receiver import OTLPReceiver, ReceivedSpan
from contextcompany.dev._store import DEFAULT_MAX_RUNS, MEMORY, SpanStore, default_db_path
from contextcompany.dev._web import Viewer

if TYPE_CHECKING:
    # rich is the cli extra's: imported where the command line runs, never by `import contextcompany`.
    from rich.console import Console

    from contextcompany.dev._tree import RunTreePrinter

__all__ = ["build_parser", "main"]

PROG = "contextcompany"
MISSING_CLI = f"{PROG}: the command line needs the 'cli' extra: pip install 'contextcompany[cli]'"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT

_Handler = Callable[[argparse.Namespace, list[str] | None], int]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fill(text: str) -> str:
    # The help formatter keeps line breaks as written (so examples are never wrapped mid-flag):
    # prose is wrapped here instead.
    return "\n\n".join(textwrap.fill(" ".join(p.split()), 78) for p in text.strip().split("\n\n"))


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog=PROG, description="The Context Company: OpenTelemetry-native observability for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")

    dev = commands.add_parser(
        "dev",
        help="receive traces locally, see runs in a browser and as trees in the terminal",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_fill(
            f"""
            Receive OTLP/HTTP traces (and metrics) on a local port, keep them in SQLite and show
            them in a web viewer on the same port (the URL is printed at start); each agent run is
            also printed as a tree of steps and tool calls. Point an application at it with
            {ENDPOINT_ENV}, or give a command after -- to run it with that variable set; dev then
            exits with the command's exit code.
            """
        ),
        usage=(
            f"{PROG} dev [-h] [--host HOST] [--port PORT] [--db PATH] [--max-runs N] [--quiet] "
            "[-- COMMAND [ARGS ...]]"
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} dev                                            # open the URL it prints\n"
            f"  {PROG} dev -- python -m contextcompany.dev.demo       # a simulated agent, shipped\n"
            f"  {PROG} dev --port 0 --db :memory: -- python my_agent.py"
        ),
    )
    dev.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; anything but loopback shows your prompts to that network "
        "(default: %(default)s)",
    )
    dev.add_argument(
        "--port",
        type=_port,
        default=4318,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    dev.add_argument(
        "--db",
        metavar="PATH",
        help=f"the SQLite file runs are kept in, or {MEMORY} to keep nothing after exit "
        f"(default: {default_db_path()})",
    )
    dev.add_argument(
        "--max-runs",
        type=_positive,
        default=DEFAULT_MAX_RUNS,
        metavar="N",
        help="keep the newest N runs, dropping older ones with their spans (default: %(default)s)",
    )
    dev.add_argument(
        "-q", "--quiet", action="store_true", help="print no run trees (the viewer still shows every run)"
    )
    dev.set_defaults(handler=_dev, takes_command=True)

    imp = commands.add_parser(
        "import",
        help="send complete runs from a JSON Lines file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_fill(
            """
            Send complete runs after the fact: one JSON object a line, with the fields of
            tcc.send_run() (run_id, prompt, response, start_time, end_time, steps, tool_calls,
            feedback, ...). Each line is all or nothing; a rejected line is reported with its line
            number and skipped, and the others are sent.

            Exit code: 0 all sent, 1 some lines rejected (or spans not delivered), 2 the file
            cannot be read.
            """
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} import runs.jsonl --tcc-url http://127.0.0.1:4318\n"
            f"  gunzip -c runs.jsonl.gz | {PROG} import -"
        ),
    )
    imp.add_argument("file", metavar="FILE", help="the JSON Lines file; - reads standard input")
    imp.add_argument("--api-key", help="API key for lines without their own api_key (default: TCC_API_KEY)")
    imp.add_argument(
        "--tcc-url",
        help=f"OTLP endpoint for lines without their own tcc_url (default: {ENDPOINT_ENV})",
    )
    imp.add_argument("-q", "--quiet", action="store_true", help="show no progress bar")
    imp.set_defaults(handler=_import, takes_command=False)
    return parser, {"dev": dev, "import": imp}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets ``handler`` and whether it takes ``-- COMMAND``."""
    return _parsers()[0]


def _split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    # Everything after the first "--" is the command, verbatim: argparse's handling of "--" inside
    # positional values has changed between Python versions, and a command may contain "--" itself.
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    if not _has_rich():
        print(MISSING_CLI, file=sys.stderr)
        return EXIT_USAGE
    head, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser, subparsers = _parsers()
    args, extra = parser.parse_known_args(head)
    if extra:
        sub = subparsers.get(args.subcommand or "")
        if args.subcommand == "dev" and sub is not None and not extra[0].startswith("-"):
            # `dev python agent.py`: the command was meant, the -- was forgotten.
            sub.error(
                f"unrecognized arguments: {shlex.join(extra)}\n"
                f"to run a command against the receiver, put it after --: {PROG} dev -- {shlex.join(extra)}"
            )
        (sub or parser).error(f"unrecognized arguments: {shlex.join(extra)}")
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if command is not None:
        if not getattr(args, "takes_command", False):
            subparsers[args.subcommand].error("this command does not take a command after --")
        if not command:
            subparsers[args.subcommand].error("expected a command after --")
    handler: _Handler = args.handler
    return handler(args, command)


# --- dev ----------------------------------------------------------------------------------------


def _note(console: Console, *parts: str | tuple[str, str]) -> None:
    from rich.text import Text  # noqa: PLC0415 (rich: the cli extra, imported when used)

    console.print(Text.assemble(("contextcompany dev: ", "dim"), *parts))


def _fail(console: Console, command: str, message: str) -> None:
    """An error line that starts with the program's name, as argparse's do."""
    from rich.text import Text  # noqa: PLC0415 (rich: the cli extra, imported when used)

    console.print(Text(f"{PROG} {command}: error: {message}", style="red"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Dev:
    """Where the dev command's spans and metrics go: the store, the metric totals, the printer."""

    store: SpanStore
    metrics: MetricTotals
    printer: RunTreePrinter | None
    spans: int = 0

    def on_spans(self, spans: list[ReceivedSpan]) -> None:
        self.spans += len(spans)
        try:
            self.store.add(spans)
        finally:
            # The terminal still gets its trees when the database is in trouble (a full disk, say).
            if self.printer is not None:
                self.printer(spans)


def _dev(args: argparse.Namespace, command: list[str] | None) -> int:
    from rich.console import Console  # noqa: PLC0415 (rich: the cli extra, imported when used)

    from contextcompany.dev._tree import RunTreePrinter  # noqa: PLC0415 (rich: the cli extra, imported when used)

    out = Console(highlight=False)  # run trees on stdout
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 120  # rich's 80 columns for a file would wrap most step lines
    # Everything else on stderr, so stdout can be piped; one line per message, never wrapped.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    db = args.db or str(default_db_path())
    try:
        store = SpanStore(db, max_runs=args.max_runs)
    except (OSError, sqlite3.Error) as exc:
        _fail(
            err,
            "dev",
            f"cannot open the database {db}: {exc}; choose another with --db (--db :memory: keeps none)",
        )
        return EXIT_USAGE
    except RuntimeError as exc:
        _fail(err, "dev", str(exc))
        return EXIT_USAGE
    metrics = MetricTotals()
    loopback = _is_loopback(args.host)
    state = _Dev(store, metrics, None if args.quiet else RunTreePrinter(out))
    # Spans go to the store and the printer; keeping none in the receiver keeps memory flat.
    receiver = OTLPReceiver(
        args.host,
        args.port,
        on_spans=state.on_spans,
        max_kept_spans=0,
        on_metrics=metrics,
        web=Viewer(store, metrics=metrics, loopback_only=loopback).handle,
    )
    try:
        receiver.start()
    except OSError as exc:
        store.close()
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {args.port} on {args.host} is already in use"
        else:
            reason = f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
        _fail(err, "dev", f"{reason}; choose another with --port (--port 0 picks a free one)")
        return EXIT_USAGE
    if not loopback:
        _note(
            err,
            (
                f"warning: listening on {args.host}: anyone who can reach this address can read the "
                "prompts and responses of your runs in the viewer",
                "yellow",
            ),
        )
    try:
        if command is None:
            return _serve(receiver, state, err)
        return _run(command, receiver, state, err)
    finally:
        receiver.stop()
        store.close()


def _summary(state: _Dev) -> str:
    spans = state.spans
    received = f"{spans} span{'' if spans == 1 else 's'} received"
    printer = state.printer
    if printer is None:
        text = received
    else:
        runs = printer.runs_printed
        text = f"{runs} run{'' if runs == 1 else 's'} printed, {received}"
        if printer.pending_span_count:
            text += f" ({printer.pending_span_count} outside a finished run, not shown)"
    where = "memory" if state.store.path == MEMORY else state.store.path
    return text + f"; {state.store.run_count} run{'' if state.store.run_count == 1 else 's'} kept in {where}"


def _metrics_summary(state: _Dev, err: Console) -> None:
    lines = state.metrics.lines()
    if lines:
        _note(err, "metrics received, by model:")
        for line in lines:
            err.print("  " + line, markup=False)


def _banner(receiver: OTLPReceiver) -> tuple[str | tuple[str, str], ...]:
    return (
        "viewer at ",
        (receiver.endpoint + "/", "bold"),
        "; receiving OTLP on ",
        (receiver.traces_url, "bold"),
    )


def _serve(receiver: OTLPReceiver, state: _Dev, err: Console) -> int:
    _note(
        err,
        *_banner(receiver),
        "; set ",
        (f"{ENDPOINT_ENV}={receiver.endpoint}", "bold"),
        " (Ctrl-C to stop)",
    )
    with _signal_handler(signal.SIGTERM, _raise_interrupt):
        try:
            while True:
                time.sleep(3600)  # the receiver serves on its own thread; this only waits for a signal
        except KeyboardInterrupt:
            pass
    _note(err, "stopped; ", _summary(state))
    _metrics_summary(state, err)
    return 0


def _run(command: list[str], receiver: OTLPReceiver, state: _Dev, err: Console) -> int:
    env = dict(os.environ)
    # Both variables: an inherited traces-specific endpoint would otherwise win over the base one.
    env[ENDPOINT_ENV] = receiver.endpoint
    env[TRACES_ENDPOINT_ENV] = receiver.traces_url
    # A Python program's prints then interleave with the trees instead of arriving all at exit.
    env.setdefault("PYTHONUNBUFFERED", "1")
    _note(err, *_banner(receiver), "; running ", (shlex.join(command), "bold"))
    try:
        process = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        _fail(err, "dev", f"command not found: {command[0]}")
        return EXIT_NOT_FOUND
    except OSError as exc:
        _fail(err, "dev", f"cannot run {command[0]}: {exc.strerror or exc}")
        return EXIT_NOT_EXECUTABLE

    def forward_sigterm(signum: int, frame: FrameType | None) -> None:
        process.send_signal(signal.SIGTERM)

    with _signal_handler(signal.SIGTERM, forward_sigterm):
        while True:
            try:
                code = process.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C reached the command too (same process group); let it finish flushing its spans.
                continue
    # The receiver answers an export only after storing and printing it, so a command that flushed
    # before exiting has had all its runs printed by now.
    _note(err, f"{shlex.join(command)} exited with code {code}; ", _summary(state))
    _metrics_summary(state, err)
    return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128 + N


# --- import -------------------------------------------------------------------------------------

REPORTED_REJECTIONS = 50  # rejected lines listed by number and reason; the rest are counted
REASON_MAX_CHARS = 500
# Spans waiting in tcc's export queue before the import waits for them to go out: a file is read far
# faster than a collector takes spans, and a full queue drops its oldest (default size 2048).
BACKLOG_SPANS = 256


@dataclass(slots=True)
class _ImportReport:
    sent: int = 0
    rejected: int = 0
    reasons: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line_number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < REPORTED_REJECTIONS:
            if len(reason) > REASON_MAX_CHARS:
                reason = reason[: REASON_MAX_CHARS - 3] + "..."
            self.reasons.append((line_number, reason))


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _rejection(exc: Exception) -> str:
    # TypeError/ValueError are the checks' own messages (path, call, what was expected) or Python's
    # for an unknown field; anything else is unexpected and keeps its type name.
    text = str(exc) if isinstance(exc, TypeError | ValueError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.splitlines())


def _import_line(raw: bytes, number: int, defaults: dict[str, str], report: _ImportReport) -> None:
    """Send one line's run, or record why not. Never raises for a bad line."""
    if number == 1:
        raw = raw.removeprefix(codecs.BOM_UTF8)  # editors on Windows like to start files with one
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.reject(number, f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})")
        return
    text = text.rstrip("\r\n")  # so a JSON error's column counts within the line
    if not text.strip(" \t"):
        return  # blank lines are skipped, not rejected
    try:
        record: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        report.reject(number, f"invalid JSON: {exc.msg} at column {exc.colno}")
        return
    except (ValueError, RecursionError) as exc:  # e.g. an int too long to convert, nesting too deep
        report.reject(number, f"invalid JSON: {exc or type(exc).__name__}")
        return
    if not isinstance(record, dict):
        report.reject(number, f"not a JSON object but {_json_kind(record)}")
        return
    for key, value in defaults.items():
        if record.get(key) is None:
            record[key] = value
    try:
        send_run(**record)
    except Exception as exc:
        report.reject(number, _rejection(exc))
        return
    report.sent += 1
    backlog = stats()
    if backlog is not None and backlog.queue_size >= BACKLOG_SPANS:
        flush()  # wait for the collector rather than overflow the queue and drop spans


def _size(stream: IO[bytes]) -> int | None:
    """The size of a regular file (also as redirected stdin), else None: the bar then only counts."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _import(args: argparse.Namespace, command: list[str] | None) -> int:
    from rich.console import Console  # noqa: PLC0415 (rich: the cli extra, imported when used)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415 (rich: the cli extra, imported when used)

    out = Console(highlight=False, soft_wrap=True)  # the summary, on stdout
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # the progress bar and fatal errors
    name = "standard input" if args.file == "-" else args.file
    try:
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        _fail(err, "import", f"cannot read {name}: {exc.strerror or exc}")
        return EXIT_USAGE
    defaults = {key: value for key, value in (("api_key", args.api_key), ("tcc_url", args.tcc_url)) if value}
    report = _ImportReport()
    read_error: OSError | None = None
    interrupted = False
    # By bytes read, so no first pass over the file is needed to count its lines.
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        DownloadColumn(),
        TimeRemainingColumn(compact=True),
        TextColumn("{task.fields[sent]} sent, {task.fields[rejected]} rejected"),
        console=err,
        transient=True,
        disable=args.quiet or not err.is_terminal,  # a bar cannot redraw in a log file
    )
    with progress, contextlib.ExitStack() as closing:
        if stream is not sys.stdin.buffer:
            closing.enter_context(stream)
        label = os.path.basename(name)
        label = label if len(label) <= 20 else label[:19] + "…"
        task = progress.add_task(label, total=_size(stream), sent=0, rejected=0)
        try:
            for number, raw in enumerate(stream, 1):  # one line at a time: never the whole file
                _import_line(raw, number, defaults, report)
                progress.update(task, advance=len(raw), sent=report.sent, rejected=report.rejected)
        except OSError as exc:
            read_error = exc
        except KeyboardInterrupt:
            interrupted = True
    delivered = flush()
    _print_import_summary(out, name, report, delivered, interrupted)
    if read_error is not None:
        _fail(err, "import", f"reading {name} failed: {read_error.strerror or read_error}")
        return EXIT_USAGE
    if interrupted:
        return EXIT_INTERRUPTED
    counts = stats()
    undelivered = not delivered or (counts is not None and counts.spans_dropped > 0)
    return 1 if report.rejected or undelivered else 0


def _print_import_summary(
    out: Console, name: str, report: _ImportReport, delivered: bool, interrupted: bool
) -> None:
    from rich.text import Text  # noqa: PLC0415 (rich: the cli extra, imported when used)

    summary = f"{_plural(report.sent, 'run')} sent, {_plural(report.rejected, 'line')} rejected"
    if interrupted:
        summary += " (interrupted: the rest of the file was not read)"
    out.print(Text.assemble(("contextcompany import: ", "dim"), f"{name}: ", (summary, "bold")))
    # Text, not markup: reasons hold "[TCC]" and user data, which rich would read as markup tags.
    for number, reason in report.reasons:
        out.print(Text.assemble("  line ", (str(number), "bold"), f": {reason}"))
    if report.rejected > len(report.reasons):
        out.print(Text(f"  ... and {_plural(report.rejected - len(report.reasons), 'more rejected line')}"))
    counts = stats()
    if not delivered:
        out.print(
            Text("warning: tcc.flush() timed out: some spans may not have been delivered", style="yellow")
        )
    if counts is not None and counts.spans_dropped:
        last = f"; last error: {counts.last_error}" if counts.last_error else ""
        out.print(
            Text(
                f"warning: {_plural(counts.spans_dropped, 'span')} could not be delivered "
                f"({_plural(counts.exports_failed, 'failed export')}{last})",
                style="yellow",
            )
        )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signal_handler(signum: int, handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    # Signal handlers can only be set from the main thread; elsewhere (tests calling main() from a
    # worker) the default handling stays.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


if __name__ == "__main__":
    sys.exit(main())
