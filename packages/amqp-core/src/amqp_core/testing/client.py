"""Driving an adapter's callback API from a test: recorders and bounded waits.

Theory of operation: a :class:`KitClient` wraps one :class:`~amqp_core.testing.harness.LoopHarness`.
Tests never run the loop themselves; they *wait* for something
(:meth:`KitClient.wait`), which runs the loop until the condition holds or
raises :class:`~amqp_core.testing.harness.LoopTimeout` naming what was
recorded so far.  Callbacks handed to the library are *recorders*
(:meth:`KitClient.cb`): they only store their arguments under a name and
nudge the harness to re-check the condition, so a wait ends as soon as its
callback fired.  Assertions are made afterwards, outside the loop: a failed
assertion is a test failure, never an exception the loop merely logs.

Connections opened through :meth:`KitClient.connect` are closed by
:meth:`KitClient.close` (the fixture does it), even when the test failed.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .harness import DEFAULT_TIMEOUT, LoopHarness, LoopTimeout

__all__ = ["KitClient", "unique_name"]


def unique_name(prefix: str = "kit") -> str:
    """A queue / exchange / consumer-tag name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class KitClient:
    """Named recorders of callback arguments plus waits over one loop harness.

    :param harness: the loop to drive
    """

    def __init__(self, harness: LoopHarness) -> None:
        if not isinstance(harness, LoopHarness):
            raise TypeError(f"harness must be a LoopHarness, not {type(harness).__name__}")
        self.harness = harness
        #: name -> one argument tuple per call
        self.calls: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.connections: list[Any] = []
        self._counter = 0

    # ------------------------------------------------------------ recorders

    def cb(self, name: str) -> Callable[..., None]:
        """A callback that records its arguments under ``name``."""

        def record(*args: Any) -> None:
            self.calls[name].append(args)
            self.harness.notify()

        record.__name__ = f"record_{name}"
        return record

    def fresh(self, prefix: str = "cb") -> str:
        """A recorder name not used yet."""
        self._counter += 1
        return f"{prefix}#{self._counter}"

    def count(self, name: str) -> int:
        """How many times recorder ``name`` was called."""
        return len(self.calls.get(name, ()))

    def last(self, name: str) -> tuple[Any, ...]:
        """The arguments of the latest call of recorder ``name``."""
        return self.calls[name][-1]

    # ------------------------------------------------------------ waiting

    def wait(
        self, condition: str | Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, count: int = 1
    ) -> Any:
        """Run the loop until ``condition`` holds.

        :param condition: a recorder name (wait for ``count`` calls) or a predicate
        :returns: the ``count``-th argument tuple of the recorder, or the predicate's value
        :raises LoopTimeout: not within ``timeout`` seconds (the message lists the recordings)
        """
        if isinstance(condition, str):
            name = condition

            def predicate() -> Any:
                return len(self.calls.get(name, ())) >= count

            what = f"{count} call(s) of {name!r}"
        else:
            predicate = condition
            what = getattr(condition, "__name__", repr(condition))
        try:
            value = self.harness.run_until(predicate, timeout, what=what)
        except LoopTimeout as error:
            raise LoopTimeout(f"{error}; recorded so far: {dict(self.calls)!r}") from None
        if isinstance(condition, str):
            return self.calls[condition][count - 1]
        return value

    def run_for(self, seconds: float) -> None:
        """Run the loop for ``seconds``."""
        self.harness.run_for(seconds)

    def call(self, method: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT,
             **kwargs: Any) -> Any:
        """Call a channel method with a recording ``callback=`` and wait for the reply.

        :returns: the callback's argument (a ``frame.Method`` for most methods)
        """
        name = self.fresh(getattr(method, "__name__", "call"))
        method(*args, callback=self.cb(name), **kwargs)
        reply = self.wait(name, timeout=timeout)
        return reply[0] if len(reply) == 1 else reply

    # ------------------------------------------------------------ connections

    def open(self, parameters: Any, name: str | None = None) -> Any:
        """Start opening a connection (recorders ``NAME.open``, ``NAME.open_error``,
        ``NAME.close``) without waiting; the connection gets ``kit_name``."""
        name = name or self.fresh("conn")
        connection = self.harness.open_connection(
            parameters,
            on_open=self.cb(f"{name}.open"),
            on_open_error=self.cb(f"{name}.open_error"),
            on_close=self.cb(f"{name}.close"),
        )
        connection.kit_name = name
        self.connections.append(connection)
        return connection

    def connect(self, parameters: Any, name: str | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Open a connection and wait until it is open.

        :raises AssertionError: it failed to open (the error is in the message)
        """
        connection = self.open(parameters, name)
        name = connection.kit_name
        self.wait(lambda: self.calls.get(f"{name}.open") or self.calls.get(f"{name}.open_error"),
                  timeout=timeout)
        if not self.calls.get(f"{name}.open"):
            raise AssertionError(
                f"the connection failed to open: {self.calls[f'{name}.open_error']!r}"
            )
        return connection

    def wait_open_error(self, connection: Any, timeout: float = DEFAULT_TIMEOUT) -> BaseException:
        """Wait for the connection's open-error callback; return its exception."""
        _conn, error = self.wait(f"{connection.kit_name}.open_error", timeout=timeout)
        assert isinstance(error, BaseException), error
        return error

    def wait_closed(self, connection: Any, timeout: float = DEFAULT_TIMEOUT) -> BaseException:
        """Wait for the connection's close callback; return its exception."""
        _conn, error = self.wait(f"{connection.kit_name}.close", timeout=timeout)
        assert isinstance(error, BaseException), error
        return error

    def channel(self, connection: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Open a channel on ``connection`` and wait for it."""
        name = self.fresh("channel")
        connection.channel(on_open_callback=self.cb(name))
        (channel,) = self.wait(name, timeout=timeout)
        return channel

    def close_connection(self, connection: Any, timeout: float = 5.0) -> None:
        """Close ``connection`` if it is open or opening, and wait until it is closed."""
        if connection.is_closed:
            return
        if not connection.is_closing:
            connection.close()
        self.wait(lambda: connection.is_closed, timeout=timeout)

    def close(self) -> None:
        """Close every connection opened here (bounded), then let the streams finish."""
        errors: list[BaseException] = []
        for connection in self.connections:
            try:
                self.close_connection(connection)
            except Exception as error:  # keep closing the others
                errors.append(error)
        if self.connections and not self.harness.is_closed:
            deadline = time.monotonic() + 0.05
            self.harness.run_until(lambda: time.monotonic() >= deadline, 5.0)
        if errors:
            raise errors[0]
