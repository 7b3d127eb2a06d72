"""TwistedEventLoop: the loop contract over the reactor (timers, threads, streams, TLS)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted_helpers import LOOP, spin, wait

from amqp_adapter_twisted import TwistedEventLoop
from amqp_core.io.contract import EventLoop, StreamTransport

HEADER = b"AMQP\x00\x00\x09\x01"


class Recorder:
    """A contract StreamProtocol that records what the stream did."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.data = bytearray()
        self.transport: Any = None
        self.lost: defer.Deferred[Any] = defer.Deferred()
        self.got_data: defer.Deferred[None] = defer.Deferred()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.got_data.called:
            self.got_data.callback(None)

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))
        self.lost.callback(exc)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")


def connect(loop: TwistedEventLoop, address: tuple[str, int], protocol: Recorder,
            context: ssl.SSLContext | None = None, hostname: str | None = None
            ) -> tuple[defer.Deferred[Any], Any]:
    done: defer.Deferred[Any] = defer.Deferred()
    handle = loop.connect_stream(address, socket.AF_INET, protocol, context, hostname,
                                 done.callback)
    return done, handle


def test_implements_the_contract() -> None:
    assert isinstance(LOOP, EventLoop)
    assert callable(LOOP.run_until_stopped) and callable(LOOP.stop_soon)  # RunnableLoop
    assert LOOP.reactor is reactor
    assert TwistedEventLoop().reactor is reactor
    assert abs(LOOP.time() - reactor.seconds()) < 1  # type: ignore[attr-defined]


def test_rejects_what_is_not_a_reactor() -> None:
    with pytest.raises(TypeError, match="reactor"):
        TwistedEventLoop(object())


def test_call_soon_is_fifo_and_cancellable() -> None:
    order: list[int] = []
    LOOP.call_soon(lambda: order.append(1))
    cancelled = LOOP.call_soon(lambda: order.append(2))
    LOOP.call_soon(lambda: order.append(3))
    cancelled.cancel()
    cancelled.cancel()  # twice is a no-op
    spin(0.05)
    assert order == [1, 3]


def test_call_later_orders_by_deadline() -> None:
    order: list[str] = []
    LOOP.call_later(0.05, lambda: order.append("late"))
    handle = LOOP.call_later(0.0, lambda: order.append("soon"))
    LOOP.call_later(-1, lambda: order.append("negative counts as zero"))
    spin(0.15)
    handle.cancel()  # after it ran: no-op
    assert order == ["soon", "negative counts as zero", "late"]


def test_call_soon_threadsafe_wakes_the_reactor_from_many_threads() -> None:
    done: defer.Deferred[None] = defer.Deferred()
    hits: list[int] = []

    def hit(index: int) -> None:
        hits.append(index)
        if len(hits) == 8 and not done.called:
            done.callback(None)

    def worker(index: int) -> None:
        time.sleep(0.05)
        LOOP.call_soon_threadsafe(lambda: hit(index))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait(done, 5)
    for thread in threads:
        thread.join(5)
    assert sorted(hits) == list(range(8))
    assert time.monotonic() - started < 1.0  # woken at once, not at the next idle timeout


def test_getaddrinfo_runs_off_the_reactor_thread() -> None:
    done: defer.Deferred[Any] = defer.Deferred()
    LOOP.getaddrinfo("127.0.0.1", 5672, socket.AF_INET, socket.SOCK_STREAM, 0, 0, done.callback)
    result = wait(done, 10)
    assert result[0][4] == ("127.0.0.1", 5672)
    suppressed: list[Any] = []
    handle = LOOP.getaddrinfo("localhost", 1, 0, socket.SOCK_STREAM, 0, 0, suppressed.append)
    handle.cancel()
    spin(0.2)
    assert suppressed == []


def test_refused_connect_reports_an_os_error_only() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    protocol = Recorder()
    done, _handle = connect(LOOP, ("127.0.0.1", port), protocol)
    error = wait(done, 10)
    assert isinstance(error, ConnectionRefusedError)
    assert protocol.events == []


def test_cancelled_connect_calls_nothing() -> None:
    protocol = Recorder()
    called: list[Any] = []
    handle = LOOP.connect_stream(("127.0.0.1", 9), socket.AF_INET, protocol, None, None,
                                 called.append)
    handle.cancel()
    handle.cancel()
    spin(0.2)
    assert called == [] and protocol.events == []


