"""Tests for streams over fd watching (amqp_core.io.fd_streams) on the select loop.

Every peer is a loopback server written here, run in a thread with socket
timeouts; every loop run is bounded by a guard timer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from amqp_core.adapters._select_ioloop import IOLoop, SelectEventLoop
from amqp_core.io import fd_streams
from amqp_core.io.contract import StreamTransport

GUARD = 15.0
POLLERS = ["select"] + [n for n in ("poll", "epoll") if hasattr(select, n)]


class Recorder:
    """A StreamProtocol that records every call."""

    def __init__(self, on_lost: Callable[[], None] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.data = bytearray()
        self.transport: StreamTransport | None = None
        self.on_lost = on_lost
        self.in_write = False

    def names(self) -> list[str]:
        return [name for name, _ in self.events if name != "data"]

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport
        self.events.append(("made", transport))

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.events or self.events[-1][0] != "data":
            self.events.append(("data", None))

    def eof_received(self) -> bool | None:
        self.events.append(("eof", None))
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        assert not self.in_write, "connection_lost called from inside write()"
        self.events.append(("lost", exc))
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        self.events.append(("pause", None))

    def resume_writing(self) -> None:
        self.events.append(("resume", None))


class Server:
    """A one-connection loopback server running ``handler(conn)`` in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(GUARD)
        self.address = self.listener.getsockname()
        self.handler = handler
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with conn:
            conn.settimeout(GUARD)
            try:
                self.handler(conn)
            except BaseException as exc:
                self.error = exc

    def join(self) -> None:
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "server thread did not finish"
        self.listener.close()
        if self.error is not None:
            raise self.error


@pytest.fixture(params=POLLERS)
def loop(request: pytest.FixtureRequest) -> Iterator[SelectEventLoop]:
    ev = SelectEventLoop(IOLoop(request.param))
    yield ev
    ev.close()


def run(loop: SelectEventLoop, until: Callable[[], bool], timeout: float = GUARD) -> None:
    """Run the loop until ``until()`` holds (checked every turn via a 5 ms ticker)."""
    deadline = time.monotonic() + timeout
    timed_out: list[bool] = []

    def tick() -> None:
        if until():
            loop.ioloop.stop()
        elif time.monotonic() > deadline:
            timed_out.append(True)
            loop.ioloop.stop()
        else:
            loop.call_later(0.005, tick)

    loop.call_soon(tick)
    loop.run_until_stopped()
    assert not timed_out, "timed out waiting for the stream"


def settle(loop: SelectEventLoop, seconds: float = 0.05) -> None:
    """Run the loop for a little while (lets anything scheduled happen)."""
    loop.call_later(seconds, loop.ioloop.stop)
    loop.run_until_stopped()


