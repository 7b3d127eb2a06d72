"""The simple commands of ``amqp-core``: one ``BlockingConnection``, one channel, one job.

Theory of operation: every handler takes the :class:`Context` (parsed
arguments, output streams, broker URL) and returns the exit code; errors are
raised and reported by :func:`amqp_core.cli.main`.  Arguments are checked
before connecting, so a bad command line never touches the network.  Each
command opens one connection with :meth:`Context.connect` and closes it on the
way out (a ``with`` block), also when interrupted: unacked messages then go
back to their queue.  ``adapters`` and ``check`` report; ``bench`` lives in
:mod:`._bench`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from ..adapters.blocking_connection import BlockingChannel, BlockingConnection
from ..parameters import URLParameters
from ..plugins import AdapterLoadError, get_adapter, get_connection_class, installed_adapters
from ..spec import BasicProperties
from ._errors import EXIT_OK, UsageError
from ._messages import body_text, build_properties, json_default, message_record, parse_table
from ._output import format_table
from ._parser import DEFAULT_URL

__all__ = ["COMMANDS", "Context"]

#: Confirms in flight while publishing many messages.
PUBLISH_WINDOW = 1000


@dataclass
class Context:
    """What a command runs with.

    :param args: the parsed command line
    :param out: standard output
    :param err: standard error
    :param stdin: standard input
    :param environ: the environment (``AMQP_URL``)
    """

    args: argparse.Namespace
    out: TextIO
    err: TextIO
    stdin: TextIO
    environ: dict[str, str] = field(default_factory=dict)
    #: ``host:port`` of the broker, once the URL was read.
    target: str | None = None
    _params: URLParameters | None = None

    @property
    def url(self) -> str:
        """``--url``, else ``AMQP_URL``, else :data:`~._parser.DEFAULT_URL`."""
        url: str | None = getattr(self.args, "url", None)
        return url or self.environ.get("AMQP_URL") or DEFAULT_URL

    def parameters(self) -> URLParameters:
        """The connection parameters of :attr:`url`.

        :raises UsageError: the URL is malformed (the message never quotes it)
        """
        if self._params is None:
            source = "--url" if getattr(self.args, "url", None) else (
                "AMQP_URL" if self.environ.get("AMQP_URL") else "the default URL"
            )
            try:
                params = URLParameters(self.url)
            except (TypeError, ValueError) as error:
                raise UsageError(f"bad {source}: {error}") from None
            self._params = params
            self.target = f"{params.host}:{params.port}"
        return self._params

    def connect(self) -> BlockingConnection:
        """Open a ``BlockingConnection`` to the broker."""
        return BlockingConnection(self.parameters())

    def write_message(
        self, method: Any, properties: BasicProperties | None, body: bytes, fmt: str
    ) -> None:
        """Print one message as ``fmt`` (``lines`` or ``json``)."""
        if fmt == "json":
            record = message_record(method, properties, body)
            line = json.dumps(record, default=json_default, ensure_ascii=False)
        else:
            line = body_text(body)
        self.out.write(line + "\n")
        self.out.flush()


def _positive(value: int, option: str, *, zero: bool = False) -> None:
    if value < 0 or (value == 0 and not zero):
        raise UsageError(f"bad {option} {value}: must be {'>= 0' if zero else '>= 1'}")


def _require_name(value: str, what: str) -> None:
    if not value:
        raise UsageError(f"{what} name must not be empty")


# ---------------------------------------------------------------- publish


def _read_body(ctx: Context) -> bytes:
    body: str | None = ctx.args.body
    if body is not None and body != "-":
        return body.encode("utf-8")
    stdin = ctx.stdin
    isatty = getattr(stdin, "isatty", None)
    if body is None and callable(isatty) and isatty():
        raise UsageError("no BODY given and stdin is a terminal (give BODY, or pipe the body)")
    buffer: BinaryIO | None = getattr(stdin, "buffer", None)
    if buffer is not None:
        return buffer.read()
    return stdin.read().encode("utf-8")


def _bodies(ctx: Context) -> list[bytes]:
    body = _read_body(ctx)
    repeat: int = ctx.args.repeat
    if not ctx.args.lines:
        return [body] * repeat
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r") for line in lines] * repeat


def publish(ctx: Context) -> int:
    """``publish``: send the body (or each line of it), with confirms unless told not to."""
    args = ctx.args
    if not args.exchange and not args.routing_key:
        raise UsageError(
            "publish needs --exchange or --routing-key (with the default exchange, the "
            "routing key is the queue name)"
        )
    _positive(args.repeat, "--repeat")
    if args.mandatory and args.no_confirm:
        raise UsageError(
            "--mandatory needs confirms to report returned messages; drop --no-confirm"
        )
    headers = parse_table("--header", args.header_items or [])
    properties = build_properties(vars(args), headers)
    ctx.parameters()
    bodies = _bodies(ctx)
    with ctx.connect() as connection:
        channel = connection.channel()
        if args.no_confirm:
            for body in bodies:
                channel.basic_publish(args.exchange, args.routing_key, body, properties)
        else:
            with channel.confirm_window(PUBLISH_WINDOW):
                for body in bodies:
                    channel.basic_publish(
                        args.exchange, args.routing_key, body, properties, args.mandatory
                    )
            if not channel.is_open:
                # the broker closed the channel (404 no exchange ...) while the window
                # waited: the next call on the channel raises that close
                channel.wait_for_confirms()
    where = f"exchange {args.exchange!r}" if args.exchange else "the default exchange"
    status = "not confirmed (--no-confirm)" if args.no_confirm else "confirmed"
    ctx.out.write(
        f"published {len(bodies)} message(s) to {where} with routing key "
        f"{args.routing_key!r}, {status}\n"
    )
    return EXIT_OK


# ---------------------------------------------------------------- consume, get


def _settle(channel: BlockingChannel, delivery_tag: int, mode: str) -> None:
    if mode == "ack":
        channel.basic_ack(delivery_tag)
    elif mode == "reject":
        channel.basic_reject(delivery_tag, requeue=False)
    # auto: the broker did it; requeue: unacked messages return when the channel closes


def consume(ctx: Context) -> int:
    """``consume``: print the messages of a queue until a count, an idle time or Ctrl-C."""
    args = ctx.args
    _require_name(args.queue, "queue")
    _positive(args.count, "--count", zero=True)
    _positive(args.prefetch, "--prefetch", zero=True)
    if args.prefetch > 65535:
        raise UsageError(f"bad --prefetch {args.prefetch}: must be <= 65535")
    if args.idle_timeout is not None and args.idle_timeout <= 0:
        raise UsageError(f"bad --idle-timeout {args.idle_timeout}: must be > 0")
    arguments = parse_table("--arg", args.argument_items or [])
    ctx.parameters()
    received = 0
    with ctx.connect() as connection:
        channel = connection.channel()
        if args.prefetch:
            channel.basic_qos(prefetch_count=args.prefetch)
        messages = channel.consume(
            args.queue, auto_ack=args.ack_mode == "auto", exclusive=args.exclusive,
            arguments=arguments, inactivity_timeout=args.idle_timeout,
        )
        for method, properties, body in messages:
            if method is None:
                break  # idle for --idle-timeout seconds
            ctx.write_message(method, properties, body, args.format)
            _settle(channel, method.delivery_tag, args.ack_mode)
            received += 1
            if args.count and received >= args.count:
                break
        if channel.is_open:
            channel.cancel()
    if args.count and received < args.count:
        ctx.err.write(f"amqp-core: consumed {received} of {args.count} message(s)\n")
    return EXIT_OK


def get(ctx: Context) -> int:
    """``get``: fetch up to ``--count`` messages with Basic.Get."""
    args = ctx.args
    _require_name(args.queue, "queue")
    _positive(args.count, "--count")
    ctx.parameters()
    fetched = 0
    with ctx.connect() as connection:
        channel = connection.channel()
        while fetched < args.count:
            method, properties, body = channel.basic_get(
                args.queue, auto_ack=args.ack_mode == "auto"
            )
            if method is None:
                break
            ctx.write_message(method, properties, body or b"", args.format)
            _settle(channel, method.delivery_tag, args.ack_mode)
            fetched += 1
    if not fetched:
        ctx.err.write(f"amqp-core: queue {args.queue!r} is empty\n")
    return EXIT_OK


# ---------------------------------------------------------------- topology


def _queue_arguments(args: argparse.Namespace) -> dict[str, Any] | None:
    arguments = parse_table("--arg", args.argument_items or []) or {}
    shortcuts = {
        "x-queue-type": args.queue_type,
        "x-message-ttl": args.message_ttl,
        "x-max-length": args.max_length,
        "x-dead-letter-exchange": args.dead_letter_exchange,
    }
    for key, value in shortcuts.items():
        if value is not None:
            arguments[key] = value
    return arguments or None


def declare_queue(ctx: Context) -> int:
    """``declare queue``: declare (or check) a queue and print its counts."""
    args = ctx.args
    arguments = _queue_arguments(args)
    ctx.parameters()
    with ctx.connect() as connection:
        reply = connection.channel().queue_declare(
            args.name, passive=args.passive, durable=args.durable, exclusive=args.exclusive,
            auto_delete=args.auto_delete, arguments=arguments,
        ).method
    ctx.out.write(
        f"queue {reply.queue!r}: {reply.message_count} message(s), "
        f"{reply.consumer_count} consumer(s)\n"
    )
    return EXIT_OK


def declare_exchange(ctx: Context) -> int:
    """``declare exchange``: declare (or check) an exchange."""
    args = ctx.args
    _require_name(args.name, "exchange")
    arguments = parse_table("--arg", args.argument_items or [])
    ctx.parameters()
    with ctx.connect() as connection:
        connection.channel().exchange_declare(
            args.name, args.type, passive=args.passive, durable=args.durable,
            auto_delete=args.auto_delete, internal=args.internal, arguments=arguments,
        )
    verb = "exists" if args.passive else "declared"
    ctx.out.write(f"exchange {args.name!r} ({args.type}) {verb}\n")
    return EXIT_OK


def delete_queue(ctx: Context) -> int:
    """``delete queue``: delete a queue and print how many messages went with it."""
    args = ctx.args
    _require_name(args.name, "queue")
    ctx.parameters()
    with ctx.connect() as connection:
        reply = connection.channel().queue_delete(
            args.name, if_unused=args.if_unused, if_empty=args.if_empty
        ).method
    ctx.out.write(f"queue {args.name!r} deleted ({reply.message_count} message(s))\n")
    return EXIT_OK


def delete_exchange(ctx: Context) -> int:
    """``delete exchange``: delete an exchange."""
    args = ctx.args
    _require_name(args.name, "exchange")
    ctx.parameters()
    with ctx.connect() as connection:
        connection.channel().exchange_delete(args.name, if_unused=args.if_unused)
    ctx.out.write(f"exchange {args.name!r} deleted\n")
    return EXIT_OK


def purge(ctx: Context) -> int:
    """``purge``: remove the ready messages of a queue."""
    args = ctx.args
    _require_name(args.name, "queue")
    ctx.parameters()
    with ctx.connect() as connection:
        reply = connection.channel().queue_purge(args.name).method
    ctx.out.write(f"queue {args.name!r} purged ({reply.message_count} message(s))\n")
    return EXIT_OK


def _binding(ctx: Context, bind: bool) -> int:
    args = ctx.args
    to_queue = args.kind == "queue"
    _require_name(args.destination, "queue" if to_queue else "destination exchange")
    _require_name(args.source, "exchange" if to_queue else "source exchange")
    arguments = parse_table("--arg", args.argument_items or [])
    routing_key: str | None = args.routing_key
    if routing_key is None:
        routing_key = args.destination if to_queue else ""
    ctx.parameters()
    with ctx.connect() as connection:
        channel = connection.channel()
        if to_queue and bind:
            channel.queue_bind(args.destination, args.source, routing_key, arguments)
        elif to_queue:
            channel.queue_unbind(args.destination, args.source, routing_key, arguments)
        elif bind:
            channel.exchange_bind(args.destination, args.source, routing_key, arguments)
        else:
            channel.exchange_unbind(args.destination, args.source, routing_key, arguments)
    kind = "queue" if to_queue else "exchange"
    verb = "bound to" if bind else "unbound from"
    ctx.out.write(
        f"{kind} {args.destination!r} {verb} exchange {args.source!r} with routing key "
        f"{routing_key!r}\n"
    )
    return EXIT_OK


def bind(ctx: Context) -> int:
    """``bind queue|exchange``: add a binding."""
    return _binding(ctx, True)


def unbind(ctx: Context) -> int:
    """``unbind queue|exchange``: remove a binding."""
    return _binding(ctx, False)


# ---------------------------------------------------------------- adapters


#: The modules whose versions describe an adapter's loop (the first one is the loop itself,
#: the others alternatives reported when installed).  Unknown adapters: the top-level module
#: of their ``native_loop``.
_LOOP_MODULES = {
    "asyncio": ("asyncio", "uvloop"),
    "tornado": ("tornado",),
    "twisted": ("twisted",),
    "gevent": ("gevent",),
    "select": ("amqp_core",),
    "blocking": (),
}


def _module_version(module: str) -> str | None:
    if module in sys.stdlib_module_names:
        return f"Python {platform.python_version()}"
    try:
        return f"{module} {importlib.metadata.version(module)}"
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _loop_versions(adapter: str, native_loop: str) -> str:
    modules = _LOOP_MODULES.get(adapter)
    if modules is None:
        modules = (native_loop.split(".", 1)[0].split(" ", 1)[0],)
    parts: list[str] = []
    for index, module in enumerate(modules):
        if index and (not module.isidentifier() or importlib.util.find_spec(module) is None):
            continue
        found = _module_version(module) if module.isidentifier() else None
        if found and index:
            found += " (usable)"
        parts.append(found or "-")
    return ", ".join(parts) or "-"


def _adapter_rows(verify: bool) -> Iterator[dict[str, Any]]:
    for info in installed_adapters():
        row: dict[str, Any] = {
            "name": info.name, "distribution": info.distribution, "version": info.version,
            "entry_point": info.entry_point, "native_loop": None, "loop_version": None,
            "status": "ok",
        }
        try:
            description = get_adapter(info.name)
            row["native_loop"] = description.native_loop
            row["loop_version"] = _loop_versions(info.name, description.native_loop)
            row["connection_class"] = description.connection_class_path
            if verify:
                get_connection_class(info.name)
                row["status"] = "ok (imported)"
        except AdapterLoadError as error:
            row["status"] = f"broken: {error.reason}"
        yield row


def adapters(ctx: Context) -> int:
    """``adapters``: what is installed, from which distribution, on which loop."""
    rows = list(_adapter_rows(ctx.args.verify))
    if ctx.args.format == "json":
        ctx.out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    table = [
        [row["name"], f"{row['distribution'] or '-'} {row['version'] or ''}".strip(),
         row["native_loop"] or "-", row["loop_version"] or "-", row["status"]]
        for row in rows
    ]
    header = ["adapter", "distribution", "loop", "loop version", "status"]
    ctx.out.write(format_table(header, table, align="lllll") + "\n")
    return EXIT_OK


# ---------------------------------------------------------------- check


def _name_of(entries: Any) -> str:
    """``getpeercert()``'s subject/issuer (a tuple of RDNs) as ``CN=x, O=y``."""
    parts = []
    for rdn in entries or ():
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O",
                     "organizationalUnitName": "OU", "countryName": "C",
                     "localityName": "L", "stateOrProvinceName": "ST"}.get(key, key)
            parts.append(f"{short}={value}")
    return ", ".join(parts)


