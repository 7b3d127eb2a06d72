"""A scripted AMQP 0-9-1 peer on 127.0.0.1: protocol scenarios without RabbitMQ.

Theory of operation
-------------------
:class:`ScriptedPeer` listens on ``127.0.0.1`` (a free port) and serves each
client connection in a thread of its own (:class:`PeerConnection`).  It speaks
the broker's side with amqp_core's own codec (``protocol.frames`` and the
``spec`` classes), so a test exercises the real adapter's stream, driver and
timers against bytes that are known to be right -- or deliberately wrong.

Each connection thread runs a ``selectors`` loop over its client socket and a
wake-up socketpair: bytes from the client are parsed into frames and handled
(handshake, then a tiny in-memory broker: channels, queues on the default
exchange, consumers, ``basic.get``, publisher confirms, mandatory returns,
acks, closing); replies and anything a test asks for go into an outbound
buffer written when the socket is writable, so the peer never blocks on a
client that is not reading.  A test talks to the thread only through
:meth:`PeerConnection.post` (run a function on the peer's thread) and the
recorded state, read under a lock; :meth:`PeerConnection.go_silent` stops all
replies and heartbeats, :meth:`PeerConnection.drop` resets the connection.

Everything is bounded: sockets are closed by :meth:`ScriptedPeer.close`, every
thread is joined with a timeout, and every connection gives up after
``lifetime`` seconds.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import spec
from ..amqp_object import Method
from ..protocol.frames import (
    FRAME_END,
    FRAME_HEADER,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    encode_content,
    encode_method_frame,
)

__all__ = ["PeerConnection", "Received", "ScriptedPeer", "raw_frame"]

_READ_SIZE = 256 * 1024


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = FRAME_END) -> bytes:
    """Any frame, valid or not (``end`` other than ``b"\\xce"`` makes it malformed)."""
    return FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + end


@dataclass
class Received:
    """One thing the client sent: a method, a whole message (method + content) or a heartbeat."""

    kind: str  # "method" | "message" | "heartbeat"
    channel: int = 0
    method: Any = None
    properties: Any = None
    body: bytes = b""
    #: when the peer parsed it (``time.monotonic()``)
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Content:
    channel: int
    method: Any
    properties: Any = None
    size: int = -1
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class PeerConnection:
    """The broker side of one client connection (runs in its own thread).

    :param peer: the server it belongs to
    :param sock: the accepted socket
    """

    def __init__(self, peer: ScriptedPeer, sock: socket.socket) -> None:
        self.peer = peer
        self._sock = sock
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._out = bytearray()
        self._commands: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._reader = FrameReader(1 << 30)
        self._header_done = False
        self._content: _Content | None = None
        self._silent = False
        self._closed = threading.Event()
        self._closing = False
        self._confirming: dict[int, int] = {}  # channel -> last publish sequence number
        self._delivery_tags: dict[int, int] = {}
        self._consumers: dict[str, tuple[int, str]] = {}  # tag -> (channel, queue)
        self._tag_counter = 0
        #: Client properties of Connection.StartOk.
        self.client_properties: dict[str, Any] = {}
        #: The error that ended the connection thread, if any.
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="amqp-kit-peer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what was received

    def received(self) -> list[Received]:
        """Everything received so far (a copy)."""
        with self._lock:
            return list(self._received)

    def methods(self, kind: type | None = None) -> list[tuple[int, Any]]:
        """``(channel, method)`` of the methods received (not messages), of ``kind`` if given."""
        return [(r.channel, r.method) for r in self.received()
                if r.kind == "method" and (kind is None or isinstance(r.method, kind))]

    def messages(self) -> list[Received]:
        """The published messages received, in order."""
        return [r for r in self.received() if r.kind == "message"]

    def count(self, kind: type) -> int:
        """How many methods of ``kind`` were received."""
        return len(self.methods(kind))

    @property
    def heartbeats(self) -> int:
        """How many heartbeat frames the client sent."""
        return sum(1 for r in self.received() if r.kind == "heartbeat")

    @property
    def is_closed(self) -> bool:
        """Whether the socket is closed (by either side)."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Block up to ``timeout`` seconds for the socket to close (only while the client's
        loop runs elsewhere; from the loop's thread, poll :attr:`is_closed` instead)."""
        return self._closed.wait(timeout)

    # ------------------------------------------------------------ actions (any thread)

    def post(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the peer's thread soon."""
        with self._lock:
            self._commands.append(action)
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        """Send raw bytes to the client."""
        self.post(lambda: self._write(data))

    def send_method(self, channel: int, method: Method) -> None:
        """Send one method frame."""
        self.send(encode_method_frame(channel, method))

    def deliver(self, channel: int, consumer_tag: str, body: bytes,
                properties: spec.BasicProperties | None = None) -> None:
        """Send a Basic.Deliver with content to the client (next delivery tag of ``channel``)."""
        self.post(lambda: self._deliver(channel, consumer_tag, "", "kit", body, properties))

    def close_connection(self, reply_code: int = 320,
                         reply_text: str = "CONNECTION_FORCED") -> None:
        """Close the connection from the broker's side (Connection.Close; the socket closes on
        the client's CloseOk)."""
        self.send_method(0, spec.Connection.Close(reply_code=reply_code, reply_text=reply_text,
                                                  class_id=0, method_id=0))

    def go_silent(self) -> None:
        """Stop replying and stop sending heartbeats (keep reading): a hung broker."""
        self._silent = True

    def drop(self) -> None:
        """Reset the TCP connection at once (no AMQP close)."""
        self.post(self._abort)

    def join(self, timeout: float = 5.0) -> None:
        """Close the socket and wait for the thread (bounded)."""
        self.post(self._abort)
        self._thread.join(timeout)

    # ------------------------------------------------------------ the thread

    def _serve(self) -> None:
        sock = self._sock
        selector = selectors.DefaultSelector()
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._wake_r.setblocking(False)
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(sock, selectors.EVENT_READ)
            end = time.monotonic() + self.peer.lifetime
            next_beat = time.monotonic() + self.peer.heartbeat / 2 if self.peer.heartbeat else None
            writing = False
            while not self._closed.is_set():
                now = time.monotonic()
                if now > end:
                    break
                timeout = 0.05 if next_beat is None else max(0.0, min(0.05, next_beat - now))
                for key, mask in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        try:
                            self._wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                        continue
                    if mask & selectors.EVENT_READ:
                        self._on_readable()
                    if mask & selectors.EVENT_WRITE and not self._closed.is_set():
                        self._flush()
                with self._lock:
                    commands, self._commands = self._commands, []
                for command in commands:
                    if not self._closed.is_set():
                        command()
                if next_beat is not None and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.peer.heartbeat / 2
                    if self.peer.send_heartbeats and not self._silent and self._header_done:
                        self._write(HEARTBEAT_FRAME)
                if self._closed.is_set():
                    break
                self._flush()
                want_write = bool(self._out)
                if want_write != writing:
                    writing = want_write
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    selector.modify(sock, events)
        except BaseException as error:  # recorded for the test, never raised in the thread
            self.error = error
        finally:
            selector.close()
            self._closed.set()
            sock.close()
            self._wake_r.close()
            self._wake_w.close()

    def _abort(self) -> None:
        if self._closed.is_set():
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._closed.set()

    def _finish(self) -> None:
        """Close after what is buffered has been sent (bounded by the socket's state)."""
        self._closing = True
        self._flush()
        if not self._out:
            self._closed.set()

    def _write(self, data: bytes) -> None:
        if not self._closed.is_set():
            self._out += data
            self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._out.clear()
                self._closed.set()
                return
            del self._out[:sent]
        if self._closing:
            self._closed.set()

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._closed.set()
            return
        if not data:
            self._closed.set()
            return
        reader = self._reader
        reader.feed(data)
        if not self._header_done:
            header = reader.take(8)
            if header is None:
                return
            if header != PROTOCOL_HEADER:
                self._write(PROTOCOL_HEADER)
                self._finish()
                return
            self._header_done = True
            if self.peer.greeting is not None:  # not a broker: garbage, then silence
                self._silent = True
                self._write(self.peer.greeting)
                return
            self._reply(0, spec.Connection.Start(
                version_major=0, version_minor=9,
                server_properties={"product": "amqp_core.testing.peer",
                                   "capabilities": self.peer.capabilities},
                mechanisms=self.peer.mechanisms, locales="en_US"))
        while not self._closed.is_set():
            frame = reader.next_frame()
            if frame is None:
                return
            self._on_frame(*frame)

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)

    def _reply(self, channel: int, method: Method) -> None:
        if not self._silent:
            self._write(encode_method_frame(channel, method))

    # ------------------------------------------------------------ the tiny broker

    def _on_frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        if frame_type == spec.FRAME_HEARTBEAT:
            self._record(Received("heartbeat", channel))
            return
        if frame_type == spec.FRAME_METHOD:
            class_id, method_id = struct.unpack_from(">HH", payload)
            method_class = spec.methods[(class_id << 16) | method_id]
            method = object.__new__(method_class).decode(payload, 4)
            if isinstance(method, spec.Basic.Publish):
                self._content = _Content(channel, method)
                return
            self._record(Received("method", channel, method))
            self._on_method(channel, method)
            return
        content = self._content
        if content is None or content.channel != channel:
            raise AssertionError(f"unexpected frame type {frame_type} on channel {channel}")
        if frame_type == spec.FRAME_HEADER:
            (content.size,) = struct.unpack_from(">Q", payload, 4)
            content.properties = spec.BasicProperties().decode(payload, 12)
        else:
            content.parts.append(bytes(payload))
            content.received += len(payload)
        if content.size >= 0 and content.received >= content.size:
            self._content = None
            message = Received("message", channel, content.method, content.properties,
                               b"".join(content.parts))
            self._record(message)
            self._on_publish(message)

    def _on_method(self, channel: int, method: Any) -> None:
        peer = self.peer
        if isinstance(method, spec.Connection.StartOk):
            self.client_properties = dict(method.client_properties or {})
            if peer.refuse_login:
                self._reply(0, spec.Connection.Close(
                    reply_code=403,
                    reply_text="ACCESS_REFUSED - Login was refused using authentication "
                               "mechanism PLAIN", class_id=0, method_id=0))
                self._finish()
                return
            self._reply(0, spec.Connection.Tune(channel_max=peer.channel_max,
                                                frame_max=peer.frame_max,
                                                heartbeat=peer.heartbeat))
        elif isinstance(method, spec.Connection.Open):
            self._reply(0, spec.Connection.OpenOk())
        elif isinstance(method, spec.Connection.Close):
            self._reply(0, spec.Connection.CloseOk())
            self._finish()
        elif isinstance(method, spec.Connection.CloseOk):
            self._finish()
        elif isinstance(method, spec.Channel.Open):
            self._delivery_tags[channel] = 0
            self._reply(channel, spec.Channel.OpenOk())
        elif isinstance(method, spec.Channel.Close):
            self._reply(channel, spec.Channel.CloseOk())
        elif isinstance(method, spec.Confirm.Select):
            self._confirming[channel] = 0
            if not method.nowait:
                self._reply(channel, spec.Confirm.SelectOk())
        elif isinstance(method, spec.Basic.Qos):
            self._reply(channel, spec.Basic.QosOk())
        elif isinstance(method, spec.Queue.Declare):
            name = method.queue or f"amq.gen-kit-{len(peer.queues)}"
            with peer.lock:
                queue = peer.queues.setdefault(name, [])
                count = len(queue)
            consumers = sum(1 for _c, q in self._consumers.values() if q == name)
            if not method.nowait:
                self._reply(channel, spec.Queue.DeclareOk(queue=name, message_count=count,
                                                          consumer_count=consumers))
        elif isinstance(method, spec.Queue.Delete):
            with peer.lock:
                removed = peer.queues.pop(method.queue, [])
            self._reply(channel, spec.Queue.DeleteOk(message_count=len(removed)))
        elif isinstance(method, spec.Basic.Consume):
            tag = method.consumer_tag or self._new_tag()
            self._consumers[tag] = (channel, method.queue)
            if not method.nowait:
                self._reply(channel, spec.Basic.ConsumeOk(consumer_tag=tag))
            self._drain_queue(method.queue)
        elif isinstance(method, spec.Basic.Cancel):
            self._consumers.pop(method.consumer_tag, None)
            if not method.nowait:
                self._reply(channel, spec.Basic.CancelOk(consumer_tag=method.consumer_tag))
        elif isinstance(method, spec.Basic.Get):
            with peer.lock:
                queue = peer.queues.get(method.queue, [])
                item = queue.pop(0) if queue else None
                left = len(queue)
            if item is None:
                self._reply(channel, spec.Basic.GetEmpty())
            else:
                properties, body = item
                delivery_tag = self._next_delivery_tag(channel)
                self._send_content(channel, spec.Basic.GetOk(
                    delivery_tag=delivery_tag, redelivered=False, exchange="",
                    routing_key=method.queue, message_count=left), body, properties)

    def _on_publish(self, message: Received) -> None:
        method = message.method
        channel = message.channel
        peer = self.peer
        routed = False
        if method.exchange == "":
            with peer.lock:
                queue = peer.queues.get(method.routing_key)
                if queue is not None:
                    queue.append((message.properties, message.body))
                    routed = True
        if not routed and method.mandatory:
            self._send_content(channel, spec.Basic.Return(
                reply_code=312, reply_text="NO_ROUTE", exchange=method.exchange,
                routing_key=method.routing_key), message.body, message.properties)
        if channel in self._confirming:
            sequence = self._confirming[channel] + 1
            self._confirming[channel] = sequence
            if sequence in peer.nack_sequence_numbers:
                self._reply(channel, spec.Basic.Nack(delivery_tag=sequence, multiple=False,
                                                     requeue=False))
            elif peer.auto_confirm:
                self._reply(channel, spec.Basic.Ack(delivery_tag=sequence, multiple=False))
        if routed:
            self._drain_queue(method.routing_key)

    def _drain_queue(self, name: str) -> None:
        consumers = [(tag, ch) for tag, (ch, q) in self._consumers.items() if q == name]
        if not consumers:
            return
        with self.peer.lock:
            queue = self.peer.queues.get(name, [])
            items, queue[:] = list(queue), []
        for index, (properties, body) in enumerate(items):
            tag, channel = consumers[index % len(consumers)]
            self._deliver(channel, tag, "", name, body, properties)

    def _deliver(self, channel: int, consumer_tag: str, exchange: str, routing_key: str,
                 body: bytes, properties: Any) -> None:
        tag = self._next_delivery_tag(channel)
        self._send_content(channel, spec.Basic.Deliver(
            consumer_tag=consumer_tag, delivery_tag=tag, redelivered=False, exchange=exchange,
            routing_key=routing_key), body, properties)

    def _send_content(self, channel: int, method: Method, body: bytes, properties: Any) -> None:
        if self._silent:
            return
        props = properties if properties is not None else spec.BasicProperties()
        pieces = encode_content(channel, 60, b"".join(props.encode()), body, self.peer.frame_max)
        self._write(encode_method_frame(channel, method) + b"".join(bytes(p) for p in pieces))

    def _next_delivery_tag(self, channel: int) -> int:
        tag = self._delivery_tags.get(channel, 0) + 1
        self._delivery_tags[channel] = tag
        return tag

    def _new_tag(self) -> str:
        self._tag_counter += 1
        return f"amq.ctag-kit-{self._tag_counter}"