def connect(
    loop: SelectEventLoop,
    address: tuple[str, int],
    protocol: Recorder,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> list[object]:
    results: list[object] = []
    loop.connect_stream(address, socket.AF_INET, protocol, ssl_context, server_hostname,
                        results.append)
    return results


def recv_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- basics


def test_connect_receive_eof_lost_in_order_exactly_once(loop: SelectEventLoop) -> None:
    def handler(conn: socket.socket) -> None:
        assert conn.recv(5) == b"hello"
        conn.sendall(b"world" * 1000)
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(10) == b""

    server = Server(handler)
    proto = Recorder()
    results = connect(loop, server.address, proto)
    assert results == [] and proto.events == []  # nothing happens inside connect_stream
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    assert proto.events == [("made", transport)]
    sock = transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    transport.write(b"hello")
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert proto.names() == ["made", "eof", "lost"]
    assert proto.events[1][0] == "data"
    assert proto.events[-1] == ("lost", None)
    assert bytes(proto.data) == b"world" * 1000
    assert transport.get_extra_info("peername") == server.address
    assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
    assert transport.get_extra_info("ssl_object") is None
    assert transport.get_extra_info("nope", 7) == 7
    assert transport.is_closing()
    assert sock.fileno() == -1  # closed after connection_lost


def test_connection_refused_goes_to_on_done(loop: SelectEventLoop) -> None:
    proto = Recorder()
    results = connect(loop, ("127.0.0.1", free_port()), proto)
    run(loop, lambda: bool(results))
    assert len(results) == 1 and isinstance(results[0], ConnectionRefusedError)
    assert proto.events == []


def test_peer_reset_is_connection_lost_with_the_error(loop: SelectEventLoop) -> None:
    def handler(conn: socket.socket) -> None:
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    server = Server(handler)
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    transport.write(b"x")
    run(loop, lambda: not server.thread.is_alive())
    server.join()
    run(loop, lambda: "lost" in proto.names())
    # keep writing into the dead socket: never re-entrant, lost only once
    proto.in_write = True
    for _ in range(3):
        transport.write(b"y" * 100)
    proto.in_write = False
    settle(loop)
    assert proto.names() == ["made", "lost"]
    assert isinstance(proto.events[-1][1], ConnectionResetError)


def test_write_error_reports_through_the_loop_not_inside_write(loop: SelectEventLoop) -> None:
    connected = threading.Event()

    def handler(conn: socket.socket) -> None:
        assert connected.wait(GUARD)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    server = Server(handler)
    proto = Recorder()
    proto_reads = False
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    connected.set()
    server.join()
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    time.sleep(0.05)  # let the RST arrive
    proto.in_write = True
    transport.write(b"z" * (1 << 17))  # a large write is sent at once: EPIPE/ECONNRESET
    transport.write(b"z")
    proto.in_write = proto_reads
    run(loop, lambda: "lost" in proto.names())
    assert proto.names() == ["made", "lost"]
    assert isinstance(proto.events[-1][1], ConnectionError)


def test_16_mib_write_arrives_intact(loop: SelectEventLoop) -> None:
    payload = os.urandom(16 << 20)
    received: list[bytes] = []
    server = Server(lambda conn: received.append(recv_all(conn)))
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    transport.write(payload[:100])  # a small one first is queued; the big one goes behind it
    transport.write(memoryview(payload)[100:200])
    transport.write(payload[200:])
    assert transport.get_write_buffer_size() == len(payload)
    transport.close()
    transport.write(b"dropped after close")
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert proto.names() == ["made", "pause", "resume", "lost"]
    assert proto.events[-1] == ("lost", None)
    assert len(received[0]) == len(payload)
    assert hashlib.sha256(received[0]).digest() == hashlib.sha256(payload).digest()


def test_large_write_with_nothing_queued_goes_out_at_once(loop: SelectEventLoop) -> None:
    payload = os.urandom(8 << 20)
    received: list[bytes] = []
    server = Server(lambda conn: received.append(recv_all(conn)))
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    transport.write(payload)
    assert transport.get_write_buffer_size() < len(payload)  # the kernel took some
    transport.close()
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert received[0] == payload


def test_many_small_writes_are_coalesced_and_arrive_in_order(loop: SelectEventLoop) -> None:
    frames = [b"%08d" % i for i in range(100_000)]
    received: list[bytes] = []
    server = Server(lambda conn: received.append(recv_all(conn)))
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    for frame in frames:
        transport.write(frame)
    assert transport.get_write_buffer_size() == 800_000
    transport.close()
    transport.close()
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert proto.names() == ["made", "lost"]  # closed by us: no eof
    assert received[0] == b"".join(frames)


# ---------------------------------------------------------------- flow control, close, abort


def _stalled_server() -> tuple[Server, threading.Event, list[int]]:
    """A server that reads nothing until the event is set, then counts everything."""
    go = threading.Event()
    counted: list[int] = []

    def handler(conn: socket.socket) -> None:
        assert go.wait(GUARD)
        total = 0
        try:
            while chunk := conn.recv(1 << 20):
                total += len(chunk)
        except ConnectionResetError:
            total = -total - 1  # marks "reset"
        counted.append(total)

    return Server(handler), go, counted


def test_pause_and_resume_writing_when_the_peer_does_not_read(loop: SelectEventLoop) -> None:
    server, go, counted = _stalled_server()
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    assert transport.get_write_buffer_limits() == (1 << 20, 4 << 20)
    chunk = b"p" * (256 << 10)
    written = [0]

    def feed() -> None:  # one chunk per loop turn, until paused (bounded at 512 MiB)
        if "pause" in proto.names() or written[0] > (512 << 20):
            return
        transport.write(chunk)
        written[0] += len(chunk)
        loop.call_soon(feed)

    feed()
    run(loop, lambda: "pause" in proto.names() or written[0] > (512 << 20))
    assert proto.names() == ["made", "pause"]
    assert transport.get_write_buffer_size() > 4 << 20
    go.set()
    run(loop, lambda: "resume" in proto.names())
    assert transport.get_write_buffer_size() <= 1 << 20
    transport.close()
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert proto.names() == ["made", "pause", "resume", "lost"]
    assert counted == [written[0]]


def test_set_write_buffer_limits(loop: SelectEventLoop) -> None:
    server, go, counted = _stalled_server()
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    with pytest.raises(ValueError, match="low"):
        transport.set_write_buffer_limits(high=10, low=20)
    transport.write(b"x" * 1000)
    assert proto.names() == ["made"]
    transport.set_write_buffer_limits(high=100)
    assert transport.get_write_buffer_limits() == (25, 100)
    assert proto.names() == ["made", "pause"]
    go.set()
    run(loop, lambda: "resume" in proto.names())
    transport.close()
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert counted == [1000]


def test_close_flushes_but_abort_drops(loop: SelectEventLoop) -> None:
    # close(): everything buffered reaches a slow reader, then connection_lost(None)
    server, go, counted = _stalled_server()
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    transport.write(b"c" * (32 << 20))
    transport.close()
    loop.call_later(0.1, go.set)
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert counted == [32 << 20]
    assert proto.names() == ["made", "pause", "resume", "lost"]
    assert proto.events[-1] == ("lost", None)

    # abort(): connection_lost(None) on the next turn, the buffer is dropped
    server, go, counted = _stalled_server()
    proto = Recorder()
    results = connect(loop, server.address, proto)
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport)
    transport.write(b"a" * (32 << 20))
    run(loop, lambda: transport.get_write_buffer_size() < (32 << 20))  # kernel is full now
    proto.in_write = True
    transport.abort()
    transport.abort()
    transport.close()
    proto.in_write = False
    assert proto.names() == ["made", "pause"]
    assert transport.get_write_buffer_size() == 0
    run(loop, lambda: "lost" in proto.names())
    go.set()
    server.join()
    assert proto.names() == ["made", "pause", "lost"]
    assert proto.events[-1] == ("lost", None)
    assert counted[0] < (32 << 20)  # less than written (maybe -n-1: the peer saw a reset)


