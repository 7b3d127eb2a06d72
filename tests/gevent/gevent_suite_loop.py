"""``GeventIOLoop`` / ``GeventEventLoop`` against amqp_core's loop contract; no broker needed.

Run by ``run_gevent_suite.py`` in a process per mode (with and without monkey-patching); every
wait is bounded.  Real OS threads are started with the *original* ``_thread`` functions, so they
are real threads in both modes.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import gevent
import gevent.event
import pytest
from gevent.monkey import get_original
from gevent_helpers import wait_for

from amqp_adapter_gevent import GeventEventLoop, GeventIOLoop
from amqp_core.io.contract import EventLoop, RunnableLoop

start_new_thread = get_original("_thread", "start_new_thread")
real_get_ident = get_original("_thread", "get_ident")
allocate_lock = get_original("_thread", "allocate_lock")


def in_real_thread(function: Any, *args: Any) -> Any:
    """Run ``function(*args)`` in a new real OS thread; returns a lock released when it ends."""
    done = allocate_lock()
    done.acquire()

    def body() -> None:
        try:
            function(*args)
        finally:
            done.release()

    start_new_thread(body, ())
    return done


@pytest.fixture
def ioloop(gevent_mode: str) -> Any:
    loop = GeventIOLoop()
    yield loop
    loop.close()


def test_mode(gevent_mode: str) -> None:
    import threading

    patched = gevent_mode == "monkey"
    assert (threading.get_ident() != real_get_ident()) == patched


def test_is_the_contract(ioloop: GeventIOLoop) -> None:
    contract = ioloop.contract()
    assert contract is ioloop.contract()
    assert isinstance(contract, EventLoop)
    for name in RunnableLoop.__dict__:
        if not name.startswith("_"):
            assert callable(getattr(contract, name)), name
    assert ioloop.hub is gevent.get_hub() and ioloop.loop is gevent.get_hub().loop
    for name in ("call_later", "remove_timeout", "start", "stop", "close", "add_callback",
                 "add_callback_threadsafe", "add_handler", "update_handler", "remove_handler"):
        assert callable(getattr(ioloop, name)), name
    assert (ioloop.READ, ioloop.WRITE, ioloop.ERROR) == (1, 2, 0)


def test_bad_arguments(ioloop: GeventIOLoop) -> None:
    with pytest.raises(TypeError, match="gevent_hub"):
        GeventIOLoop(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ioloop"):
        GeventEventLoop(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        ioloop.call_soon(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        ioloop.add_callback_threadsafe(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="delay"):
        ioloop.call_later("1", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay"):
        ioloop.call_later(-1, lambda: None)
    with pytest.raises(ValueError, match="delay"):
        ioloop.call_later(float("nan"), lambda: None)
    with pytest.raises(TypeError, match="timeout_handle"):
        ioloop.remove_timeout(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fd"):
        ioloop.add_handler("3", lambda fd, ev: None, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="events"):
        ioloop.add_handler(3, lambda fd, ev: None, 8)
    with pytest.raises(ValueError, match="no handler"):
        ioloop.update_handler(12345, 1)
    with pytest.raises(ValueError, match="no handler"):
        ioloop.remove_handler(12345)


def test_hub_of_another_thread_is_refused() -> None:
    hubs: list[Any] = []

    def make_hub() -> None:
        hubs.append(gevent.get_hub())

    in_real_thread(make_hub).acquire()
    try:
        with pytest.raises(ValueError, match="another thread"):
            GeventIOLoop(hubs[0])
    finally:
        hubs[0].destroy(destroy_loop=True)


def test_callbacks_timers_and_order(ioloop: GeventIOLoop) -> None:
    contract = ioloop.contract()
    order: list[str] = []
    assert abs(contract.time() - time.monotonic()) < 1.0
    contract.call_later(0.05, lambda: (order.append("later"), ioloop.stop()))
    contract.call_later(-1, lambda: order.append("negative delay"))
    contract.call_soon(lambda: order.append("soon 1"))
    cancelled = contract.call_soon(lambda: order.append("cancelled"))
    contract.call_soon(lambda: order.append("soon 2"))
    cancelled.cancel()
    cancelled.cancel()  # twice is fine
    removed = ioloop.call_later(0.01, lambda: order.append("removed"))
    ioloop.remove_timeout(removed)
    ioloop.remove_timeout(removed)  # twice is fine
    contract.call_soon(lambda: (_ for _ in ()).throw(RuntimeError("logged, not fatal")))
    started = time.monotonic()
    ioloop.start()
    elapsed = time.monotonic() - started
    assert order[:2] == ["soon 1", "soon 2"]
    assert order[-1] == "later" and "negative delay" in order
    assert "cancelled" not in order and "removed" not in order
    assert 0.04 <= elapsed < 5


def test_stop_before_start_returns_at_once(ioloop: GeventIOLoop) -> None:
    ioloop.stop()
    ioloop.start()
    assert not ioloop.is_running


def test_start_refuses_the_hub_and_reentry(ioloop: GeventIOLoop) -> None:
    errors: list[BaseException] = []

    def start_and_record() -> None:
        try:
            ioloop.start()
        except RuntimeError as error:
            errors.append(error)

    ioloop.hub.loop.run_callback(start_and_record)  # runs in the hub itself
    ioloop.call_soon(start_and_record)  # runs in start()'s greenlet
    ioloop.call_later(0.01, ioloop.stop)
    ioloop.start()
    messages = sorted(str(error) for error in errors)
    assert len(messages) == 2
    assert any("cannot block the hub" in m for m in messages)
    assert any("already running" in m for m in messages)

    gevent.spawn(start_and_record)  # another greenlet, while the main one runs the loop
    ioloop.call_later(0.01, ioloop.stop)
    ioloop.start()
    assert "already running" in str(errors[2])


def test_callbacks_run_in_the_greenlet_running_start(ioloop: GeventIOLoop) -> None:
    where: list[Any] = []
    ioloop.call_soon(lambda: where.append(gevent.getcurrent()))
    ioloop.call_later(0.01, lambda: (where.append(gevent.getcurrent()), ioloop.stop()))
    ioloop.start()
    assert where == [gevent.getcurrent()] * 2


def test_callbacks_may_block_cooperatively(ioloop: GeventIOLoop) -> None:
    """A callback that sleeps pauses the loop's other callbacks, not the other greenlets."""
    order: list[str] = []

    def sleeper() -> None:
        order.append("sleep")
        gevent.sleep(0.05)
        order.append("woke")

    ticker = gevent.spawn(lambda: [order.append("tick") or gevent.sleep(0.01) for _ in range(3)])
    ioloop.call_soon(sleeper)
    ioloop.call_soon(lambda: order.append("next callback"))
    wait_for(lambda: "next callback" in order, what="callbacks")
    ticker.join(5)
    assert order.index("woke") < order.index("next callback")
    assert order.count("tick") == 3 and order.index("tick") < order.index("woke")


