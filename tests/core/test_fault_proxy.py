"""The kit's fault-injecting proxy (``amqp_core.testing.fault_proxy``) against a local echo server.

Theory of operation: :class:`EchoServer` echoes every byte back on 127.0.0.1 (one thread per
connection, every wait bounded); each test puts a :class:`FaultProxy` in front of it, switches
a mode, and watches what a plain client socket sees: the echo, silence with the socket still
open, an end of stream (FIN), a reset (RST), or exactly the first N bytes and then a reset.
No broker is involved.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from amqp_core.testing.fault_proxy import (
    BlackHoleListener,
    Direction,
    FaultProxy,
    HangingConnectListener,
    unused_port,
)

#: Bound on each socket wait in these tests, in seconds.
WAIT = 5.0


class EchoServer:
    """Echoes bytes back; :meth:`close_clients` closes its side of every connection."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.received = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            self.conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_WR)
                return
            self.received += len(data)
            with contextlib.suppress(OSError):
                conn.sendall(data)

    def close_clients(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(WAIT)
        for conn in self.conns:
            conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.port, max_lifetime=60.0) as fault_proxy:
        yield fault_proxy


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    deadline = time.monotonic() + WAIT
    while len(data) < count:
        assert time.monotonic() < deadline, f"got {len(data)} of {count} bytes"
        chunk = sock.recv(count - len(data))
        assert chunk, f"end of stream after {len(data)} of {count} bytes"
        data += chunk
    return data