def test_plain_stream_round_trip_and_close(broker: Any) -> None:
    protocol = Recorder()
    done, _handle = connect(LOOP, (broker.host, broker.port), protocol)
    transport = wait(done, 10)
    assert isinstance(transport, StreamTransport)
    assert protocol.events == ["made"] and protocol.transport is transport
    sock = transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert transport.get_extra_info("peername") == (broker.host, broker.port)
    assert transport.get_extra_info("nope", 42) == 42
    transport.write(HEADER)
    wait(protocol.got_data, 10)
    assert protocol.data[:3] == b"\x01\x00\x00"  # a method frame on channel 0: Connection.Start
    assert transport.get_write_buffer_size() == 0
    transport.close()
    assert wait(protocol.lost, 10) is None
    assert protocol.events[-1] == ("lost", None)


def test_abort_reports_connection_lost_once(broker: Any) -> None:
    protocol = Recorder()
    transport = wait(connect(LOOP, (broker.host, broker.port), protocol)[0], 10)
    transport.abort()
    transport.abort()
    assert wait(protocol.lost, 10) is None
    spin(0.05)
    assert [event for event in protocol.events if event != "made"] == [("lost", None)]


def _until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        spin(0.02)


def test_write_back_pressure_through_the_producer_interface() -> None:
    """A peer that does not read pauses the stream (Twisted's pauseProducing); draining resumes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    received = bytearray()
    try:
        protocol = Recorder()
        transport = wait(connect(LOOP, server.getsockname(), protocol)[0], 10)
        peer, _ = server.accept()
        peer.settimeout(10)
        try:
            assert transport.get_write_buffer_size() == 0 and not transport.writing_paused
            payload = b"p" * (8 << 20)  # far beyond Twisted's 64 KiB mark and the kernel's buffers
            transport.write(payload)
            assert protocol.events == ["made", "pause"]
            assert transport.writing_paused
            assert transport.get_write_buffer_size() >= 1 << 16
            spin(0.1)  # the reactor sends what the kernel takes; the peer still reads nothing
            assert protocol.events == ["made", "pause"]

            def drain() -> None:
                while len(received) < len(payload):
                    chunk = peer.recv(1 << 20)
                    if not chunk:
                        return
                    received.extend(chunk)

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            _until(lambda: "resume" in protocol.events, 15, "resume_writing")
            reader.join(10)
            assert protocol.events == ["made", "pause", "resume"]
            assert not transport.writing_paused and transport.get_write_buffer_size() == 0
            assert len(received) == len(payload)
            transport.close()
            assert wait(protocol.lost, 10) is None
        finally:
            peer.close()
    finally:
        server.close()


def test_tls_stream(private_broker: Any) -> None:
    protocol = Recorder()
    context = ssl.create_default_context(cafile=str(private_broker.ca_path))
    done, _handle = connect(
        LOOP, (private_broker.host, private_broker.tls_port), protocol, context, "localhost"
    )
    transport = wait(done, 10)
    assert protocol.events == ["made"]
    assert isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)
    assert transport.get_extra_info("peercert")
    transport.write(HEADER)
    wait(protocol.got_data, 10)
    assert protocol.data[:3] == b"\x01\x00\x00"
    transport.close()
    assert wait(protocol.lost, 10) is None


def test_tls_verification_failure_is_an_ssl_error(private_broker: Any) -> None:
    protocol = Recorder()
    context = ssl.create_default_context()  # does not trust the test CA
    done, _handle = connect(
        LOOP, (private_broker.host, private_broker.tls_port), protocol, context, "localhost"
    )
    error = wait(done, 10)
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert protocol.events == []
    spin(0.05)


def test_tls_wrong_hostname_is_refused(private_broker: Any) -> None:
    protocol = Recorder()
    context = ssl.create_default_context(cafile=str(private_broker.ca_path))
    done, _handle = connect(
        LOOP, (private_broker.host, private_broker.tls_port), protocol, context, "example.org"
    )
    assert isinstance(wait(done, 10), ssl.SSLCertVerificationError)


def test_run_until_stopped_can_be_stopped_from_a_thread() -> None:
    loop = TwistedEventLoop(reactor)
    timer = threading.Timer(0.1, loop.stop_soon)
    started = time.monotonic()
    timer.start()
    loop.run_until_stopped()
    timer.join()
    assert time.monotonic() - started < 2