class ScriptedPeer:
    """A scripted broker on 127.0.0.1 (use it as a context manager, or call :meth:`close`).

    :param heartbeat: heartbeat interval proposed in Connection.Tune (0: off)
    :param frame_max: frame_max proposed in Connection.Tune
    :param channel_max: channel_max proposed in Connection.Tune
    :param send_heartbeats: send heartbeats every ``heartbeat / 2`` seconds while not silent
    :param auto_confirm: ack every publish on a channel in confirm mode
    :param nack_sequence_numbers: publish sequence numbers to nack instead
    :param refuse_login: answer Connection.StartOk with Connection.Close 403, as RabbitMQ does
        for a wrong password
    :param lifetime: seconds after which each connection thread gives up
    :param greeting: bytes to answer the protocol header with instead of Connection.Start (an
        HTTP reply, random bytes, a malformed Start); the peer then stays connected and silent
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        heartbeat: int = 0,
        frame_max: int = spec.FRAME_MAX_SIZE,
        channel_max: int = 2047,
        send_heartbeats: bool = True,
        auto_confirm: bool = True,
        nack_sequence_numbers: frozenset[int] = frozenset(),
        refuse_login: bool = False,
        lifetime: float = 60.0,
        greeting: bytes | None = None,
    ) -> None:
        for name, value in (("heartbeat", heartbeat), ("frame_max", frame_max),
                            ("channel_max", channel_max)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, not {value!r}")
        self.heartbeat = heartbeat
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.send_heartbeats = send_heartbeats
        self.auto_confirm = auto_confirm
        self.nack_sequence_numbers = frozenset(nack_sequence_numbers)
        self.refuse_login = refuse_login
        self.lifetime = lifetime
        if greeting is not None and not isinstance(greeting, bytes):
            raise TypeError(f"greeting must be bytes or None, not {type(greeting).__name__}")
        self.greeting = greeting
        self.mechanisms = "PLAIN AMQPLAIN"
        self.capabilities: dict[str, Any] = {
            "publisher_confirms": True, "basic.nack": True, "consumer_cancel_notify": True,
            "connection.blocked": True, "authentication_failure_close": True,
        }
        #: The in-memory queues of the default exchange, shared by all connections.
        self.queues: dict[str, list[tuple[Any, bytes]]] = {}
        self.lock = threading.Lock()
        #: The client connections accepted so far, in order.
        self.connections: list[PeerConnection] = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        #: The port it listens on.
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="amqp-kit-peer-accept",
                                        daemon=True)
        self._thread.start()

    def parameters(self, **overrides: Any) -> Any:
        """Connection parameters for this peer (guest/guest, no retries), with overrides."""
        from ..credentials import PlainCredentials
        from ..parameters import ConnectionParameters

        settings: dict[str, Any] = {
            "host": self.host, "port": self.port,
            "credentials": PlainCredentials("guest", "guest"),
            "connection_attempts": 1, "socket_timeout": 5.0, "stack_timeout": 10.0,
        }
        settings.update(overrides)
        return ConnectionParameters(**settings)

    def connection(self, index: int = 0) -> PeerConnection | None:
        """The ``index``-th accepted connection, or None if not accepted yet."""
        with self.lock:
            return self.connections[index] if len(self.connections) > index else None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections.append(PeerConnection(self, sock))

    def close(self) -> None:
        """Stop accepting, reset every connection and join the threads (bounded)."""
        self._stop.set()
        self._thread.join(5.0)
        self._listener.close()
        for connection in list(self.connections):
            connection.join(5.0)

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ScriptedPeer 127.0.0.1:{self.port} connections={len(self.connections)}>"