def silent_for(sock: socket.socket, seconds: float) -> bool:
    """Nothing (not even an end of stream) arrives on ``sock`` for ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(WAIT)
    return False


def wait_until(predicate: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_pass_through_echoes_and_counts(proxy: FaultProxy, echo: EchoServer) -> None:
    with connect(proxy.port) as sock:
        payload = bytes(range(256)) * 1000
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
        wait_until(lambda: proxy.forwarded[Direction.DOWNSTREAM] == len(payload))
        assert proxy.received[Direction.UPSTREAM] == proxy.forwarded[Direction.UPSTREAM] == len(
            payload)
        assert proxy.received[Direction.DOWNSTREAM] == len(payload)
        assert proxy.discarded == {Direction.UPSTREAM: 0, Direction.DOWNSTREAM: 0}
        assert proxy.accepted == 1 and proxy.connections == 1


def test_latency_delays_one_direction(proxy: FaultProxy) -> None:
    proxy.pass_through(Direction.DOWNSTREAM, latency=0.3)
    with connect(proxy.port) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 3.0, elapsed
        proxy.pass_through()
        started = time.monotonic()
        sock.sendall(b"pong")
        assert recv_exactly(sock, 4) == b"pong"
        assert time.monotonic() - started < 0.3


def test_stall_discards_silently_and_keeps_the_socket_open(proxy: FaultProxy,
                                                           echo: EchoServer) -> None:
    with connect(proxy.port) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        proxy.stall()
        sock.sendall(b"lost")
        assert silent_for(sock, 0.3)
        wait_until(lambda: proxy.discarded[Direction.UPSTREAM] == 4)
        assert echo.received == 1
        proxy.pass_through()  # what was discarded stays lost; new bytes flow
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"


def test_stall_without_discarding_holds_the_bytes(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        proxy.stall(Direction.UPSTREAM, discard=False)
        sock.sendall(b"held")
        assert silent_for(sock, 0.3)
        assert proxy.forwarded[Direction.UPSTREAM] == 0
        proxy.pass_through()
        assert recv_exactly(sock, 4) == b"held"


def test_stall_does_not_propagate_the_servers_end(proxy: FaultProxy, echo: EchoServer) -> None:
    with connect(proxy.port) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.stall()
        echo.close_clients()
        assert silent_for(sock, 0.5)  # no FIN, no RST: a black hole


def test_close_all_is_an_end_of_stream(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.close_all()
        assert sock.recv(10) == b""
        wait_until(lambda: proxy.connections == 0)


def test_reset_all_is_a_reset(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.reset_all()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)


def test_cut_forwards_exactly_n_bytes_then_resets(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        proxy.cut(Direction.DOWNSTREAM, 5)
        sock.sendall(b"0123456789")
        received = b""
        with pytest.raises(ConnectionResetError):
            while True:
                chunk = sock.recv(100)
                if not chunk:
                    break
                received += chunk
        # a reset may discard bytes the client had not read yet: never more than 5 arrive
        assert b"01234".startswith(received)
        assert proxy.cuts == [(Direction.DOWNSTREAM, 5)]


def test_cut_counts_across_chunks(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        proxy.cut(Direction.DOWNSTREAM, 150)
        sock.sendall(b"a" * 100)
        assert recv_exactly(sock, 100) == b"a" * 100
        sock.sendall(b"b" * 100)
        wait_until(lambda: proxy.cuts)
        assert proxy.cuts == [(Direction.DOWNSTREAM, 150)]
        assert proxy.forwarded[Direction.DOWNSTREAM] == 150
        with pytest.raises(ConnectionResetError):
            while sock.recv(100):
                pass


def test_client_end_is_forwarded_in_pass_through(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        sock.sendall(b"bye")
        assert recv_exactly(sock, 3) == b"bye"
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""


def test_unreachable_target_resets_the_client() -> None:
    with FaultProxy("127.0.0.1", unused_port(), max_lifetime=30.0) as proxy, pytest.raises(
            (ConnectionResetError, ConnectionAbortedError)):
        with connect(proxy.port) as sock:  # the reset may come before connect() returns
            while sock.recv(10):
                pass


def test_max_lifetime_closes_the_proxy(echo: EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.port, max_lifetime=0.3)
    with connect(proxy.port) as sock:
        wait_until(lambda: proxy.is_closed)
        proxy.close()  # waits until the lifetime timer's close is done
        with pytest.raises(ConnectionResetError):
            while sock.recv(10):
                pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT).close()
    proxy.close()  # idempotent


def test_close_joins_every_thread(echo: EchoServer) -> None:
    with FaultProxy("127.0.0.1", echo.port) as proxy, connect(proxy.port) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        port = proxy.port
    assert proxy.is_closed
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name.startswith(f"fault-proxy-{port}")], names


def test_black_hole_accepts_and_never_answers() -> None:
    with BlackHoleListener(max_lifetime=30.0) as hole, connect(hole.port) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        assert silent_for(sock, 0.3)
        wait_until(lambda: hole.received == 8)
        assert hole.accepted == 1
    assert hole.is_closed


def test_unused_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", unused_port()), timeout=WAIT)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"target_host": 1, "target_port": 1}, TypeError, "target_host"),
    ({"target_host": "127.0.0.1", "target_port": 0}, ValueError, "target_port"),
    ({"target_host": "127.0.0.1", "target_port": 1, "max_lifetime": 0}, ValueError,
     "max_lifetime"),
    ({"target_host": "127.0.0.1", "target_port": 1, "connect_timeout": -1}, ValueError,
     "connect_timeout"),
])
def test_bad_arguments_name_the_parameter(kwargs: dict[str, object], error: type[Exception],
                                          name: str) -> None:
    with pytest.raises(error, match=name):
        FaultProxy(**kwargs)  # type: ignore[arg-type]


def test_bad_modes_name_the_parameter(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="direction"):
        proxy.stall("sideways")
    with pytest.raises(ValueError, match="latency"):
        proxy.pass_through(latency=-1)
    with pytest.raises(ValueError, match="nbytes"):
        proxy.cut(Direction.UPSTREAM, -1)
    with pytest.raises(ValueError, match="direction"):
        proxy.wait_for(Direction.BOTH, 1)


def test_hanging_connect_listener_makes_connects_time_out() -> None:
    with HangingConnectListener() as hole:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection((hole.host, hole.port), timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 2.0
