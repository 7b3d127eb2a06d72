"""Loop harnesses: run any adapter's event loop from a test, always bounded in time.

Theory of operation
-------------------
The adapter contract (:mod:`amqp_core.io.contract`) says nothing about running
or stopping a loop: only tests need that.  A :class:`LoopHarness` is the
test-side half, one per adapter.  It owns a fresh native loop and the
contract :class:`~amqp_core.io.contract.EventLoop` for it, and offers:

* :meth:`LoopHarness.run` -- run on the calling thread until :meth:`LoopHarness.stop`
  (thread-safe) is called, with a hard deadline: a watchdog thread asks the
  loop to stop when the deadline passes and :class:`LoopTimeout` is raised.
* :meth:`LoopHarness.run_until` -- run until a predicate holds (checked every few
  milliseconds by a timer on the loop, and at once whenever
  :meth:`LoopHarness.notify` is called), raising :class:`LoopTimeout` after
  the timeout.  A stale check timer from an earlier run is ignored (each run
  has a generation number).
* :meth:`LoopHarness.open_connection` -- the adapter's callback connection
  class bound to this loop.
* :meth:`LoopHarness.close` -- let pending callbacks run briefly, then close the
  native loop.

An adapter author implements four small methods (:meth:`~LoopHarness.new_native_loop`,
:meth:`~LoopHarness.run_native`, :meth:`~LoopHarness.stop_native_threadsafe`,
:meth:`~LoopHarness.close_native`), or nothing at all when the adapter's
contract loop also implements :class:`~amqp_core.io.contract.RunnableLoop`
(``run_until_stopped`` / ``stop_soon``): :class:`RunnableLoopHarness` then
does the job.  Every adapter of this project has such a loop, so their
harnesses below only choose how to make and close a fresh native loop, and
import their framework lazily (importing this module imports no framework).

The contract loop is obtained from the adapter's connection class:
``connection_class._create_event_loop(native)`` returns ``(native, loop)``,
exactly what a connection would use.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..io.contract import EventLoop

__all__ = [
    "BUILTIN_HARNESSES",
    "DEFAULT_TIMEOUT",
    "AsyncioHarness",
    "GeventHarness",
    "HarnessFactory",
    "LoopHarness",
    "LoopTimeout",
    "RunnableLoopHarness",
    "SelectHarness",
    "TornadoHarness",
    "TwistedHarness",
    "harness_class_for",
    "make_harness",
]

#: Default bound on one run of a loop, in seconds.
DEFAULT_TIMEOUT = 10.0
#: How often :meth:`LoopHarness.run_until` re-checks its predicate, in seconds.
CHECK_INTERVAL = 0.005
#: Extra time the watchdog of :meth:`LoopHarness.run_until` grants past its own deadline.
_WATCHDOG_GRACE = 2.0

#: Something that builds the harness of an adapter, given the adapter's name
#: (a :class:`LoopHarness` subclass fits).
HarnessFactory = Callable[[str], "LoopHarness"]


class LoopTimeout(AssertionError):
    """A loop was not stopped, or a waited-for condition did not hold, before the deadline."""


class LoopHarness:
    """Runs one adapter's event loop for tests; subclass it for a new adapter.

    Override :meth:`new_native_loop`, :meth:`run_native`,
    :meth:`stop_native_threadsafe` and :meth:`close_native` (or use
    :class:`RunnableLoopHarness`).  Use one harness per test, on one thread.

    :param adapter: the adapter's name (``"select"``, ``"asyncio"`` ...)
    :param connection_class: the adapter's callback connection class (a
        :class:`~amqp_core.adapters.base_connection.BaseConnection` subclass);
        looked up by name through :mod:`amqp_core.plugins` when None
    :raises TypeError: ``adapter`` is not a str, or the class has no ``_create_event_loop``
    """

    #: True when the adapter's loop is process-global (Twisted's reactor) or
    #: changes the process (gevent): run its kit in a process of its own.
    own_process: ClassVar[bool] = False

    def __init__(self, adapter: str, connection_class: type | None = None) -> None:
        if not isinstance(adapter, str) or not adapter:
            raise TypeError(f"adapter must be a non-empty str, not {adapter!r}")
        self.adapter = adapter
        if connection_class is None:
            connection_class = self.find_connection_class()
        if not callable(getattr(connection_class, "_create_event_loop", None)):
            raise TypeError(
                f"adapter {adapter!r}: connection class {connection_class!r} has no "
                "_create_event_loop(custom_ioloop); it must subclass "
                "amqp_core.adapters.base_connection.BaseConnection (or give the harness "
                "the callback connection class)"
            )
        #: The adapter's callback connection class.
        self.connection_class: type = connection_class
        native, loop = self.make_event_loop(self.new_native_loop())
        #: The native loop (what ``custom_ioloop`` takes).
        self.native: Any = native
        #: The contract loop (:class:`amqp_core.io.contract.EventLoop`).
        self.loop: EventLoop = loop
        #: ``threading.get_ident()`` of the thread running the loop (set by :meth:`run`).
        self.loop_thread_id: int | None = None
        self._running = False
        self._closed = False
        self._generation = 0
        self._predicate: Callable[[], Any] | None = None
        self._cleanups: list[Callable[[], Any]] = []

    # ------------------------------------------------------------ to override

    def find_connection_class(self) -> type:
        """The adapter's callback connection class (default: from the plugin registry)."""
        from ..plugins import get_connection_class

        return get_connection_class(self.adapter)

    def new_native_loop(self) -> Any:
        """A fresh native loop for one test (default None: the adapter's own default)."""
        return None

    def make_event_loop(self, native: Any) -> tuple[Any, EventLoop]:
        """``(native, contract_loop)`` for ``native``, as a connection would build them."""
        made: tuple[Any, EventLoop] = self.connection_class._create_event_loop(  # type: ignore[attr-defined]
            native
        )
        return made

    def run_native(self) -> None:
        """Run the native loop on the calling thread until :meth:`stop_native_threadsafe`."""
        raise NotImplementedError

    def stop_native_threadsafe(self) -> None:
        """Make :meth:`run_native` return soon; callable from any thread, and before it runs.

        A stop requested while the loop is not running must make the next
        :meth:`run_native` return at once (stop requests are queued, not lost).
        """
        raise NotImplementedError

    def close_native(self) -> None:
        """Release the native loop (after the last run)."""

    def open_connection(
        self,
        parameters: Any,
        on_open: Callable[[Any], None] | None = None,
        on_open_error: Callable[[Any, BaseException], None] | None = None,
        on_close: Callable[[Any, BaseException], None] | None = None,
    ) -> Any:
        """Open the adapter's callback connection on this harness's loop (pika's signature)."""
        return self.connection_class(
            parameters=parameters,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=self.native,
        )

    # ------------------------------------------------------------ running

    @property
    def is_running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._running

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def stop(self) -> None:
        """Make :meth:`run` return after the current loop turn (thread-safe)."""
        self.stop_native_threadsafe()

    def run(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Run the loop on the calling thread until :meth:`stop` is called.

        :param timeout: hard deadline in seconds
        :raises LoopTimeout: the loop was not stopped within ``timeout``
        :raises RuntimeError: the harness is closed or already running
        :raises ValueError: ``timeout`` is not a positive number
        """
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if self._closed:
            raise RuntimeError(f"the {self.adapter} harness is closed")
        if self._running:
            raise RuntimeError(f"the {self.adapter} harness is already running (not reentrant)")
        expired = threading.Event()

        def on_deadline() -> None:
            expired.set()
            self.stop_native_threadsafe()

        watchdog = threading.Timer(timeout, on_deadline)
        watchdog.daemon = True
        watchdog.name = f"amqp-kit-watchdog-{self.adapter}"
        self._running = True
        self.loop_thread_id = threading.get_ident()
        watchdog.start()
        try:
            self.run_native()
        finally:
            watchdog.cancel()
            self._running = False
        if expired.is_set():
            raise LoopTimeout(
                f"the {self.adapter} loop was not stopped within {timeout:g} s"
            )

    def run_until(
        self,
        predicate: Callable[[], Any],
        timeout: float = DEFAULT_TIMEOUT,
        *,
        what: str | None = None,
        interval: float = CHECK_INTERVAL,
    ) -> Any:
        """Run the loop until ``predicate()`` is true.

        :param predicate: checked every ``interval`` seconds on the loop and on :meth:`notify`
        :param timeout: seconds to wait
        :param what: describes the condition in the timeout message
        :returns: the predicate's (true) value
        :raises LoopTimeout: the predicate did not hold within ``timeout``
        """
        value = predicate()
        if value:
            return value
        deadline = time.monotonic() + timeout
        while True:
            # a stale stop request (say, a second stop() of an earlier run) may end a run
            # early: run again until the predicate holds or the time is up
            self._run_until_once(predicate, deadline, interval)
            value = predicate()
            if value or time.monotonic() >= deadline:
                break
        if not value:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise LoopTimeout(f"{self.adapter}: waited {timeout:g} s for {name}")
        return value

    def _run_until_once(
        self, predicate: Callable[[], Any], deadline: float, interval: float
    ) -> None:
        self._generation += 1
        generation = self._generation
        loop = self.loop

        def tick() -> None:
            if generation != self._generation or not self._running:
                return  # a timer left over from an earlier run
            if predicate() or time.monotonic() >= deadline:
                self._request_stop()
            else:
                loop.call_later(interval, tick)

        self._predicate = predicate
        loop.call_soon(tick)
        try:
            self.run(max(0.01, deadline - time.monotonic()) + _WATCHDOG_GRACE)
        finally:
            self._predicate = None
            self._generation += 1

    def _request_stop(self) -> None:
        """Stop the current run_until run, once (the tick and notify() may both ask)."""
        self._predicate = None
        self._generation += 1
        self.stop_native_threadsafe()

    def notify(self) -> None:
        """Re-check the current :meth:`run_until` predicate now (call it from loop callbacks)."""
        predicate = self._predicate
        if predicate is not None and self._running and predicate():
            self._request_stop()

    def run_for(self, seconds: float) -> None:
        """Run the loop for about ``seconds`` (whatever is scheduled happens meanwhile)."""
        end = time.monotonic() + seconds
        self.run_until(lambda: time.monotonic() >= end, seconds + 5.0, what="the time to pass")

    # ------------------------------------------------------------ closing

    def add_cleanup(self, cleanup: Callable[[], Any]) -> None:
        """Call ``cleanup()`` on the loop's thread at :meth:`close`, before the last run
        (e.g. abort a stream a failed test left open)."""
        if not callable(cleanup):
            raise TypeError(f"cleanup must be callable, not {type(cleanup).__name__}")
        self._cleanups.append(cleanup)

    def close(self) -> None:
        """Run the cleanups, let pending callbacks run for a moment, then close the native
        loop.  Idempotent."""
        if self._closed:
            return
        try:
            cleanups, self._cleanups = self._cleanups, []
            for cleanup in cleanups:
                with contextlib.suppress(Exception):
                    cleanup()
            with contextlib.suppress(LoopTimeout):
                self.run_for(0.05 if cleanups else 0.02)
        finally:
            self._closed = True
            self.close_native()

    def __enter__(self) -> LoopHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<{type(self).__name__} {self.adapter!r} {state} loop={self.loop!r}>"


class RunnableLoopHarness(LoopHarness):
    """A harness for adapters whose contract loop implements ``RunnableLoop``.

    Runs with ``loop.run_until_stopped()``, stops with ``loop.stop_soon()``
    and closes with ``loop.close()`` (or the native loop's ``close()``) when
    there is one.  This is the default for an installed adapter that has no
    harness of its own.

    :raises TypeError: the contract loop has no ``run_until_stopped`` / ``stop_soon``
    """

    def __init__(self, adapter: str, connection_class: type | None = None) -> None:
        super().__init__(adapter, connection_class)
        missing = [name for name in ("run_until_stopped", "stop_soon")
                   if not callable(getattr(self.loop, name, None))]
        if missing:
            raise TypeError(
                f"adapter {adapter!r}: its contract loop {type(self.loop).__name__} does not "
                f"implement RunnableLoop (no {', '.join(missing)}); give the kit a LoopHarness "
                "for it (the pytest_amqp_core_harnesses hook, see docs/writing-an-adapter.md)"
            )

    def run_native(self) -> None:
        """``loop.run_until_stopped()``."""
        self.loop.run_until_stopped()  # type: ignore[attr-defined]

    def stop_native_threadsafe(self) -> None:
        """``loop.stop_soon()``."""
        self.loop.stop_soon()  # type: ignore[attr-defined]

    def close_native(self) -> None:
        """``loop.close()``, else ``native.close()``, when either exists."""
        for target in (self.loop, self.native):
            close = getattr(target, "close", None)
            if callable(close):
                close()
                return


class SelectHarness(RunnableLoopHarness):
    """The ``select`` adapter: a new :class:`~amqp_core.adapters.select_connection.IOLoop`."""

    def find_connection_class(self) -> type:
        from ..adapters.select_connection import SelectConnection

        return SelectConnection

    def new_native_loop(self) -> Any:
        from ..adapters.select_connection import IOLoop

        return IOLoop()


class AsyncioHarness(RunnableLoopHarness):
    """The ``asyncio`` adapter: a new asyncio loop, its executor shut down at close."""

    def new_native_loop(self) -> Any:
        import asyncio

        return asyncio.new_event_loop()

    def close_native(self) -> None:
        loop = self.native
        if loop.is_closed():
            return
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class TornadoHarness(RunnableLoopHarness):
    """The ``tornado`` adapter: a new tornado ``IOLoop`` (on a new asyncio loop), closed after."""

    def new_native_loop(self) -> Any:
        from tornado.ioloop import IOLoop

        return IOLoop(make_current=False)

    def close_native(self) -> None:
        asyncio_loop = self.native.asyncio_loop
        if asyncio_loop.is_closed():
            return
        try:
            asyncio_loop.run_until_complete(asyncio_loop.shutdown_default_executor())
        finally:
            self.native.close(all_fds=False)


class GeventHarness(RunnableLoopHarness):
    """The ``gevent`` adapter: a new loop on the calling thread's hub (run its kit alone)."""

    own_process = True


class TwistedHarness(RunnableLoopHarness):
    """The ``twisted`` adapter: the global reactor, driven turn by turn (run its kit alone).

    The reactor is process-global and never closed here.  The scenarios need
    the callback connection class (a ``BaseConnection`` subclass): when the
    plugin describes ``TwistedProtocolConnection``, ``amqp_adapter_twisted``'s
    ``TwistedConnection`` is used.
    """

    own_process = True

    def find_connection_class(self) -> type:
        from ..plugins import get_connection_class

        described = get_connection_class(self.adapter)
        if callable(getattr(described, "_create_event_loop", None)):
            return described
        package = importlib.import_module(described.__module__.partition(".")[0])
        callback_class = getattr(package, "TwistedConnection", None)
        if not isinstance(callback_class, type):
            raise TypeError(
                f"adapter {self.adapter!r}: {described!r} is not a BaseConnection and "
                f"{package.__name__} exports no TwistedConnection"
            )
        return callback_class

    def close_native(self) -> None:
        """The reactor is global: nothing to close."""


#: Harnesses of the adapters this project knows, as lazy dotted paths.
BUILTIN_HARNESSES: Mapping[str, str] = {
    "select": "amqp_core.testing.harness:SelectHarness",
    "asyncio": "amqp_core.testing.harness:AsyncioHarness",
    "tornado": "amqp_core.testing.harness:TornadoHarness",
    "gevent": "amqp_core.testing.harness:GeventHarness",
    "twisted": "amqp_core.testing.harness:TwistedHarness",
}


def harness_class_for(
    name: str, registered: Mapping[str, HarnessFactory] | None = None
) -> HarnessFactory:
    """The harness factory of adapter ``name``: registered, else built in, else the generic one.

    :param name: the adapter's name
    :param registered: factories registered through the ``pytest_amqp_core_harnesses`` hook
    """
    if registered and name in registered:
        return registered[name]
    path = BUILTIN_HARNESSES.get(name)
    if path is not None:
        from ..hookspecs import resolve_dotted_path

        factory: HarnessFactory = resolve_dotted_path(path)
        return factory
    return RunnableLoopHarness


def make_harness(
    name: str, registered: Mapping[str, HarnessFactory] | None = None
) -> LoopHarness:
    """Build the harness of adapter ``name`` (see :func:`harness_class_for`).

    :raises TypeError: the factory did not return a :class:`LoopHarness`
    """
    harness = harness_class_for(name, registered)(name)
    if not isinstance(harness, LoopHarness):
        raise TypeError(
            f"the harness factory of adapter {name!r} returned {harness!r}, not a LoopHarness"
        )
    return harness
