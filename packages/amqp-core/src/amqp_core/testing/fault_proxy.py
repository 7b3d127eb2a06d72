"""A fault-injecting TCP proxy for reliability tests (no broker knowledge, threads only).

Theory of operation
-------------------
:class:`FaultProxy` listens on ``127.0.0.1`` (ephemeral port) and forwards every
accepted connection to a target ``(host, port)``.  Each accepted connection is a
:class:`_Link`: the client socket, the upstream socket, and two pump threads,
one per :class:`Direction` (``UPSTREAM`` = client to server, ``DOWNSTREAM`` =
server to client).  A pump waits (``select``, 50 ms at most, so it sees mode
changes and the proxy's end quickly) for data from its source, applies the
*mode* of its direction to each chunk, and writes what is due to its
destination with non-blocking sends, so a destination that does not read never
blocks the pump.

The modes are switchable at any time, per direction, and apply to the current
and future connections:

* :meth:`FaultProxy.pass_through` -- forward (optionally ``latency`` seconds late);
* :meth:`FaultProxy.stall` -- a black hole: the sockets stay open, nothing is
  forwarded, and the data is read and discarded (``discard=True``) or left
  unread (the sender's buffers fill up); an end of stream is not propagated;
* :meth:`FaultProxy.cut` -- forward only the next ``n`` bytes, then reset both
  sockets (a stream cut mid-frame).

Two actions end the current connections at once: :meth:`FaultProxy.close_all`
(orderly FIN) and :meth:`FaultProxy.reset_all` (``SO_LINGER`` 0: RST).
Counters (:attr:`FaultProxy.received`, :attr:`FaultProxy.forwarded`,
:attr:`FaultProxy.discarded`) count bytes per direction.

Everything is bounded: the proxy closes itself after ``max_lifetime`` seconds,
and :meth:`FaultProxy.close` joins its threads with timeouts.

:class:`BlackHoleListener` accepts TCP connections and never answers (it reads
and discards), for connect-time tests; :func:`unused_port` names a port nobody
listens on.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = [
    "BlackHoleListener",
    "Direction",
    "FaultProxy",
    "HangingConnectListener",
    "unused_port",
]

#: Longest a pump or acceptor waits before re-reading its mode, in seconds.
POLL_INTERVAL = 0.05
#: Bound on joining one thread when closing, in seconds.
JOIN_TIMEOUT = 2.0
#: Bytes read at once.
CHUNK = 65536


class Direction(enum.Enum):
    """Which way the bytes flow."""

    UPSTREAM = "upstream"  #: client to server
    DOWNSTREAM = "downstream"  #: server to client
    BOTH = "both"  #: both of them (for setting modes only)


def _directions(direction: Direction | str) -> tuple[Direction, ...]:
    try:
        value = Direction(direction)
    except ValueError:
        raise ValueError(
            f"direction must be 'upstream', 'downstream' or 'both', not {direction!r}"
        ) from None
    if value is Direction.BOTH:
        return (Direction.UPSTREAM, Direction.DOWNSTREAM)
    return (value,)


def _check_seconds(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class _Mode:
    kind: str = "pass"  # pass | discard | hold | cut
    latency: float = 0.0
    cut_bytes: int = 0


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (``SO_LINGER`` on, 0 s)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _fin(sock: socket.socket) -> None:
    """Close ``sock`` politely (FIN)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def unused_port() -> int:
    """A 127.0.0.1 port no one listens on (bound then released: a connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Link:
    """One proxied connection: two sockets, two pumps."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.lock = threading.Lock()
        self.closed = False
        for sock in (client, server):
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.threads = [
            threading.Thread(target=self._pump, args=(client, server, Direction.UPSTREAM),
                             name=f"fault-proxy-{proxy.port}-up", daemon=True),
            threading.Thread(target=self._pump, args=(server, client, Direction.DOWNSTREAM),
                             name=f"fault-proxy-{proxy.port}-down", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def end(self, *, reset: bool) -> None:
        """Close both sockets (RST when ``reset``, else FIN); idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for sock in (self.client, self.server):
                if reset:
                    _reset(sock)
                else:
                    _fin(sock)

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        proxy = self.proxy
        pending: deque[tuple[float, bytes]] = deque()
        src_open = True
        armed: _Mode | None = None  # the cut mode being counted down
        cut_left = 0
        try:
            while not self.closed and not proxy.is_closed:
                mode = proxy.mode(direction)
                now = time.monotonic()
                if mode.kind == "discard" and pending:
                    proxy._count(direction, discarded=sum(len(d) for _t, d in pending))
                    pending.clear()
                sending = mode.kind == "pass" and bool(pending) and pending[0][0] <= now
                reading = src_open and mode.kind != "hold"
                timeout = POLL_INTERVAL
                if mode.kind == "pass" and pending and not sending:
                    timeout = min(timeout, max(0.0, pending[0][0] - now))
                readable, writable, _ = select.select(
                    [src] if reading else [], [dst] if sending else [], [], timeout)
                if writable:
                    self._send_due(dst, direction, pending)
                if not readable:
                    continue
                try:
                    data = src.recv(CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    if proxy.mode(direction).kind == "pass":
                        raise  # propagate the reset
                    data = b""  # a black hole or a cut does not propagate it either
                if not data:  # end of stream from the source
                    src_open = False
                    if proxy.mode(direction).kind == "pass":
                        self._drain(dst, direction, pending)
                        self.end(reset=False)
                        return
                    continue  # a black hole does not propagate the end
                proxy._count(direction, received=len(data))
                mode = proxy.mode(direction)
                if mode.kind == "discard":
                    proxy._count(direction, discarded=len(data))
                elif mode.kind == "hold":  # read just before the hold began: keep it
                    pending.append((time.monotonic(), data))
                elif mode.kind == "cut":
                    if mode is not armed:
                        armed, cut_left = mode, mode.cut_bytes
                    self._drain(dst, direction, pending)
                    head = data[:cut_left]
                    self._send_blocking(dst, head)
                    cut_left -= len(head)
                    proxy._count(direction, forwarded=len(head),
                                 discarded=len(data) - len(head))
                    if len(head) < len(data) or cut_left == 0:
                        with proxy._lock:
                            proxy.cuts.append((direction, mode.cut_bytes))
                        time.sleep(0.05)  # let the head leave before the reset
                        self.end(reset=True)
                        return
                else:
                    pending.append((time.monotonic() + mode.latency, data))
        except (OSError, ValueError):
            # a socket was closed under us (close_all / reset_all / the peer reset)
            self.end(reset=True)

    def _send_due(self, dst: socket.socket, direction: Direction,
                  pending: deque[tuple[float, bytes]]) -> None:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            due, data = pending[0]
            try:
                sent = dst.send(data)
            except BlockingIOError:
                return
            self.proxy._count(direction, forwarded=sent)
            if sent < len(data):
                pending[0] = (due, data[sent:])
                return
            pending.popleft()

    def _drain(self, dst: socket.socket, direction: Direction,
               pending: deque[tuple[float, bytes]]) -> None:
        """Send everything pending now (ignoring latency), bounded in time."""
        while pending:
            _due, data = pending.popleft()
            self._send_blocking(dst, data)
            self.proxy._count(direction, forwarded=len(data))

    def _send_blocking(self, dst: socket.socket, data: bytes, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            if time.monotonic() > deadline:
                raise TimeoutError("the destination does not read")
            _r, writable, _x = select.select([], [dst], [], POLL_INTERVAL)
            if not writable:
                continue
            try:
                view = view[dst.send(view):]
            except BlockingIOError:
                continue


class FaultProxy:
    """A TCP proxy on 127.0.0.1 whose forwarding can be made to fail on demand.

    Use it as a context manager (or call :meth:`close`)::

        with FaultProxy("127.0.0.1", broker_port) as proxy:
            connect_to("127.0.0.1", proxy.port)
            proxy.stall()            # the peer goes silent
            ...

    :param target_host: where to forward to
    :param target_port: the port there
    :param max_lifetime: the proxy closes itself after this many seconds
    :param connect_timeout: bound on connecting to the target, in seconds
    :raises ValueError: a bad port or time
    :raises TypeError: ``target_host`` is not a str
    """

    def __init__(self, target_host: str, target_port: int, *, max_lifetime: float = 120.0,
                 connect_timeout: float = 5.0) -> None:
        if not isinstance(target_host, str) or not target_host:
            raise TypeError(f"target_host must be a non-empty str, not {target_host!r}")
        if (not isinstance(target_port, int) or isinstance(target_port, bool)
                or not 0 < target_port < 65536):
            raise ValueError(f"target_port must be an int in 1..65535, not {target_port!r}")
        if _check_seconds("max_lifetime", max_lifetime) <= 0:
            raise ValueError(f"max_lifetime must be > 0, not {max_lifetime!r}")
        if _check_seconds("connect_timeout", connect_timeout) <= 0:
            raise ValueError(f"connect_timeout must be > 0, not {connect_timeout!r}")
        self.target = (target_host, target_port)
        self.connect_timeout = float(connect_timeout)
        self._lock = threading.Lock()
        self._modes = {Direction.UPSTREAM: _Mode(), Direction.DOWNSTREAM: _Mode()}
        self._links: list[_Link] = []
        self._closed = threading.Event()
        self._released = threading.Event()
        #: Bytes read from each direction's source.
        self.received = {Direction.UPSTREAM: 0, Direction.DOWNSTREAM: 0}
        #: Bytes written to each direction's destination.
        self.forwarded = {Direction.UPSTREAM: 0, Direction.DOWNSTREAM: 0}
        #: Bytes read and dropped (black hole, the tail of a cut chunk).
        self.discarded = {Direction.UPSTREAM: 0, Direction.DOWNSTREAM: 0}
        #: ``(direction, bytes forwarded after the cut() call)`` of each connection cut.
        self.cuts: list[tuple[Direction, int]] = []
        #: Connections accepted so far.
        self.accepted = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(POLL_INTERVAL)
        #: The port the proxy listens on (127.0.0.1).
        self.port: int = self._listener.getsockname()[1]
        self.host = "127.0.0.1"
        self._lifetime = threading.Timer(max_lifetime, self.close)
        self._lifetime.daemon = True
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"fault-proxy-{self.port}-accept")
        self._acceptor.start()
        self._lifetime.start()

    # ------------------------------------------------------------ modes

    def mode(self, direction: Direction) -> _Mode:
        """The current mode of one direction (``UPSTREAM`` or ``DOWNSTREAM``)."""
        return self._modes[direction]

    def _set(self, direction: Direction | str, mode: _Mode) -> None:
        with self._lock:
            for one in _directions(direction):
                self._modes[one] = mode

    def pass_through(self, direction: Direction | str = Direction.BOTH, *,
                     latency: float = 0.0) -> None:
        """Forward ``direction``'s bytes, each chunk ``latency`` seconds late.

        Also ends a stall: bytes held by ``stall(discard=False)`` flow again.
        """
        self._set(direction, _Mode("pass", latency=_check_seconds("latency", latency)))

    def stall(self, direction: Direction | str = Direction.BOTH, *,
              discard: bool = True) -> None:
        """Forward nothing more in ``direction``; the sockets stay open.

        :param discard: read and drop what arrives (else stop reading: the sender's
            socket buffers fill up)
        """
        self._set(direction, _Mode("discard" if discard else "hold"))

    def cut(self, direction: Direction | str = Direction.DOWNSTREAM, nbytes: int = 1) -> None:
        """Forward only the next ``nbytes`` bytes in ``direction`` (the first ``nbytes`` of
        the next chunk, when it is that long), then reset the connection: both sockets get
        an RST.  Each connection counts its own ``nbytes`` from this call on.

        :raises ValueError: ``nbytes`` is not an int >= 0
        """
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise ValueError(f"nbytes must be an int >= 0, not {nbytes!r}")
        self._set(direction, _Mode("cut", cut_bytes=nbytes))

    def close_all(self) -> None:
        """End every current connection with an orderly close (FIN on both sides)."""
        for link in self._take_links():
            link.end(reset=False)

    def reset_all(self) -> None:
        """End every current connection abruptly (RST on both sides)."""
        for link in self._take_links():
            link.end(reset=True)

    # ------------------------------------------------------------ waiting and counting

    def wait_for(self, direction: Direction | str, nbytes: int, timeout: float = 10.0,
                 *, counter: str = "forwarded") -> bool:
        """Wait until ``counter`` (``received``/``forwarded``/``discarded``) of ``direction``
        reaches ``nbytes``; return whether it did within ``timeout`` seconds."""
        directions = _directions(direction)
        if len(directions) != 1:
            raise ValueError("wait_for needs one direction, not 'both'")
        one = directions[0]
        if counter not in ("received", "forwarded", "discarded"):
            raise ValueError(f"counter must be received, forwarded or discarded, not {counter!r}")
        counts: dict[Direction, int] = getattr(self, counter)
        deadline = time.monotonic() + timeout
        while counts[one] < nbytes:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _count(self, direction: Direction, *, received: int = 0, forwarded: int = 0,
               discarded: int = 0) -> None:
        with self._lock:
            self.received[direction] += received
            self.forwarded[direction] += forwarded
            self.discarded[direction] += discarded

    # ------------------------------------------------------------ lifetime

    @property
    def is_closed(self) -> bool:
        """Whether the proxy was closed (or outlived ``max_lifetime``)."""
        return self._closed.is_set()

    @property
    def connections(self) -> int:
        """How many proxied connections are open now."""
        with self._lock:
            return sum(1 for link in self._links if not link.closed)

    def _take_links(self) -> list[_Link]:
        with self._lock:
            links, self._links = self._links, []
        return links

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self.accepted += 1
                if self._closed.is_set():
                    _reset(client)
                    _reset(server)
                    return
                self._links.append(_Link(self, client, server))

    def close(self) -> None:
        """Stop listening, reset every connection and join the threads (bounded).

        Returns once that is done, also when another thread (the lifetime timer) is closing.
        """
        if self._closed.is_set():
            if threading.current_thread() is not self._lifetime:
                self._released.wait(3 * JOIN_TIMEOUT)
            return
        self._closed.set()
        self._lifetime.cancel()
        # the acceptor first: a listener closed while accept() runs keeps listening
        # until that call returns
        if self._acceptor is not threading.current_thread():
            self._acceptor.join(JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            self._listener.close()
        links = self._take_links()
        for link in links:
            link.end(reset=True)
        for link in links:
            link.join(JOIN_TIMEOUT)
        self._released.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<FaultProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} "
                f"up={self._modes[Direction.UPSTREAM]} down={self._modes[Direction.DOWNSTREAM]}"
                f"{' closed' if self.is_closed else ''}>")


class BlackHoleListener:
    """Accepts TCP connections on 127.0.0.1 and never answers (reads and discards).

    :param max_lifetime: it closes itself after this many seconds
    """

    def __init__(self, *, max_lifetime: float = 60.0) -> None:
        if _check_seconds("max_lifetime", max_lifetime) <= 0:
            raise ValueError(f"max_lifetime must be > 0, not {max_lifetime!r}")
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        #: Connections accepted so far.
        self.accepted = 0
        #: Bytes received (and dropped) so far.
        self.received = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.host = "127.0.0.1"
        #: The port it listens on.
        self.port: int = self._listener.getsockname()[1]
        self._lifetime = threading.Timer(max_lifetime, self.close)
        self._lifetime.daemon = True
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"black-hole-{self.port}")
        self._thread.start()
        self._lifetime.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            watched = [self._listener, *self._sockets]
            try:
                readable, _w, _x = select.select(watched, [], [], POLL_INTERVAL)
            except (OSError, ValueError):
                return
            for sock in readable:
                try:
                    if sock is self._listener:
                        conn, _address = sock.accept()
                        conn.setblocking(False)
                        self._sockets.append(conn)
                        self.accepted += 1
                        continue
                    data = sock.recv(CHUNK)
                except BlockingIOError:
                    continue
                except OSError as error:
                    if error.errno in (errno.EBADF,):
                        return
                    data = b""
                if data:
                    self.received += len(data)
                else:  # the client gave up: forget it
                    self._sockets.remove(sock)
                    sock.close()

    @property
    def is_closed(self) -> bool:
        """Whether it was closed (or outlived ``max_lifetime``)."""
        return self._closed.is_set()

    def close(self) -> None:
        """Stop, close every socket (bounded)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._lifetime.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._sockets:
            _fin(sock)
        self._sockets.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class HangingConnectListener:
    """A listener on 127.0.0.1 whose accept queue is full, so a TCP connect to it hangs.

    On loopback the kernel completes connects for a listener nobody accepts on, until its
    backlog is full; with a backlog of 0 and one connection made here, the next SYNs are
    dropped and a client's connect waits for its own ``socket_timeout``.

    :raises OSError: the listener or the filling connection could not be set up
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.bind((self.host, 0))
            self._listener.listen(0)
            #: The port whose connects hang.
            self.port: int = self._listener.getsockname()[1]
            self._filler = socket.create_connection((self.host, self.port), timeout=2.0)
        except BaseException:
            self._listener.close()
            raise

    def close(self) -> None:
        """Close the filling connection and the listener."""
        for sock in (self._filler, self._listener):
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
