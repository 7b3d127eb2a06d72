"""The tornado tests' harness: a tornado IOLoop run only inside bounded waits.

Theory of operation: tests never run an IOLoop open-ended.  :class:`TornadoHarness` owns one
tornado ``IOLoop`` (not made current, so tests leave no loop behind) and runs it only inside
:meth:`TornadoHarness.wait`, which stops it when a condition holds (re-checked every few
milliseconds) or fails the test after a deadline.  Callbacks given to the library are recorders
(:meth:`TornadoHarness.cb`), so assertions run outside the loop.  At the end every connection
is closed, the loop runs until their sockets are really closed, and the IOLoop is closed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

import amqp_core as pika
from amqp_adapter_tornado import TornadoConnection
from amqp_core.channel import Channel

#: Default bound on one wait, in seconds.
DEFAULT_TIMEOUT = 15.0
#: How often a waiting loop re-checks its condition, in seconds.
CHECK_INTERVAL = 0.005


class LoopTimeout(AssertionError):
    """A waited-for condition did not hold before its deadline."""


class TornadoHarness:
    """One tornado IOLoop, named recorders, and the connections opened on it.

    :param ioloop: the loop to drive (a new one, not made current, when omitted)
    """

    def __init__(self, ioloop: IOLoop | None = None) -> None:
        self.ioloop = ioloop if ioloop is not None else IOLoop(make_current=False)
        self.calls: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.connections: list[TornadoConnection] = []
        self._counter = 0

    def cb(self, name: str) -> Callable[..., None]:
        """A callback recording its arguments under ``name``."""

        def record(*args: Any) -> None:
            self.calls[name].append(args)

        return record

    def fresh(self, prefix: str = "cb") -> str:
        """A recorder name not used yet."""
        self._counter += 1
        return f"{prefix}#{self._counter}"

    def wait(self, condition: str | Callable[[], Any], timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run the loop until ``condition`` (a recorder name, or a predicate) holds.

        :returns: the recorder's first argument tuple, or the predicate's value
        :raises LoopTimeout: not within ``timeout`` seconds
        """
        if isinstance(condition, str):
            name = condition

            def predicate() -> Any:
                return self.calls.get(name)

        else:
            predicate = condition
        value = predicate()
        if not value:
            ioloop = self.ioloop
            deadline = time.monotonic() + timeout
            timers: list[Any] = []

            def check() -> None:
                if predicate() or time.monotonic() >= deadline:
                    ioloop.stop()
                else:
                    timers[0] = ioloop.call_later(CHECK_INTERVAL, check)

            timers.append(ioloop.call_later(0, check))
            try:
                ioloop.start()
            finally:
                ioloop.remove_timeout(timers[0])
            value = predicate()
            if not value:
                what = condition if isinstance(condition, str) else getattr(
                    condition, "__name__", repr(condition))
                raise LoopTimeout(f"waited {timeout:g} s for {what!r}; recorded: "
                                  f"{dict(self.calls)}")
        if isinstance(condition, str):
            return self.calls[condition][0]
        return value

    def run_for(self, seconds: float) -> None:
        """Run the loop for ``seconds``."""
        end = time.monotonic() + seconds
        self.wait(lambda: time.monotonic() >= end, seconds + 5.0)

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a channel method with a recording ``callback=`` and wait for its reply."""
        name = self.fresh(getattr(method, "__name__", "call"))
        method(*args, callback=self.cb(name), **kwargs)
        reply = self.wait(name)
        return reply[0] if len(reply) == 1 else reply

    def connect(self, params: pika.ConnectionParameters, name: str | None = None,
                ioloop: Any = None) -> TornadoConnection:
        """Open a TornadoConnection (on this harness's IOLoop unless ``ioloop`` is given) and
        wait until it is open.  Recorders: ``NAME.open``, ``NAME.open_error``, ``NAME.close``."""
        name = name or self.fresh("conn")
        conn = TornadoConnection(
            params,
            on_open_callback=self.cb(f"{name}.open"),
            on_open_error_callback=self.cb(f"{name}.open_error"),
            on_close_callback=self.cb(f"{name}.close"),
            custom_ioloop=self.ioloop if ioloop is None else ioloop,
        )
        self.connections.append(conn)
        self.wait(lambda: self.calls.get(f"{name}.open") or self.calls.get(f"{name}.open_error"))
        assert self.calls.get(f"{name}.open"), self.calls.get(f"{name}.open_error")
        return conn

    def channel(self, conn: TornadoConnection) -> Channel:
        """Open a channel on ``conn`` and wait for it."""
        name = self.fresh("channel")
        conn.channel(on_open_callback=self.cb(name))
        (channel,) = self.wait(name)
        assert isinstance(channel, Channel)
        return channel

    def close_connection(self, conn: TornadoConnection, timeout: float = 10.0) -> None:
        """Close ``conn`` if needed and wait until it is closed and its socket is gone."""
        if not conn.is_closed:
            if not conn.is_closing:
                conn.close()
            self.wait(lambda: conn.is_closed, timeout)
        self.wait_streams_closed([conn])

    def wait_streams_closed(self, connections: list[TornadoConnection] | None = None) -> None:
        """Run the loop until the connections' sockets are closed (default: all of them)."""
        chosen = self.connections if connections is None else connections
        self.wait(lambda: all(c.event_loop.open_streams == 0  # type: ignore[attr-defined]
                              for c in chosen), 10.0)

    def close(self) -> None:
        """Close every connection, wait for the sockets, close the IOLoop."""
        try:
            for conn in self.connections:
                if not conn.is_closed:
                    try:
                        self.close_connection(conn)
                    except Exception:  # best effort at teardown
                        pass
            self.wait_streams_closed()
        finally:
            self.ioloop.close()