def test_close_from_data_received_and_eof_closes(loop: SelectEventLoop) -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"bye")
        assert recv_all(conn) == b"last words"

    server = Server(handler)

    class Closer(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            assert self.transport is not None
            self.transport.write(b"last words")
            self.transport.close()

    proto = Closer()
    connect(loop, server.address, proto)
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert proto.names() == ["made", "lost"]


# ---------------------------------------------------------------- cancel


def test_cancel_before_connect_completes(loop: SelectEventLoop) -> None:
    seen: list[bytes] = []
    server = Server(lambda conn: seen.append(recv_all(conn)))
    proto = Recorder()
    results: list[object] = []
    handle = loop.connect_stream(server.address, socket.AF_INET, proto, None, None,
                                 results.append)
    handle.cancel()
    handle.cancel()
    server.join()  # the server saw the half-open socket close
    settle(loop)
    assert results == [] and proto.events == [] and seen == [b""]


def test_cancel_of_an_early_failure_calls_nothing(loop: SelectEventLoop) -> None:
    proto = Recorder()
    results: list[object] = []
    handle = loop.connect_stream(("127.0.0.1", 0), socket.AF_INET, proto, None, None,
                                 results.append)
    handle.cancel()
    settle(loop)
    assert results == [] and proto.events == []
    handle = loop.connect_stream(("127.0.0.1", 0), socket.AF_INET, proto, None, None,
                                 results.append)
    run(loop, lambda: bool(results))
    assert isinstance(results[0], OSError)
    handle.cancel()  # after completion: no-op


def test_connect_stream_validation(loop: SelectEventLoop) -> None:
    proto = Recorder()
    with pytest.raises(TypeError, match="sockaddr"):
        loop.connect_stream(["127.0.0.1", 1], socket.AF_INET, proto, None, None,  # type: ignore[arg-type]
                            lambda r: None)
    with pytest.raises(TypeError, match="ssl_context"):
        loop.connect_stream(("127.0.0.1", 1), socket.AF_INET, proto, object(), None,  # type: ignore[arg-type]
                            lambda r: None)
    with pytest.raises(TypeError, match="on_done"):
        loop.connect_stream(("127.0.0.1", 1), socket.AF_INET, proto, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="protocol"):
        loop.connect_stream(("127.0.0.1", 1), socket.AF_INET, object(), None, None,  # type: ignore[arg-type]
                            lambda r: None)
    with pytest.raises(TypeError):
        loop.connect_stream(("127.0.0.1", "port"), socket.AF_INET, proto, None, None,
                            lambda r: None)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the throwaway CA)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def tls_echo_server(server_ctx: ssl.SSLContext, outcome: list[object]) -> Server:
    def handler(conn: socket.socket) -> None:
        try:
            tconn = server_ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            outcome.append(exc)
            return
        with tconn:
            total = 0
            while data := tconn.recv(1 << 16):
                tconn.sendall(data)
                total += len(data)
            outcome.append(total)

    return Server(handler)