def _tls_record(info: dict[str, Any] | None) -> dict[str, Any] | None:
    if info is None:
        return None
    cipher = info.get("cipher") or (None, None, None)
    cert = info.get("peer_certificate") or {}
    record: dict[str, Any] = {"version": info.get("version"), "cipher": cipher[0],
                              "cipher_bits": cipher[2]}
    if cert:
        record["peer_subject"] = _name_of(cert.get("subject"))
        record["peer_issuer"] = _name_of(cert.get("issuer"))
        record["peer_not_after"] = cert.get("notAfter")
        record["peer_alt_names"] = [f"{kind}:{value}" for kind, value in
                                    cert.get("subjectAltName", ())]
    else:
        record["peer_subject"] = None
    return record


def check(ctx: Context) -> int:
    """``check``: connect, report what the broker offers and what was negotiated."""
    params = ctx.parameters()
    started = time.perf_counter()
    with ctx.connect() as connection:
        elapsed = time.perf_counter() - started
        properties = dict(connection.server_properties)
        capabilities = dict(connection.server_capabilities)
        limits = {"channel_max": connection.channel_max, "frame_max": connection.frame_max,
                  "heartbeat": connection.heartbeat}
        tls = _tls_record(connection.tls_info)
    properties.pop("capabilities", None)
    user = getattr(params.credentials, "username", None)
    mechanism = getattr(params.credentials, "TYPE", None)
    report: dict[str, Any] = {
        "broker": ctx.target, "virtual_host": params.virtual_host, "user": user,
        "auth_mechanism": mechanism,
        "connect_seconds": round(elapsed, 6), "server_properties": properties,
        "capabilities": capabilities, "negotiated": limits, "tls": tls,
    }
    if ctx.args.format == "json":
        ctx.out.write(json.dumps(report, indent=2, default=json_default) + "\n")
        return EXIT_OK
    write = ctx.out.write
    product = f"{properties.get('product', '?')} {properties.get('version', '?')}"
    login = f"user {user!r}" if user is not None else f"{mechanism} login"
    write(f"connected to {ctx.target} (vhost {params.virtual_host!r}, {login}) "
          f"in {elapsed * 1000:.1f} ms: {product}\n")
    write("server properties:\n")
    for key in sorted(properties):
        value = properties[key]
        shown = value if isinstance(value, str | int | float) else json_default(value)
        write(f"  {key}: {shown}\n")
    write("capabilities:\n")
    for key in sorted(capabilities):
        write(f"  {key}: {'yes' if capabilities[key] else 'no'}\n")
    write("negotiated:\n")
    heartbeat = limits.get("heartbeat", 0)
    write(f"  channel_max: {limits.get('channel_max')}\n")
    write(f"  frame_max: {limits.get('frame_max')} bytes\n")
    write(f"  heartbeat: {f'{heartbeat} s' if heartbeat else 'off'}\n")
    if tls is None:
        write("tls: no (plain TCP)\n")
    else:
        write("tls:\n")
        write(f"  version: {tls['version']}\n")
        write(f"  cipher: {tls['cipher']} ({tls['cipher_bits']} bits)\n")
        if tls["peer_subject"] is None:
            write("  peer certificate: not verified (no details)\n")
        else:
            write(f"  peer subject: {tls['peer_subject']}\n")
            write(f"  peer issuer: {tls['peer_issuer']}\n")
            write(f"  peer not after: {tls['peer_not_after']}\n")
            if tls["peer_alt_names"]:
                write(f"  peer alt names: {', '.join(tls['peer_alt_names'])}\n")
    return EXIT_OK


#: Handler of each leaf command (the parser's ``command`` value).
COMMANDS = {
    "publish": publish,
    "consume": consume,
    "get": get,
    "declare_queue": declare_queue,
    "declare_exchange": declare_exchange,
    "delete_queue": delete_queue,
    "delete_exchange": delete_exchange,
    "purge": purge,
    "bind_queue": bind,
    "bind_exchange": bind,
    "unbind_queue": unbind,
    "unbind_exchange": unbind,
    "adapters": adapters,
    "check": check,
}
