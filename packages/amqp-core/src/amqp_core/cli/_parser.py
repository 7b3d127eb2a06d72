"""The command line of ``amqp-core``: every command, option and help text.

Theory of operation: one :mod:`argparse` parser with a sub-parser per
command (``declare``, ``delete``, ``bind`` and ``unbind`` have one more level:
``queue`` or ``exchange``).  The global options (``--url``, ``--traceback``,
``-v``) are accepted both before and after the command: they are declared on
the top parser and again on every sub-parser with ``argparse.SUPPRESS`` as
default, so a sub-parser that did not see one does not overwrite the value
the top parser read.  :class:`Parser` turns argparse's usage errors into
:class:`~._errors.UsageError` (one line, exit code 2) instead of printing
the usage and exiting.  Each leaf parser sets ``command`` to the name of the
handler :func:`amqp_core.cli.main` runs.

Field tables (headers, arguments) are collected by :class:`_TableItem` into
one list of ``(kind, "KEY=VALUE")`` so that the order of mixed
``--header``/``--header-int``/``--header-json`` options is kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from .._version import __version__
from ._errors import UsageError

__all__ = ["DEFAULT_URL", "SCENARIOS", "Parser", "build_parser"]

#: The broker used when neither ``--url`` nor ``AMQP_URL`` is given.
DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
#: The benchmark scenarios, in the order they run.
SCENARIOS = ("publish", "confirm", "consume", "latency")

_EPILOG = """\
connection: --url, else the AMQP_URL environment variable, else
  amqp://guest:guest@localhost:5672/%2F.  amqps:// URLs take RabbitMQ's TLS query
  keys (cacertfile, certfile, keyfile, verify, server_name_indication) and
  auth_mechanism=external; heartbeat, frame_max, socket_timeout ... are query keys too.