def test_background_greenlet_runs_callbacks_without_start(ioloop: GeventIOLoop) -> None:
    where: list[Any] = []
    ioloop.call_soon(lambda: where.append(gevent.getcurrent()))
    wait_for(lambda: where, what="a callback without start()")
    assert where[0] is not gevent.getcurrent() and where[0] is not ioloop.hub
    assert ioloop.background


def test_without_background_callbacks_wait_for_start(gevent_mode: str) -> None:
    ioloop = GeventIOLoop(background=False)
    try:
        ran: list[str] = []
        ioloop.call_soon(lambda: ran.append("soon"))
        ioloop.call_later(0, lambda: ran.append("timer"))
        gevent.sleep(0.05)
        assert ran == []
        ioloop.call_later(0.02, ioloop.stop)
        ioloop.start()
        assert ran == ["soon", "timer"]
        with pytest.raises(TypeError, match="background"):
            GeventIOLoop(background=1)  # type: ignore[arg-type]
    finally:
        ioloop.close()


def test_threadsafe_callbacks_from_real_threads_wake_the_hub(ioloop: GeventIOLoop) -> None:
    threads = 8
    per_thread = 500
    got: list[tuple[int, int]] = []
    idents: set[int] = set()
    gate = allocate_lock()  # held until every thread is done: no thread id is reused
    gate.acquire()

    def worker(index: int) -> None:
        idents.add(real_get_ident())
        for i in range(per_thread):
            ioloop.add_callback_threadsafe(lambda i=i: got.append((index, i)))
        ioloop.add_callback(lambda: got.append((index, -1)))
        if gate.acquire(timeout=20):
            gate.release()

    locks = [in_real_thread(worker, n) for n in range(threads)]
    wait_for(lambda: len(got) == threads * (per_thread + 1), what="thread-safe callbacks")
    gate.release()
    for lock in locks:
        assert lock.acquire(timeout=10)
    assert len(idents) == threads and real_get_ident() not in idents
    for index in range(threads):  # FIFO per thread
        assert [i for t, i in got if t == index] == [*range(per_thread), -1]


