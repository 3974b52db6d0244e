"""The ``contextcompany`` command line.

``contextcompany dev`` receives OTLP traces on a local port and prints each agent run as a tree::

    python -m contextcompany dev                      # serve until Ctrl-C
    python -m contextcompany dev -- python agent.py   # run a program against it, exit with its code
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from rich.console import Console
from rich.text import Text

from contextcompany import __version__
from contextcompany.dev import OTLPReceiver, RunTreePrinter

__all__ = ["build_parser", "main"]

PROG = "contextcompany"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

_Handler = Callable[[argparse.Namespace, list[str] | None], int]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets ``handler`` and whether it takes ``-- COMMAND``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="The Context Company: OpenTelemetry-native observability for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")

    dev = commands.add_parser(
        "dev",
        help="receive traces locally and print each agent run as a tree",
        description=(
            "Receive OTLP/HTTP traces on a local port and print each agent run as a tree of steps "
            f"and tool calls. Point an application at it with {ENDPOINT_ENV}, or give a command "
            "after -- to run it with that variable set; dev then exits with the command's exit code."
        ),
        usage=f"{PROG} dev [-h] [--host HOST] [--port PORT] [-- COMMAND [ARGS ...]]",
        epilog=f"example: {PROG} dev --port 4318 -- python examples/weather_agent.py",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    dev.add_argument(
        "--port",
        type=_port,
        default=4318,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    dev.set_defaults(handler=_dev, takes_command=True)
    return parser


def _split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    # Everything after the first "--" is the command, verbatim: argparse's handling of "--" inside
    # positional values has changed between Python versions, and a command may contain "--" itself.
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    head, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(head)
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if command is not None:
        if not getattr(args, "takes_command", False):
            parser.error(f"{args.subcommand} does not take a command after --")
        if not command:
            parser.error("expected a command after --")
    handler: _Handler = args.handler
    return handler(args, command)


# --- dev ----------------------------------------------------------------------------------------


def _note(console: Console, *parts: str | tuple[str, str]) -> None:
    console.print(Text.assemble(("contextcompany dev: ", "dim"), *parts))


def _dev(args: argparse.Namespace, command: list[str] | None) -> int:
    out = Console(highlight=False)  # run trees on stdout
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 120  # rich's 80 columns for a file would wrap most step lines
    # Everything else on stderr, so stdout can be piped; one line per message, never wrapped.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    printer = RunTreePrinter(out)
    # Spans are printed as they arrive; keeping none of them keeps a long session's memory flat.
    receiver = OTLPReceiver(args.host, args.port, on_spans=printer, max_kept_spans=0)
    try:
        receiver.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {args.port} on {args.host} is already in use"
        else:
            reason = f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
        err.print(
            Text(f"error: {reason}; choose another with --port (--port 0 picks a free one)", style="red")
        )
        return EXIT_USAGE
    try:
        if command is None:
            return _serve(receiver, printer, err)
        return _run(command, receiver, printer, err)
    finally:
        receiver.stop()


def _summary(printer: RunTreePrinter) -> str:
    runs = printer.runs_printed
    spans = printer.spans_seen
    text = f"{runs} run{'' if runs == 1 else 's'} printed, {spans} span{'' if spans == 1 else 's'} received"
    if printer.pending_span_count:
        text += f" ({printer.pending_span_count} outside a finished run, not shown)"
    return text


def _serve(receiver: OTLPReceiver, printer: RunTreePrinter, err: Console) -> int:
    _note(
        err,
        "listening on ",
        (receiver.traces_url, "bold"),
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
    _note(err, "stopped; ", _summary(printer))
    return 0


def _run(command: list[str], receiver: OTLPReceiver, printer: RunTreePrinter, err: Console) -> int:
    env = dict(os.environ)
    # Both variables: an inherited traces-specific endpoint would otherwise win over the base one.
    env[ENDPOINT_ENV] = receiver.endpoint
    env[TRACES_ENDPOINT_ENV] = receiver.traces_url
    # A Python program's prints then interleave with the trees instead of arriving all at exit.
    env.setdefault("PYTHONUNBUFFERED", "1")
    _note(err, "receiving on ", (receiver.traces_url, "bold"), "; running ", (shlex.join(command), "bold"))
    try:
        process = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        err.print(Text(f"error: command not found: {command[0]}", style="red"))
        return EXIT_NOT_FOUND
    except OSError as exc:
        err.print(Text(f"error: cannot run {command[0]}: {exc.strerror or exc}", style="red"))
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
    # The receiver answers an export only after printing it, so a command that flushed before exiting
    # has had all its runs printed by now.
    _note(err, f"{shlex.join(command)} exited with code {code}; ", _summary(printer))
    return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128 + N


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