exit codes: 0 ok, 1 other failure, 2 bad command line (or unknown adapter),
  3 connection failed or lost (refused, TLS, authentication, vhost), 4 the broker
  refused an operation on a channel (404 NOT_FOUND, 406 PRECONDITION_FAILED, 403 ...)
  or nacked/returned a published message, 130 interrupted.
  Errors are one line on stderr; --traceback adds the Python traceback."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors raise :class:`UsageError` (one line)."""

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` naming the command and where to get help."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _TableItem(argparse.Action):
    """Append ``(kind, value)`` to the shared list ``dest`` (kind from ``const``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((self.const, values))
        setattr(namespace, self.dest, items)


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--url", default=default, metavar="URL",
        help="broker URL, amqp[s]://user:password@host:port/vhost?key=value (default: "
        "$AMQP_URL, else amqp://guest:guest@localhost:5672/%%2F)",
    )
    group.add_argument(
        "--traceback", action="store_true", default=False if top else argparse.SUPPRESS,
        help="print the Python traceback of an error",
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
        help="log amqp_core's activity on stderr (-vv: debug)",
    )


def _add_table(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, dest: str, what: str
) -> None:
    parser.add_argument(
        flag, action=_TableItem, const="str", dest=dest, metavar="KEY=VALUE",
        help=f"{what} with a text value (repeatable)",
    )
    parser.add_argument(
        f"{flag}-int", action=_TableItem, const="int", dest=dest, metavar="KEY=N",
        help=f"{what} with an integer value (repeatable)",
    )
    parser.add_argument(
        f"{flag}-json", action=_TableItem, const="json", dest=dest, metavar="KEY=JSON",
        help=f"{what} with a JSON value: true, 1.5, null, [1,2], {{\"a\":1}} (repeatable)",
    )


def _leaf(
    subparsers: Any, name: str, command: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_globals(parser, top=False)
    parser.set_defaults(command=command)
    return parser


def _add_ack_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ack-mode", choices=("ack", "auto", "requeue", "reject"), default="ack",
        help="ack: ack each message after printing it (default); auto: the broker "
        "considers a message acked when it sends it (no-ack); requeue: ack nothing, the "
        "messages go back to the queue when the command ends; reject: reject each message "
        "without requeueing (dropped or dead-lettered)",
    )


def _add_publish(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "publish", "publish", "publish a message (confirmed by the broker)",
        "Publish a message, its body from BODY or, without BODY or with '-', from stdin.\n"
        "Publisher confirms are on: the command returns once the broker has taken every\n"
        "message (exit code 4 if it nacks one, or returns a --mandatory one).",
    )
    parser.add_argument(
        "body", nargs="?", metavar="BODY", help="the message body (default: stdin)",
    )
    parser.add_argument(
        "-e", "--exchange", default="", help="exchange (default: '', the default exchange)",
    )
    parser.add_argument(
        "-r", "--routing-key", default="",
        help="routing key (with the default exchange: the queue name)",
    )
    parser.add_argument(
        "--lines", action="store_true",
        help="publish each line of the body (stdin) as a message of its own",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="publish the message N times",
    )
    parser.add_argument(
        "--mandatory", action="store_true", help="fail (exit 4) if no queue takes the message",
    )
    parser.add_argument("--no-confirm", action="store_true", help="do not wait for confirms")
    props = parser.add_argument_group("message properties")
    props.add_argument("--content-type", metavar="TYPE")
    props.add_argument("--content-encoding", metavar="ENCODING")
    props.add_argument(
        "--delivery-mode", metavar="MODE", help="1 or transient, 2 or persistent",
    )
    props.add_argument("--persistent", action="store_true", help="same as --delivery-mode 2")
    props.add_argument("--priority", type=int, metavar="0-255")
    props.add_argument("--correlation-id", metavar="ID")
    props.add_argument("--reply-to", metavar="QUEUE")
    props.add_argument("--expiration", metavar="MS", help="per-message TTL in milliseconds")
    props.add_argument("--message-id", metavar="ID")
    props.add_argument("--timestamp", metavar="SECONDS", help="seconds since the epoch, or 'now'")
    props.add_argument("--type", metavar="TYPE", help="the message type property")
    props.add_argument(
        "--user-id", metavar="USER", help="must be the connection's user (RabbitMQ checks)",
    )
    props.add_argument("--app-id", metavar="APP")
    _add_table(props, "--header", "header_items", "a message header")


def _add_consume(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "consume", "consume", "consume messages from a queue and print them",
        "Consume QUEUE and print each message: its body on a line of its own (lines),\n"
        "or one JSON object per line (json) with routing data, properties and body\n"
        "(body_base64 when the body is not UTF-8).  Runs until --count messages or\n"
        "--idle-timeout seconds without one, or Ctrl-C (exit code 130).",
    )
    parser.add_argument("queue", metavar="QUEUE")
    parser.add_argument(
        "-n", "--count", type=int, default=0, metavar="N",
        help="stop after N messages (default 0: no limit)",
    )
    parser.add_argument(
        "--idle-timeout", type=float, metavar="SECONDS",
        help="stop after SECONDS without a message (default: wait forever)",
    )
    parser.add_argument(
        "--prefetch", type=int, default=100, metavar="N",
        help="unacked messages the broker may send ahead (basic.qos; 0: no limit; default 100)",
    )
    _add_ack_mode(parser)
    parser.add_argument("--format", choices=("lines", "json"), default="lines")
    parser.add_argument("--exclusive", action="store_true", help="be the queue's only consumer")
    _add_table(parser, "--arg", "argument_items", "a consumer argument (x-priority ...)")


def _add_get(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "get", "get", "fetch messages with basic.get and print them",
        "Fetch up to --count messages from QUEUE with basic.get (no consumer) and print\n"
        "them like 'consume' does.  An empty queue prints nothing (a note on stderr).",
    )
    parser.add_argument("queue", metavar="QUEUE")
    parser.add_argument(
        "-n", "--count", type=int, default=1, metavar="N", help="messages to fetch (default 1)",
    )
    _add_ack_mode(parser)
    parser.add_argument("--format", choices=("lines", "json"), default="lines")


def _add_declare(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "declare", help="declare a queue or an exchange",
        description="Declare a queue or an exchange (--passive: check that it exists).",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="{queue,exchange}", required=True)
    queue = _leaf(
        kinds, "queue", "declare_queue", "declare a queue and print its counts",
        "Declare QUEUE (an empty name lets the broker choose one) and print its name,\n"
        "message count and consumer count.",
    )
    queue.add_argument("name", metavar="QUEUE")
    queue.add_argument("--passive", action="store_true", help="only check that it exists")
    queue.add_argument("--durable", action="store_true")
    queue.add_argument("--exclusive", action="store_true")
    queue.add_argument("--auto-delete", action="store_true")
    queue.add_argument(
        "--queue-type", choices=("classic", "quorum", "stream"), help="x-queue-type",
    )
    queue.add_argument("--message-ttl", type=int, metavar="MS", help="x-message-ttl")
    queue.add_argument("--max-length", type=int, metavar="N", help="x-max-length")
    queue.add_argument(
        "--dead-letter-exchange", metavar="EXCHANGE", help="x-dead-letter-exchange",
    )
    _add_table(queue, "--arg", "argument_items", "a queue argument")
    exchange = _leaf(kinds, "exchange", "declare_exchange", "declare an exchange")
    exchange.add_argument("name", metavar="EXCHANGE")
    exchange.add_argument(
        "-t", "--type", default="direct", metavar="TYPE",
        help="direct (default), fanout, topic, headers or a plugin's type",
    )
    exchange.add_argument("--passive", action="store_true", help="only check that it exists")
    exchange.add_argument("--durable", action="store_true")
    exchange.add_argument("--auto-delete", action="store_true")
    exchange.add_argument("--internal", action="store_true")
    _add_table(exchange, "--arg", "argument_items", "an exchange argument")


def _add_delete(subparsers: Any) -> None:
    parser = subparsers.add_parser("delete", help="delete a queue or an exchange")
    kinds = parser.add_subparsers(dest="kind", metavar="{queue,exchange}", required=True)
    queue = _leaf(kinds, "queue", "delete_queue", "delete a queue")
    queue.add_argument("name", metavar="QUEUE")
    queue.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    queue.add_argument("--if-empty", action="store_true", help="only if it holds no messages")
    exchange = _leaf(kinds, "exchange", "delete_exchange", "delete an exchange")
    exchange.add_argument("name", metavar="EXCHANGE")
    exchange.add_argument("--if-unused", action="store_true", help="only if it has no bindings")
    purge = _leaf(subparsers, "purge", "purge", "remove every ready message of a queue")
    purge.add_argument("name", metavar="QUEUE")


def _add_bind(subparsers: Any, name: str) -> None:
    bind = name == "bind"
    verb = "bind" if bind else "unbind"
    parser = subparsers.add_parser(
        name, help=f"{verb} a queue or an exchange {'to' if bind else 'from'} an exchange",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="{queue,exchange}", required=True)
    queue = _leaf(
        kinds, "queue", f"{name}_queue", f"{verb} QUEUE to EXCHANGE",
    )
    queue.add_argument("destination", metavar="QUEUE")
    queue.add_argument("source", metavar="EXCHANGE")
    exchange = _leaf(
        kinds, "exchange", f"{name}_exchange",
        f"{verb} exchange DESTINATION to exchange SOURCE (RabbitMQ extension)",
    )
    exchange.add_argument("destination", metavar="DESTINATION")
    exchange.add_argument("source", metavar="SOURCE")
    for leaf in (queue, exchange):
        leaf.add_argument(
            "-r", "--routing-key", metavar="KEY",
            help="binding key (default: the queue's name for a queue, '' for an exchange)",
        )
        _add_table(leaf, "--arg", "argument_items", "a binding argument (headers exchanges)")


def _add_adapters(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "adapters", "adapters", "list the installed adapters",
        "List the installed adapters: distribution and version, the event loop each runs\n"
        "on and that loop's version, from entry-point metadata and each plugin's\n"
        "description; --verify also imports each connection class.",
    )
    parser.add_argument(
        "--verify", action="store_true", help="import each adapter's connection class",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _add_bench(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "bench", "bench", "measure throughput and latency per adapter",
        "Run the benchmark scenarios through each chosen adapter, one connection and one\n"
        "exclusive queue per run, and print a table (stdout) while a progress bar runs\n"
        "on stderr (periodic lines when stderr is not a terminal).\n\n"
        "  publish   --count messages without confirms, timed until the queue holds them\n"
        "  confirm   --count messages in confirm mode, at most --window unconfirmed\n"
        "  consume   the queue is filled first (untimed); --prefetch, one ack per message\n"
        "  latency   --round-trips publish -> deliver round trips; p50 and p99\n\n"
        "Callback adapters run on their own event loop through the amqp_core.testing\n"
        "loop harness; 'blocking' uses BlockingConnection.  CPU is this process's CPU\n"
        "time per message (the broker's is not included).",
    )
    parser.add_argument(
        "-a", "--adapter", action="append", dest="adapters", metavar="NAME[,NAME...]",
        help="adapter(s) to measure (repeatable; default: every installed adapter)",
    )
    parser.add_argument(
        "-s", "--scenarios", default=",".join(SCENARIOS), metavar="LIST",
        help=f"comma-separated scenarios (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "-n", "--count", type=int, default=20_000, metavar="N",
        help="messages per publish/confirm/consume run (default 20000)",
    )
    parser.add_argument(
        "--round-trips", type=int, default=1000, metavar="N",
        help="round trips of the latency run (default 1000)",
    )
    parser.add_argument("--size", type=int, default=64, metavar="BYTES", help="body size (64)")
    parser.add_argument("--window", type=int, default=1000, help="confirm window (1000)")
    parser.add_argument("--prefetch", type=int, default=1000, help="consumer prefetch (1000)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS",
        help="bound on each run (default 120)",
    )
    parser.add_argument(
        "--progress", choices=("auto", "bar", "lines", "none"), default="auto",
        help="progress on stderr: auto (bar on a terminal, else lines), bar, lines, none",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _add_check(subparsers: Any) -> None:
    parser = _leaf(
        subparsers, "check", "check", "connect and report what the broker offers",
        "Connect, then report the server properties, its capabilities, the limits\n"
        "negotiated in Connection.Tune (channel_max, frame_max, heartbeat) and, over\n"
        "amqps, the TLS version, cipher and the peer certificate.",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def build_parser() -> Parser:
    """The ``amqp-core`` argument parser."""
    parser = Parser(
        prog="amqp-core",
        description="A command-line client for RabbitMQ (AMQP 0-9-1), built on amqp_core.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"amqp-core {__version__}")
    _add_globals(parser, top=True)
    subparsers = parser.add_subparsers(
        dest="command_name", metavar="COMMAND", required=True, parser_class=Parser,
    )
    _add_publish(subparsers)
    _add_consume(subparsers)
    _add_get(subparsers)
    _add_declare(subparsers)
    _add_delete(subparsers)
    _add_bind(subparsers, "bind")
    _add_bind(subparsers, "unbind")
    _add_adapters(subparsers)
    _add_bench(subparsers)
    _add_check(subparsers)
    return parser