def test_threadsafe_wakes_an_idle_loop_quickly(ioloop: GeventIOLoop) -> None:
    woke = gevent.event.Event()  # set in the hub, waited on by the main greenlet
    delays: list[float] = []

    def poke() -> None:
        for _ in range(5):
            time.sleep(0.02)  # a real sleep: this is a real thread
            sent = time.monotonic()
            ioloop.add_callback_threadsafe(lambda sent=sent: delays.append(time.monotonic() - sent))
        ioloop.add_callback_threadsafe(ioloop.stop)

    in_real_thread(poke)
    ioloop.start()  # nothing else keeps the hub busy: only the async watcher wakes it
    woke.set()
    assert len(delays) == 5
    assert max(delays) < 0.5


def test_stop_from_a_real_thread(ioloop: GeventIOLoop) -> None:
    def stop_later() -> None:
        time.sleep(0.05)
        ioloop.stop()

    in_real_thread(stop_later)
    with gevent.Timeout(10):
        ioloop.start()


def test_greenlets_use_call_soon(ioloop: GeventIOLoop) -> None:
    got: list[int] = []

    def publisher(n: int) -> None:
        for i in range(10):
            ioloop.call_soon(lambda n=n, i=i: got.append(n * 100 + i))
            gevent.sleep(0)

    greenlets = [gevent.spawn(publisher, n) for n in range(20)]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    wait_for(lambda: len(got) == 200, what="greenlet callbacks")
    assert sorted(got) == sorted(n * 100 + i for n in range(20) for i in range(10))


def test_handlers_and_readers(ioloop: GeventIOLoop) -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    try:
        events: list[tuple[int, int]] = []
        ioloop.add_handler(left.fileno(), lambda fd, ev: events.append((fd, ev)), ioloop.WRITE)
        wait_for(lambda: events, what="writable")
        assert events[0] == (left.fileno(), ioloop.WRITE)
        with pytest.raises(ValueError, match="already watched"):
            ioloop.add_handler(left.fileno(), lambda fd, ev: None, ioloop.READ)
        with pytest.raises(ValueError, match="add_handler"):
            ioloop.add_reader(left.fileno(), lambda: None)
        ioloop.update_handler(left.fileno(), ioloop.READ)
        events.clear()
        gevent.sleep(0.02)
        assert events == []
        right.send(b"x")
        wait_for(lambda: events, what="readable")
        assert events[0] == (left.fileno(), ioloop.READ)
        ioloop.remove_handler(left.fileno())
        left.recv(10)

        reads: list[bytes] = []
        ioloop.add_reader(left.fileno(), lambda: reads.append(left.recv(10)))
        right.send(b"y")
        wait_for(lambda: reads, what="reader")
        assert reads == [b"y"]
        assert ioloop.remove_reader(left.fileno()) is True
        assert ioloop.remove_reader(left.fileno()) is False
        writes: list[int] = []
        ioloop.add_writer(left.fileno(), lambda: writes.append(1))
        wait_for(lambda: writes, what="writer")
        assert ioloop.remove_writer(left.fileno()) is True
        assert ioloop.remove_writer(left.fileno()) is False
    finally:
        left.close()
        right.close()


