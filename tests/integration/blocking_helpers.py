"""Helpers for the ``BlockingConnection`` tests: names, parameters, URLs, fake servers.

Theory of operation: the tests that need a TCP proxy between the client and the broker use
:class:`amqp_core.testing.fault_proxy.FaultProxy` (``close_all()`` cuts every stream,
``stall(discard=False)`` freezes them); :func:`amqp_url` names the broker through it.
:class:`FakeServer` accepts connections and does one scripted thing with each (close at once,
send a wrong protocol header, or stay silent), for the connection-error tests.
"""

from __future__ import annotations

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


def amqp_url(port: int, vhost: str = "%2F") -> str:
    """An ``amqp://`` URL (guest/guest) for a broker, or a proxy to one, on 127.0.0.1:``port``."""
    return f"amqp://guest:guest@127.0.0.1:{port}/{vhost}"


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``condition()`` (a test-side check, e.g. rabbitmqctl output) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


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
