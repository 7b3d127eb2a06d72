"""Helpers for the ``BlockingConnection`` tests: names, parameters, a TCP proxy, fake servers.

Theory of operation: :class:`TcpProxy` sits between a client and the broker on 127.0.0.1 so a
test can cut every stream (:meth:`TcpProxy.drop`), or stop forwarding while keeping the sockets
open (:meth:`TcpProxy.freeze`, which looks like a dead peer to heartbeats).  It runs one thread
around one selector; every wait in it is bounded, and :meth:`TcpProxy.close` stops it.
:class:`FakeServer` accepts connections and does one scripted thing with each (close at once,
send a wrong protocol header, or stay silent), for the connection-error tests.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
import uuid
from typing import Any

import amqp_core as pika


def unique(prefix: str = "t") -> str:
    """A name no other test uses (queues, exchanges)."""
    return f"blk-{prefix}-{uuid.uuid4().hex[:12]}"


def params_for(broker: Any, **overrides: Any) -> pika.ConnectionParameters:
    """Parameters for the session broker (guest/guest on ``/``), with overrides."""
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "credentials": pika.PlainCredentials("guest", "guest"),
    }
    settings.update(overrides)
    return pika.ConnectionParameters(**settings)


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``condition()`` (a test-side check, e.g. rabbitmqctl output) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``(host, target_port)``; can cut or freeze the streams.

    :param host: the target host
    :param target_port: the target port
    """

    def __init__(self, host: str, target_port: int) -> None:
        self._target = (host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._drop_requested = False
        self._frozen = False
        self._stop = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def url(self, vhost: str = "%2F") -> str:
        """An ``amqp://`` URL for the broker through this proxy."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def drop(self) -> None:
        """Close every forwarded stream (both sides); new connections are still accepted."""
        with self._lock:
            self._drop_requested = True

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) forwarding bytes while keeping the streams open."""
        self._frozen = frozen

    @property
    def connections(self) -> int:
        """How many client streams are open right now."""
        with self._lock:
            return len(self._peers) // 2

    def close(self) -> None:
        """Stop the proxy and close every socket."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    if self._drop_requested:
                        self._drop_requested = False
                        self._close_all_peers()
                for key, _mask in self._selector.select(0.05):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif not self._frozen:
                        self._forward(key.fileobj)  # type: ignore[arg-type]
                if self._frozen:
                    time.sleep(0.01)  # frozen streams stay readable: do not spin
        finally:
            with self._lock:
                self._close_all_peers()
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._peers[client] = upstream
            self._peers[upstream] = client
            self.accepted += 1
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        with self._lock:
            other = self._peers.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                other.setblocking(True)
                other.settimeout(5)
                other.sendall(data)
                other.setblocking(False)
                return
        except OSError:
            pass
        with self._lock:
            self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        other = self._peers.pop(sock, None)
        for one in (sock, other):
            if one is None:
                continue
            self._peers.pop(one, None)
            try:
                self._selector.unregister(one)
            except (KeyError, ValueError):
                pass
            one.close()

    def _close_all_peers(self) -> None:
        for sock in list(self._peers):
            if sock in self._peers:
                self._close_pair(sock)


class FakeServer:
    """Accepts TCP connections on 127.0.0.1 and misbehaves in one scripted way.

    :param behaviour: ``"close"`` (close at once), ``"silent"`` (accept, never answer) or
        ``"bad-header"`` (answer with an AMQP 1.0 protocol header, then close)
    """

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._held:
            sock.close()
        self._listener.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if self.behaviour == "silent":
                self._held.append(client)
                continue
            if self.behaviour == "bad-header":
                try:
                    client.settimeout(2)
                    client.recv(8)
                    client.sendall(b"AMQP\x01\x01\x00\x0a")
                except OSError:
                    pass
            client.close()