def test_tls_echo_with_server_auth_and_hostname(
    loop: SelectEventLoop, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    outcome: list[object] = []
    server = tls_echo_server(server_ctx, outcome)
    proto = Recorder()
    results = connect(loop, server.address, proto, client_ctx, "localhost")
    run(loop, lambda: bool(results))
    transport = results[0]
    assert isinstance(transport, fd_streams.FdStreamTransport), results
    ssl_object = transport.get_extra_info("ssl_object")
    assert ssl_object is not None and ssl_object.version().startswith("TLS")
    assert transport.get_extra_info("peercert")["subjectAltName"]
    payload = os.urandom(6 << 20)  # big enough to fill both directions' buffers
    transport.write(payload)
    run(loop, lambda: len(proto.data) >= len(payload))
    assert bytes(proto.data) == payload
    transport.close()
    run(loop, lambda: "lost" in proto.names())
    server.join()
    assert outcome == [len(payload)]
    assert proto.names()[0] == "made" and proto.names()[-1] == "lost"
    assert proto.events[-1] == ("lost", None)


def test_tls_untrusted_server_fails_in_on_done(
    loop: SelectEventLoop, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, _ = tls
    outcome: list[object] = []
    server = tls_echo_server(server_ctx, outcome)
    proto = Recorder()
    results = connect(loop, server.address, proto, ssl.create_default_context(), "localhost")
    run(loop, lambda: bool(results))
    server.join()
    assert isinstance(results[0], ssl.SSLCertVerificationError)
    assert proto.events == []


def test_tls_hostname_mismatch_fails_in_on_done(
    loop: SelectEventLoop, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    outcome: list[object] = []
    server = tls_echo_server(server_ctx, outcome)
    proto = Recorder()
    results = connect(loop, server.address, proto, client_ctx, "wrong.example")
    run(loop, lambda: bool(results))
    server.join()
    assert isinstance(results[0], ssl.SSLCertVerificationError)
    assert "wrong.example" in str(results[0])
    assert proto.events == []


def test_cancel_during_tls_handshake(
    loop: SelectEventLoop, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    _, client_ctx = tls
    hello: list[bytes] = []

    def handler(conn: socket.socket) -> None:  # takes the ClientHello, never answers
        hello.append(conn.recv(1 << 16))
        hello.append(recv_all(conn))

    server = Server(handler)
    proto = Recorder()
    results: list[object] = []
    handle = loop.connect_stream(server.address, socket.AF_INET, proto, client_ctx,
                                 "localhost", results.append)
    run(loop, lambda: bool(hello))
    handle.cancel()
    server.join()
    settle(loop)
    assert hello[0][:1] == b"\x16" and hello[1] == b""  # handshake record, then closed
    assert results == [] and proto.events == []


# ---------------------------------------------------------------- other loops


def test_fd_streams_work_on_an_asyncio_selector_loop() -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100).upper())

    server = Server(handler)
    aloop = asyncio.SelectorEventLoop()
    try:
        assert isinstance(aloop, fd_streams.FdWatchingLoop)
        done: asyncio.Future[None] = aloop.create_future()
        proto = Recorder(on_lost=lambda: done.set_result(None))
        results: list[object] = []

        def on_done(result: object) -> None:
            results.append(result)
            assert isinstance(result, fd_streams.FdStreamTransport)
            result.write(b"shout")

        fd_streams.connect_stream(aloop, server.address, socket.AF_INET, proto, None, None,
                                  on_done)
        aloop.run_until_complete(asyncio.wait_for(done, GUARD))
    finally:
        aloop.close()
    server.join()
    assert bytes(proto.data) == b"SHOUT"
    assert proto.names() == ["made", "eof", "lost"]
