"""Contract tests of an adapter's streams (``EventLoop.connect_stream``), TLS included.

Theory of operation: each test connects ``amqp_harness.loop`` to a loopback
server of its own (:class:`LoopbackServer`: a thread with blocking sockets,
every call under a socket timeout) and records every call the stream makes on
its protocol (:class:`StreamRecorder`), with the thread it came from and
whether it came from inside ``write()`` / ``close()`` / ``abort()``.  The
rules checked are the contract's: ``connection_made`` once and before
``on_done(transport)``, then data, ``eof_received`` at most once (exactly once
when the peer ends the stream), ``connection_lost`` exactly once and last,
everything on the loop's thread and never synchronously inside the call that
caused it.  Import them with::

    from amqp_core.testing.stream_tests import *
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest

from .harness import LoopHarness

__all__ = [
    "LoopbackServer",
    "StreamRecorder",
    "test_stream_abort_drops_the_buffer_and_reports_lost_once",
    "test_stream_cancelled_connect_calls_nothing",
    "test_stream_close_flushes_then_reports_lost_once",
    "test_stream_connect_receive_end_lost_exactly_once_in_order",
    "test_stream_connection_refused_goes_to_on_done",
    "test_stream_peer_reset_reports_lost_once_with_an_error",
    "test_stream_receives_16_mib_intact",
    "test_stream_tls_echo_against_a_throwaway_ca",
    "test_stream_tls_with_the_wrong_hostname_fails_in_on_done",
    "test_stream_writes_16_mib_intact",
]

#: Socket timeout of the loopback servers, in seconds.
GUARD = 15.0
#: Size of the large transfers.
LARGE = 16 << 20


class LoopbackServer:
    """A one-connection server on 127.0.0.1 running ``handler(sock)`` in a thread.

    :param handler: gets the accepted socket (its timeout set to :data:`GUARD`)
    :param ssl_context: wrap the accepted socket for TLS first (server side)
    """

    def __init__(self, handler: Callable[[socket.socket], Any],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(GUARD)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.handler = handler
        self.ssl_context = ssl_context
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="amqp-kit-server", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError as error:
            self.error = error
            return
        finally:
            self.listener.close()
        try:
            sock.settimeout(GUARD)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            with sock:
                self.result = self.handler(sock)
        except BaseException as error:  # reported by join()
            self.error = error

    @property
    def done(self) -> bool:
        """Whether the handler finished."""
        return not self.thread.is_alive()

    def join(self, expect_error: bool = False) -> Any:
        """Wait for the handler (bounded); return its result or raise its error."""
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "the loopback server did not finish"
        if self.error is not None and not expect_error:
            raise self.error
        return self.result


class StreamRecorder:
    """A :class:`~amqp_core.io.contract.StreamProtocol` that records every call.

    :param harness: the harness whose loop thread the calls must come from
    """

    def __init__(self, harness: LoopHarness) -> None:
        self.harness = harness
        self.events: list[tuple[str, Any]] = []
        self.data = bytearray()
        self.transport: Any = None
        self.threads: set[int] = set()
        self.inside_call: str | None = None
        self.problems: list[str] = []
        self.calls_before_on_done: list[str] | None = None

    def names(self) -> list[str]:
        """The calls so far, consecutive ``data`` calls merged into one."""
        names: list[str] = []
        for name, _ in self.events:
            if not (name == "data" and names and names[-1] == "data"):
                names.append(name)
        return names

    def _note(self, name: str, argument: Any = None) -> None:
        self.threads.add(threading.get_ident())
        if self.inside_call is not None and name not in ("pause", "resume"):
            self.problems.append(f"{name} was called from inside {self.inside_call}()")
        if self.events and self.events[-1][0] == "lost":
            self.problems.append(f"{name} was called after connection_lost")
        self.events.append((name, argument))
        self.harness.notify()

    def call(self, name: str, *args: Any) -> Any:
        """Call ``transport.NAME(*args)``, noting callbacks it makes synchronously."""
        self.inside_call = name
        try:
            return getattr(self.transport, name)(*args)
        finally:
            self.inside_call = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._note("made", transport)
        self.harness.add_cleanup(self._abort_if_open)

    def _abort_if_open(self) -> None:
        if "lost" not in self.names():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._note("data", len(data))

    def eof_received(self) -> bool | None:
        self._note("eof")
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._note("lost", exc)

    def pause_writing(self) -> None:
        self._note("pause")

    def resume_writing(self) -> None:
        self._note("resume")

    def check(self) -> None:
        """Assert the calls so far came from the loop thread, in a legal order."""
        assert not self.problems, self.problems
        assert self.threads <= {self.harness.loop_thread_id}, "a call came from another thread"
        names = [n for n in self.names() if n not in ("pause", "resume")]
        assert names.count("made") <= 1 and names.count("eof") <= 1, names
        assert names.count("lost") <= 1, f"connection_lost was called {names.count('lost')} times"
        if names:
            assert names[0] == "made", names
        flow = [n for n in self.names() if n in ("pause", "resume")]
        assert flow == ["pause", "resume"] * (len(flow) // 2) + ["pause"] * (len(flow) % 2), (
            f"pause_writing/resume_writing out of order: {flow}")


def _connect(harness: LoopHarness, address: tuple[str, int], recorder: StreamRecorder,
             ssl_context: ssl.SSLContext | None = None,
             server_hostname: str | None = None) -> tuple[Any, list[Any]]:
    """Start connecting; returns (handle, on_done results)."""
    results: list[Any] = []

    def on_done(result: Any) -> None:
        results.append(result)
        recorder.calls_before_on_done = recorder.names()
        harness.notify()

    handle = harness.loop.connect_stream(address, socket.AF_INET, recorder, ssl_context,
                                         server_hostname, on_done)
    assert results == [] and recorder.events == [], "connect_stream reported inside the call"
    return handle, results


def _open(harness: LoopHarness, address: tuple[str, int], recorder: StreamRecorder,
          ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None) -> Any:
    _handle, results = _connect(harness, address, recorder, ssl_context, server_hostname)
    harness.run_until(lambda: results, GUARD, what="connect_stream's on_done")
    assert len(results) == 1, results
    transport = results[0]
    assert not isinstance(transport, BaseException), f"connect failed: {transport!r}"
    assert recorder.calls_before_on_done == ["made"], (
        f"on_done(transport) came after {recorder.calls_before_on_done}, not after "
        "connection_made alone")
    assert recorder.transport is transport, "on_done got another transport than connection_made"
    return transport


def _wait_lost(harness: LoopHarness, recorder: StreamRecorder) -> None:
    harness.run_until(lambda: "lost" in recorder.names(), GUARD, what="connection_lost")
    harness.run_for(0.05)  # nothing may follow it
    recorder.check()


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- plain TCP


def test_stream_connect_receive_end_lost_exactly_once_in_order(amqp_harness: LoopHarness) -> None:
    def handler(sock: socket.socket) -> bytes:
        got = b""
        while len(got) < 5:
            chunk = sock.recv(5 - len(got))
            if not chunk:
                break
            got += chunk
        sock.sendall(b"world" * 1000)
        sock.shutdown(socket.SHUT_WR)  # end of stream: eof_received, then the client closes
        rest = _recv_all(sock)
        return got + rest

    server = LoopbackServer(handler)
    recorder = StreamRecorder(amqp_harness)
    transport = _open(amqp_harness, server.address, recorder)
    sock = transport.get_extra_info("socket")
    if sock is not None and hasattr(sock, "getsockopt"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), "TCP_NODELAY is not set"
    peer = transport.get_extra_info("peername")
    assert peer is None or tuple(peer)[:2] == server.address
    recorder.call("write", b"hello")
    _wait_lost(amqp_harness, recorder)
    assert server.join() == b"hello"
    assert recorder.names() == ["made", "data", "eof", "lost"], recorder.names()
    assert recorder.events[-1] == ("lost", None), recorder.events[-1]
    assert bytes(recorder.data) == b"world" * 1000


def test_stream_connection_refused_goes_to_on_done(amqp_harness: LoopHarness) -> None:
    recorder = StreamRecorder(amqp_harness)
    _handle, results = _connect(amqp_harness, ("127.0.0.1", _free_port()), recorder)
    amqp_harness.run_until(lambda: results, GUARD, what="on_done of a refused connect")
    amqp_harness.run_for(0.05)
    assert len(results) == 1, f"on_done was called {len(results)} times"
    assert isinstance(results[0], BaseException), f"a refused connect gave {results[0]!r}"
    assert recorder.events == [], "the protocol was called for a refused connect"


def test_stream_cancelled_connect_calls_nothing(amqp_harness: LoopHarness) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # the kernel completes the TCP handshake; nobody accepts
        recorder = StreamRecorder(amqp_harness)
        handle, results = _connect(amqp_harness, listener.getsockname(), recorder)
        handle.cancel()
        handle.cancel()
        amqp_harness.run_for(0.2)
        assert results == [] and recorder.events == [], (results, recorder.events)
        handle.cancel()


def test_stream_peer_reset_reports_lost_once_with_an_error(amqp_harness: LoopHarness) -> None:
    def handler(sock: socket.socket) -> None:
        sock.recv(1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = LoopbackServer(handler)
    recorder = StreamRecorder(amqp_harness)
    _open(amqp_harness, server.address, recorder)
    recorder.call("write", b"x")
    amqp_harness.run_until(lambda: server.done, GUARD, what="the server to reset")
    server.join()
    for _ in range(3):  # writing into a dead stream must not re-enter the protocol
        recorder.call("write", b"y" * 1000)
    _wait_lost(amqp_harness, recorder)
    assert recorder.names()[-1] == "lost"
    error = recorder.events[-1][1]
    assert error is None or isinstance(error, BaseException), error


def test_stream_writes_16_mib_intact(amqp_harness: LoopHarness) -> None:
    payload = os.urandom(LARGE)
    server = LoopbackServer(lambda sock: hashlib.sha256(_recv_all(sock)).digest())
    recorder = StreamRecorder(amqp_harness)
    _open(amqp_harness, server.address, recorder)
    recorder.call("write", payload[:100])
    recorder.call("write", payload[100:LARGE // 2])
    recorder.call("write", payload[LARGE // 2:])
    assert recorder.transport.get_write_buffer_size() >= 0
    recorder.call("close")
    _wait_lost(amqp_harness, recorder)
    assert server.join() == hashlib.sha256(payload).digest(), "16 MiB did not arrive intact"
    assert recorder.events[-1] == ("lost", None)


def test_stream_receives_16_mib_intact(amqp_harness: LoopHarness) -> None:
    payload = os.urandom(LARGE)

    def handler(sock: socket.socket) -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        _recv_all(sock)

    server = LoopbackServer(handler)
    recorder = StreamRecorder(amqp_harness)
    _open(amqp_harness, server.address, recorder)
    _wait_lost(amqp_harness, recorder)
    server.join()
    assert len(recorder.data) == LARGE
    assert hashlib.sha256(recorder.data).digest() == hashlib.sha256(payload).digest()
    assert recorder.names() == ["made", "data", "eof", "lost"], recorder.names()


def _stalled_server() -> tuple[LoopbackServer, threading.Event]:
    """A server that reads nothing until the event is set, then counts what arrives."""
    go = threading.Event()

    def handler(sock: socket.socket) -> int:
        assert go.wait(GUARD)
        total = 0
        try:
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
        except ConnectionResetError:
            pass
        return total

    return LoopbackServer(handler), go


def test_stream_close_flushes_then_reports_lost_once(amqp_harness: LoopHarness) -> None:
    server, go = _stalled_server()
    recorder = StreamRecorder(amqp_harness)
    _open(amqp_harness, server.address, recorder)
    recorder.call("write", b"c" * (8 << 20))
    recorder.call("close")
    recorder.call("close")
    assert "lost" not in recorder.names(), "connection_lost ran inside close()"
    amqp_harness.loop.call_later(0.1, go.set)
    _wait_lost(amqp_harness, recorder)
    assert server.join() == 8 << 20, "close() did not send everything buffered"
    assert recorder.events[-1] == ("lost", None)


def test_stream_abort_drops_the_buffer_and_reports_lost_once(amqp_harness: LoopHarness) -> None:
    server, go = _stalled_server()
    recorder = StreamRecorder(amqp_harness)
    _open(amqp_harness, server.address, recorder)
    recorder.call("write", b"a" * (32 << 20))
    amqp_harness.run_for(0.05)
    recorder.call("abort")
    recorder.call("abort")
    recorder.call("close")
    assert "lost" not in recorder.names(), "connection_lost ran inside abort()"
    _wait_lost(amqp_harness, recorder)
    go.set()
    received = server.join()
    assert received < 32 << 20, "abort() sent everything buffered (it must drop it)"
    assert recorder.events[-1] == ("lost", None)


# ---------------------------------------------------------------- TLS


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = pytest.importorskip("trustme", reason="the TLS contract tests need trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def test_stream_tls_echo_against_a_throwaway_ca(amqp_harness: LoopHarness) -> None:
    server_context, client_context = _tls_contexts()

    def echo(sock: socket.socket) -> int:
        total = 0
        while data := sock.recv(1 << 16):
            sock.sendall(data)
            total += len(data)
        return total

    server = LoopbackServer(echo, server_context)
    recorder = StreamRecorder(amqp_harness)
    transport = _open(amqp_harness, server.address, recorder, client_context, "localhost")
    assert transport.get_extra_info("ssl_object") is not None, "no ssl_object on a TLS stream"
    payload = os.urandom(4 << 20)
    recorder.call("write", payload)
    amqp_harness.run_until(lambda: len(recorder.data) >= len(payload), GUARD,
                           what="the TLS echo")
    assert bytes(recorder.data) == payload, "the TLS echo differs"
    recorder.call("close")
    _wait_lost(amqp_harness, recorder)
    assert server.join() == len(payload)
    assert recorder.events[-1] == ("lost", None)


def test_stream_tls_with_the_wrong_hostname_fails_in_on_done(amqp_harness: LoopHarness) -> None:
    server_context, client_context = _tls_contexts()
    server = LoopbackServer(_recv_all, server_context)
    recorder = StreamRecorder(amqp_harness)
    _handle, results = _connect(amqp_harness, server.address, recorder, client_context,
                                "not-the-server.example")
    amqp_harness.run_until(lambda: results, GUARD, what="on_done of a failed TLS handshake")
    amqp_harness.run_until(lambda: server.done, GUARD, what="the server to finish")
    server.join(expect_error=True)
    amqp_harness.run_for(0.05)
    assert len(results) == 1 and isinstance(results[0], BaseException), results
    assert recorder.events == [], "the protocol was called for a failed handshake"
