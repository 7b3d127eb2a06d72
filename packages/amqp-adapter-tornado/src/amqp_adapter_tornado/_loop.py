"""The amqp_core loop contract over a tornado ``IOLoop``.

Theory of operation
-------------------
Since tornado 5 every ``IOLoop`` runs on an asyncio event loop, exposed as
its documented ``asyncio_loop`` attribute; tornado 6 has no other kind.
:class:`TornadoEventLoop` implements :class:`amqp_core.io.contract.EventLoop`
with tornado's API where tornado has one, and with that asyncio loop where
tornado only offers a slower wrapper of the same call:

* ``call_soon_threadsafe`` is ``IOLoop.add_callback``, which tornado documents
  as safe to call from any thread (it wakes the loop when called from another
  thread, and stays a plain ``call_soon`` on the loop's own thread).  It is
  the heart of ``add_callback_threadsafe``.
* ``call_soon`` / ``call_later`` / ``time`` are the asyncio loop's: tornado's
  ``add_callback`` returns no handle to cancel, and its ``call_later`` wraps
  every callback in two more calls; both land in the same asyncio queues, so
  the order of callbacks is the asyncio loop's either way.  (tornado's own
  ``IOLoop.time()`` is wall-clock time, not the clock ``call_later`` uses.)
* ``getaddrinfo`` runs in amqp_core's shared resolver threads
  (:func:`amqp_core.io.resolver.threaded_getaddrinfo`) and is delivered
  through ``add_callback``.
* ``connect_stream`` builds the stream with :mod:`amqp_core.io.fd_streams`,
  watching the socket with tornado's own ``add_handler`` / ``update_handler``
  / ``remove_handler`` through :class:`_HandlerWatcher`.  That keeps every
  socket registered where tornado can see it (``IOLoop.close(all_fds=True)``
  closes it, and tornado's Windows selector thread serves it), and it costs
  two Python calls per readiness event: a read event carries up to 128 KiB, so
  profiled in ``benchmarks/tornado_bench.py``'s consume scenario this
  dispatch is well under 1% of the client's time.  The fd stream
  writes once per loop turn and reads in 128 KiB chunks, which is where the
  speed over pika's tornado adapter comes from.
* The stream's protocol is a :class:`_Relay` whose ``data_received`` (and the
  other hot callbacks) ARE the driver's bound methods, so the transport calls
  the driver directly; only ``connection_made`` / ``connection_lost`` pass
  through it, to count the streams still open
  (:meth:`TornadoEventLoop.wait_streams_closed` waits until there are none).

Nothing here is tied to the thread that created the object: the IOLoop may run
in any one thread, and other asyncio code may share its loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from amqp_core.io import fd_streams
from amqp_core.io.contract import (
    Callback,
    OnResolved,
    OnStreamDone,
    StreamProtocol,
    StreamTransport,
    TimerHandle,
)
from amqp_core.io.resolver import threaded_getaddrinfo

__all__ = ["TornadoEventLoop"]

_READ = IOLoop.READ
_WRITE = IOLoop.WRITE


class _Watch:
    """The reader and writer callbacks of one file descriptor, and the mask registered."""

    __slots__ = ("events", "reader", "writer")

    def __init__(self) -> None:
        self.reader: Callback | None = None
        self.writer: Callback | None = None
        self.events = 0


class _HandlerWatcher:
    """An :class:`amqp_core.io.fd_streams.FdWatchingLoop` over tornado's ``add_handler``.

    One tornado handler per file descriptor dispatches to the reader and the
    writer that fd_streams installs; the handler is removed when neither is
    left, so a closed fd number can be reused at once.
    """

    __slots__ = ("_ioloop", "_watches", "call_soon")

    def __init__(self, ioloop: IOLoop, call_soon: Callable[[Callback], TimerHandle]) -> None:
        self._ioloop = ioloop
        self._watches: dict[int, _Watch] = {}
        #: Run a callback on the next loop turn (the asyncio loop's ``call_soon``).
        self.call_soon = call_soon

    def _dispatch(self, fd: int, events: int) -> None:
        watch = self._watches.get(fd)
        if watch is None:
            return
        if events & _READ:
            reader = watch.reader
            if reader is not None:
                reader()
        if events & _WRITE:
            # the reader may have removed the writer (or the whole watch) already
            writer = watch.writer
            if writer is not None and self._watches.get(fd) is watch:
                writer()

    def _sync(self, fd: int, watch: _Watch) -> None:
        events = (_READ if watch.reader is not None else 0) | (
            _WRITE if watch.writer is not None else 0
        )
        if events == watch.events:
            return
        if not events:
            del self._watches[fd]
            self._ioloop.remove_handler(fd)
        elif not watch.events:
            self._ioloop.add_handler(fd, self._dispatch, events)
        else:
            self._ioloop.update_handler(fd, events)
        watch.events = events

    def _watch(self, fd: int) -> _Watch:
        watch = self._watches.get(fd)
        if watch is None:
            watch = self._watches[fd] = _Watch()
        return watch

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (replacing a previous reader)."""
        watch = self._watch(fd)
        watch.reader = callback
        self._sync(fd, watch)

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` for reading (no-op if not watched)."""
        watch = self._watches.get(fd)
        if watch is not None and watch.reader is not None:
            watch.reader = None
            self._sync(fd, watch)

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is writable (replacing a previous writer)."""
        watch = self._watch(fd)
        watch.writer = callback
        self._sync(fd, watch)

    def remove_writer(self, fd: int) -> None:
        """Stop watching ``fd`` for writing (no-op if not watched)."""
        watch = self._watches.get(fd)
        if watch is not None and watch.writer is not None:
            watch.writer = None
            self._sync(fd, watch)

    @property
    def watched(self) -> int:
        """How many file descriptors are watched right now."""
        return len(self._watches)


class _Relay:
    """The protocol the fd stream drives: the driver's own methods, plus a note when the
    stream is gone (see the module comment)."""

    __slots__ = (
        "_owner", "_protocol", "data_received", "eof_received", "pause_writing",
        "resume_writing", "transport",
    )

    def __init__(self, protocol: StreamProtocol, owner: TornadoEventLoop) -> None:
        self._protocol = protocol
        self._owner = owner
        self.transport: StreamTransport | None = None
        self.data_received = protocol.data_received
        self.eof_received = protocol.eof_received
        self.pause_writing = protocol.pause_writing
        self.resume_writing = protocol.resume_writing

    def connection_made(self, transport: StreamTransport) -> None:
        self.transport = transport
        self._owner._streams.add(self)
        self._protocol.connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._owner._stream_lost(self)


class TornadoEventLoop:
    """The :class:`amqp_core.io.contract.EventLoop` over a tornado ``IOLoop``.

    Also a :class:`~amqp_core.io.contract.RunnableLoop` for tests.

    :param ioloop: the tornado IOLoop to run on
    :raises TypeError: ``ioloop`` is not a ``tornado.ioloop.IOLoop`` running on asyncio
    """

    __slots__ = ("_all_closed", "_asyncio_loop", "_streams", "_watcher", "ioloop")

    def __init__(self, ioloop: IOLoop) -> None:
        if not isinstance(ioloop, IOLoop):
            raise TypeError(f"ioloop must be a tornado.ioloop.IOLoop, not {type(ioloop).__name__}")
        asyncio_loop = getattr(ioloop, "asyncio_loop", None)
        if not isinstance(asyncio_loop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"ioloop must be a tornado IOLoop running on asyncio (tornado >= 5), "
                f"not {type(ioloop).__name__}"
            )
        #: The native tornado IOLoop.
        self.ioloop = ioloop
        self._asyncio_loop = asyncio_loop
        self._watcher = _HandlerWatcher(ioloop, asyncio_loop.call_soon)
        self._streams: set[_Relay] = set()
        self._all_closed: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<TornadoEventLoop {self.ioloop!r}>"

    @property
    def asyncio_loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the IOLoop runs on."""
        return self._asyncio_loop

    def time(self) -> float:
        """Monotonic time in seconds: the asyncio loop's clock, which :meth:`call_later` uses."""
        return self._asyncio_loop.time()

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next loop turn (loop thread only)."""
        return self._asyncio_loop.call_soon(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` on the loop's thread; callable from any thread.

        This is tornado's ``IOLoop.add_callback``.  Like it, a callback added
        after the IOLoop was closed is dropped silently.
        """
        self.ioloop.add_callback(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds (a negative delay counts as 0).

        The handle's ``cancel()`` cancels it, and so does tornado's
        ``IOLoop.remove_timeout(handle)``.
        """
        return self._asyncio_loop.call_later(max(0.0, delay), callback)

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve in amqp_core's resolver threads; ``on_done`` runs on the loop's thread."""
        return threaded_getaddrinfo(
            self.ioloop.add_callback, host, port, family, socktype, proto, flags, on_done
        )

    def connect_stream(
        self,
        sockaddr: tuple[Any, ...],
        family: int,
        protocol: StreamProtocol,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        on_done: OnStreamDone,
    ) -> TimerHandle:
        """Open a TCP (optionally TLS) stream watched through ``IOLoop.add_handler``.

        See :func:`amqp_core.io.fd_streams.connect_stream`.
        """
        return fd_streams.connect_stream(
            self._watcher, sockaddr, family, _Relay(protocol, self), ssl_context,
            server_hostname, on_done,
        )

    # ------------------------------------------------------------ stream bookkeeping

    @property
    def watched_fds(self) -> int:
        """How many sockets opened through this object the IOLoop still watches."""
        return self._watcher.watched

    @property
    def open_streams(self) -> int:
        """How many streams opened through this object are not closed yet."""
        return len(self._streams)

    def _stream_lost(self, relay: _Relay) -> None:
        self._streams.discard(relay)
        if not self._streams and self._all_closed is not None:
            waiter, self._all_closed = self._all_closed, None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_streams_closed(self, timeout: float = 5.0) -> None:
        """Wait until every stream opened here has closed its socket.

        Run it on the IOLoop (``ioloop.run_sync(loop.wait_streams_closed)``, or
        ``await`` it in a coroutine running there).  Streams still open after
        ``timeout`` seconds are aborted.
        """
        if not self._streams:
            return
        if self._all_closed is None or self._all_closed.done():
            self._all_closed = self._asyncio_loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._all_closed), timeout)
        except TimeoutError:
            for relay in list(self._streams):
                if relay.transport is not None:
                    relay.transport.abort()
            if self._streams and self._all_closed is not None:
                await asyncio.wait_for(asyncio.shield(self._all_closed), 1.0)

    # ------------------------------------------------------------ RunnableLoop (tests)

    def run_until_stopped(self) -> None:
        """Test-only: ``ioloop.start()`` until :meth:`stop_soon`."""
        self.ioloop.start()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return."""
        self.ioloop.add_callback(self.ioloop.stop)