def test_getaddrinfo(ioloop: GeventIOLoop) -> None:
    contract = ioloop.contract()
    results: list[Any] = []
    contract.getaddrinfo("127.0.0.1", 5671, 0, socket.SOCK_STREAM, 0, 0, results.append)
    contract.getaddrinfo("localhost", 5672, socket.AF_INET, socket.SOCK_STREAM, 0, 0,
                         results.append)
    contract.getaddrinfo("127.0.0.1", "no-such-service-name", 0, socket.SOCK_STREAM, 0, 0,  # type: ignore[arg-type]
                         results.append)
    cancelled: list[Any] = []
    handle = contract.getaddrinfo("127.0.0.1", 1, 0, socket.SOCK_STREAM, 0, 0, cancelled.append)
    handle.cancel()
    wait_for(lambda: len(results) == 3, what="getaddrinfo")
    gevent.sleep(0.05)
    assert cancelled == []
    by_port = {r[0][4][1]: r for r in results if isinstance(r, list)}
    assert by_port[5671][0][4][:2] == ("127.0.0.1", 5671)
    assert by_port[5672][0][4][:2] == ("127.0.0.1", 5672)
    assert sum(isinstance(r, OSError) for r in results) == 1


class Recording:
    """A contract StreamProtocol that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append(("made", None))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data", data))

    def eof_received(self) -> bool | None:
        self.calls.append(("eof", None))
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(("lost", exc))

    def pause_writing(self) -> None:
        self.calls.append(("pause", None))

    def resume_writing(self) -> None:
        self.calls.append(("resume", None))

    def received(self) -> bytes:
        return b"".join(data for name, data in self.calls if name == "data")


def echo_server(context: ssl.SSLContext | None = None) -> tuple[socket.socket, int]:
    """A one-connection echo server running in a real thread (plain blocking sockets)."""
    original_socket = get_original("socket", "socket")
    server = original_socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.settimeout(10)
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    start_new_thread(serve, ())
    return server, server.getsockname()[1]


def connect(contract: GeventEventLoop, port: int, protocol: Recording,
            ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None) -> Any:
    result: list[Any] = []
    contract.connect_stream(("127.0.0.1", port), socket.AF_INET, protocol, ssl_context,
                            server_hostname, result.append)
    wait_for(lambda: result, what="connect_stream")
    return result[0]


def test_stream_round_trip(ioloop: GeventIOLoop) -> None:
    server, port = echo_server()
    with server:
        protocol = Recording()
        transport = connect(ioloop.contract(), port, protocol)
        assert protocol.transport is transport
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        payload = bytes(range(256)) * 4096  # 1 MiB
        transport.write(b"ping")
        transport.write(payload)
        wait_for(lambda: len(protocol.received()) == len(payload) + 4, what="echo")
        assert protocol.received() == b"ping" + payload
        transport.close()
        wait_for(lambda: protocol.calls[-1][0] == "lost", what="connection_lost")
        assert protocol.calls[-1] == ("lost", None)


def test_refused_connect(ioloop: GeventIOLoop) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    protocol = Recording()
    assert isinstance(connect(ioloop.contract(), port, protocol), ConnectionRefusedError)
    assert protocol.calls == []


def test_tls_stream(ioloop: GeventIOLoop) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server, port = echo_server(server_context)
    with server:
        protocol = Recording()
        transport = connect(ioloop.contract(), port, protocol, client_context, "localhost")
        assert transport.get_extra_info("ssl_object") is not None
        transport.write(b"secret" * 10000)
        wait_for(lambda: len(protocol.received()) == 60000, what="TLS echo")
        transport.abort()
        wait_for(lambda: protocol.calls[-1][0] == "lost", what="connection_lost")


def test_close(gevent_mode: str) -> None:
    ioloop = GeventIOLoop()
    fired: list[str] = []
    ioloop.call_later(0.01, lambda: fired.append("timer"))
    ioloop.call_soon(lambda: fired.append("soon"))
    left, right = socket.socketpair()
    with left, right:
        ioloop.add_reader(left.fileno(), lambda: fired.append("read"))
        right.send(b"x")
        ioloop.close()
        ioloop.close()  # idempotent
        assert ioloop.is_closed
        gevent.sleep(0.05)
        assert fired == []
        with pytest.raises(RuntimeError, match="closed"):
            ioloop.start()
        ioloop.add_callback_threadsafe(lambda: None)  # no error: dropped
