"""A small harness for driving ``SelectConnection`` tests: every wait has a hard deadline.

Theory of operation: a :class:`Harness` owns one select ``IOLoop``.  Tests never run the loop
themselves; they ask the harness to *wait* for something.  :meth:`Harness.wait` arms a deadline
timer and a short re-check timer, runs ``ioloop.start()``, and stops the loop as soon as the
condition holds (checked every time a recorded callback fires, and every
:data:`CHECK_INTERVAL` seconds).  If the deadline passes first it raises :class:`LoopTimeout`
listing every callback recorded so far, so a hung test fails fast and says why.

Callbacks given to the library are *recorders* made by :meth:`Harness.cb`: they only store their
arguments under a name.  Assertions are made afterwards, outside the loop, so a failed assertion
is a test failure and never an exception swallowed (and merely logged) by the loop.

:class:`SharedConnection` keeps one connection per test module (opened lazily, reopened when a
test closed it) and hands out fresh channels, which keeps the suite fast without tests seeing
each other's channel state.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import amqp_core as pika
from amqp_core.adapters.select_connection import IOLoop, SelectConnection
from amqp_core.channel import Channel
from amqp_core.parameters import Parameters

#: Default bound on one wait, in seconds.
DEFAULT_TIMEOUT = 10.0
#: How often a waiting loop re-checks its condition even when no recorder fired, in seconds.
CHECK_INTERVAL = 0.01


class LoopTimeout(AssertionError):
    """A waited-for condition did not hold before its deadline."""


def unique(prefix: str = "t") -> str:
    """A name no other test uses (queues, exchanges, consumer tags)."""
    return f"sel-{prefix}-{uuid.uuid4().hex[:12]}"


def params_for(broker: Any, **overrides: Any) -> pika.ConnectionParameters:
    """Connection parameters for the session broker (guest/guest on ``/``), with overrides."""
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "credentials": pika.PlainCredentials("guest", "guest"),
    }
    settings.update(overrides)
    return pika.ConnectionParameters(**settings)


class Harness:
    """One IOLoop plus named recorders of callback arguments.

    :param ioloop: the loop to drive (a new one when omitted)
    """

    def __init__(self, ioloop: IOLoop | None = None) -> None:
        self.ioloop = ioloop if ioloop is not None else IOLoop()
        #: name -> list of argument tuples, one per call
        self.calls: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._condition: Callable[[], Any] | None = None
        self._connections: list[SelectConnection] = []
        self._counter = 0

    # ------------------------------------------------------------ recorders

    def cb(self, name: str) -> Callable[..., None]:
        """A callback that records its arguments under ``name``."""

        def record(*args: Any) -> None:
            self.calls[name].append(args)
            self._check()

        return record

    def fresh(self, prefix: str = "cb") -> str:
        """A recorder name not used yet in this harness."""
        self._counter += 1
        return f"{prefix}#{self._counter}"

    def last(self, name: str) -> tuple[Any, ...]:
        """Arguments of the most recent call of recorder ``name``."""
        return self.calls[name][-1]

    def count(self, name: str) -> int:
        """How many times recorder ``name`` was called."""
        return len(self.calls.get(name, ()))

    # ------------------------------------------------------------ running

    def _check(self) -> None:
        condition = self._condition
        if condition is not None and condition():
            self._condition = None
            self.ioloop.stop()

    def wait(
        self,
        condition: str | Callable[[], Any],
        timeout: float = DEFAULT_TIMEOUT,
        count: int = 1,
    ) -> Any:
        """Run the loop until ``condition`` holds; raise :class:`LoopTimeout` after ``timeout``.

        :param condition: a recorder name (wait for ``count`` calls of it) or a predicate
        :returns: for a name, the argument tuple of its ``count``-th call; for a predicate,
            its (true) value
        """
        if isinstance(condition, str):
            name = condition

            def predicate() -> Any:
                return len(self.calls.get(name, ())) >= count

        else:
            predicate = condition
        value = predicate()
        if not value:
            self._run(predicate, timeout)
            value = predicate()
            if not value:
                what = (
                    condition
                    if isinstance(condition, str)
                    else getattr(condition, "__name__", repr(condition))
                )
                raise LoopTimeout(
                    f"waited {timeout:g} s for {what!r} (count={count}); recorded so far: "
                    f"{dict(self.calls)}"
                )
        if isinstance(condition, str):
            return self.calls[condition][count - 1]
        return value

    def _run(self, predicate: Callable[[], Any], timeout: float) -> None:
        ioloop = self.ioloop

        def on_deadline() -> None:
            self._condition = None
            ioloop.stop()

        poll_timers: list[Any] = []

        def recheck() -> None:
            self._check()
            if self._condition is not None:
                poll_timers[0] = ioloop.call_later(CHECK_INTERVAL, recheck)

        self._condition = predicate
        deadline_timer = ioloop.call_later(timeout, on_deadline)
        poll_timers.append(ioloop.call_later(CHECK_INTERVAL, recheck))
        try:
            ioloop.start()
        finally:
            self._condition = None
            ioloop.remove_timeout(deadline_timer)
            ioloop.remove_timeout(poll_timers[0])

    def run_for(self, seconds: float) -> None:
        """Run the loop for ``seconds`` (callbacks fire meanwhile)."""
        end = time.monotonic() + seconds
        self._run(lambda: time.monotonic() >= end, seconds + 5.0)

    def call(
        self,
        method: Callable[..., Any],
        *args: Any,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> Any:
        """Call a channel method with a recording ``callback=`` and wait for its reply.

        :returns: the callback's single argument (a ``frame.Method`` for most methods)
        """
        name = self.fresh(getattr(method, "__name__", "call"))
        method(*args, callback=self.cb(name), **kwargs)
        reply = self.wait(name, timeout=timeout)
        return reply[0] if len(reply) == 1 else reply

    # ------------------------------------------------------------ connections

    def connect(
        self,
        params: Parameters,
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        expect_open: bool = True,
    ) -> SelectConnection:
        """Open a ``SelectConnection`` on this loop and wait until it opened (or failed).

        Recorders: ``NAME.open``, ``NAME.open_error``, ``NAME.close``.

        :raises AssertionError: ``expect_open`` and the connection failed to open
        """
        name = name or self.fresh("conn")
        conn = SelectConnection(
            params,
            on_open_callback=self.cb(f"{name}.open"),
            on_open_error_callback=self.cb(f"{name}.open_error"),
            on_close_callback=self.cb(f"{name}.close"),
            custom_ioloop=self.ioloop,
        )
        self._connections.append(conn)
        self.wait(
            lambda: self.calls.get(f"{name}.open") or self.calls.get(f"{name}.open_error"),
            timeout=timeout,
        )
        if expect_open and not self.calls.get(f"{name}.open"):
            raise AssertionError(f"connection failed to open: {self.calls[f'{name}.open_error']}")
        return conn

    def create_connection(self, configs: Sequence[Parameters], name: str, **kwargs: Any) -> Any:
        """``SelectConnection.create_connection`` on this loop; ``on_done`` records under ``name``.

        A connection it produces is closed by :meth:`close`, even when the test failed.

        :returns: the workflow
        """
        record = self.cb(name)

        def on_done(result: Any) -> None:
            if isinstance(result, SelectConnection):
                self._connections.append(result)
            record(result)

        return SelectConnection.create_connection(
            configs, on_done, custom_ioloop=self.ioloop, **kwargs
        )

    def channel(self, conn: SelectConnection, channel_number: int | None = None) -> Channel:
        """Open a channel on ``conn`` and wait for it."""
        name = self.fresh("channel")
        conn.channel(channel_number=channel_number, on_open_callback=self.cb(name))
        (channel,) = self.wait(name)
        assert isinstance(channel, Channel)
        return channel

    def close_connection(self, conn: SelectConnection, timeout: float = 5.0) -> None:
        """Close ``conn`` if it is open or opening, and wait until it is closed."""
        if conn.is_closed:
            return
        if not conn.is_closing:
            conn.close()
        self.wait(lambda: conn.is_closed, timeout=timeout)

    def close(self) -> None:
        """Close every connection made with :meth:`connect`, then the loop."""
        try:
            for conn in self._connections:
                if not conn.is_closed:
                    try:
                        self.close_connection(conn)
                    except Exception:
                        pass
            # let closed transports run their final connection_lost callbacks
            self.run_for(0.05)
        finally:
            self.ioloop.close()


def wait_message_count(
    h: Harness, channel: Channel, queue: str, expected: int, timeout: float = 5.0
) -> None:
    """Poll a passive declare until ``queue`` holds ``expected`` ready messages.

    RabbitMQ enqueues published messages asynchronously, so a declare right after a publish
    may not count it yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        count = h.call(channel.queue_declare, queue, passive=True).method.message_count
        if count == expected:
            return
        if time.monotonic() >= deadline:
            raise LoopTimeout(f"{queue} holds {count} messages, not {expected}, after {timeout} s")
        h.run_for(0.02)


class SharedConnection:
    """One connection per test module; fresh channels per test.

    :param broker: the session broker fixture
    """

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.h = Harness()
        self._conn: SelectConnection | None = None

    @property
    def conn(self) -> SelectConnection:
        """The shared connection, reopened when a previous test closed it."""
        if self._conn is None or not self._conn.is_open:
            self._conn = self.h.connect(params_for(self.broker))
        return self._conn

    def channels(self) -> Iterator[Channel]:
        """Fixture body: yield a fresh channel, close it afterwards if still open."""
        channel = self.h.channel(self.conn)
        yield channel
        if channel.is_open:
            name = self.h.fresh("chclose")
            channel.add_on_close_callback(self.h.cb(name))
            channel.close()
            try:
                self.h.wait(name, timeout=5.0)
            except LoopTimeout:
                self._conn = None  # something is wrong with it: start afresh next time

    def close(self) -> None:
        """Close the loop and its connections."""
        self.h.close()
