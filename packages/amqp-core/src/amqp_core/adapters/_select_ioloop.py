"""The selectors-based I/O loop behind ``SelectConnection``, and its :class:`EventLoop`.

Theory of operation
-------------------
One thread runs :meth:`IOLoop.start`, which repeats one *iteration* until
:meth:`IOLoop.stop` was called:

1. Choose the select timeout: 0 when soon-callbacks are waiting, else the time
   to the nearest timer, else ``None`` (block until I/O or a wake-up).
2. One ``selector.select(timeout)``; each ready file descriptor is dispatched
   to its watcher (a pika-style ``handler(fd, events)``, or a reader/writer
   pair as used by :mod:`amqp_core.io.fd_streams`).
3. Run the soon-callbacks that were queued before this step began; callbacks
   queued while they run wait for the next iteration, so I/O is never starved.
4. Run the timers that are due and were created before this iteration began
   (a timer made now with delay 0 runs after the soon-callbacks queued before
   it, as in asyncio, and a timer re-arming itself cannot starve I/O).

Timers are ``(deadline, sequence, handle)`` tuples in a heap (tuples compare in
C; the sequence keeps equal deadlines FIFO).  Cancelling only clears the
handle's callback; dead entries are dropped when they reach the top, and the
heap is compacted in place when more than half of it is dead.

Soon-callbacks live in a deque.  ``add_callback_threadsafe`` is the only method
other threads may call: ``deque.append`` is atomic, and one byte sent on a
socketpair wakes the loop -- but only when the loop may be blocked in
``select`` and no wake-up byte is already pending, so callbacks added from the
loop's own thread cost no system call.  The ordering argument: the loop sets
``_polling`` *before* it looks at the deque to choose its timeout, and clears
the pending flag before it runs the deque, so an append is always either seen
by the timeout check or followed by a byte.

Watchers: a file descriptor has at most one :class:`_Watch`, stored as the
selector key's data.  Removing a watcher clears its callbacks, so events
already returned by ``select`` for it in the same iteration are dropped.
The selectors module reports error and hang-up conditions as readable and/or
writable; :attr:`IOLoop.ERROR` is accepted for pika compatibility but errors
surface through READ/WRITE (and then as an exception from the I/O call).

Callbacks, handlers and timers that raise are logged (``logging.exception``)
and the loop continues.
"""

from __future__ import annotations

import collections
import heapq
import logging
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from amqp_core.io import fd_streams
from amqp_core.io.contract import (
    Callback,
    OnResolved,
    OnStreamDone,
    StreamProtocol,
    TimerHandle,
)
from amqp_core.io.loop_checks import SoonHandle, check_callable, check_events, check_fd
from amqp_core.io.resolver import threaded_getaddrinfo

__all__ = ["IOLoop", "SelectEventLoop"]

LOGGER = logging.getLogger(__name__)

_EVENT_READ: Final = selectors.EVENT_READ
_EVENT_WRITE: Final = selectors.EVENT_WRITE

#: pika's event constants (poll(2) values, like pika's ``PollEvents``).
_READ: Final = 0x01
_WRITE: Final = 0x04
_ERROR: Final = 0x08
_ALL_EVENTS: Final = _READ | _WRITE | _ERROR

# selectors mask (0..3) -> pika mask
_SEL_TO_PIKA: Final = (0, _READ, _WRITE, _READ | _WRITE)

#: Poller names -> selector classes, best first (only those this platform has).
_POLLERS: dict[str, type[selectors.BaseSelector]] = {}
if hasattr(selectors, "EpollSelector"):
    _POLLERS["epoll"] = selectors.EpollSelector
if hasattr(selectors, "KqueueSelector"):
    _POLLERS["kqueue"] = selectors.KqueueSelector
if hasattr(select, "poll"):
    _POLLERS["poll"] = selectors.PollSelector
_POLLERS["select"] = selectors.SelectSelector
_ALL_POLLER_NAMES: Final = ("select", "poll", "epoll", "kqueue")

# Compact the timer heap when at least this many dead entries make up more
# than half of it (keeps memory bounded under heavy cancel churn).
_COMPACT_MIN_CANCELLED: Final = 256

_monotonic = time.monotonic
_heappush = heapq.heappush
_heappop = heapq.heappop


class _Timeout:
    """A timer handle returned by :meth:`IOLoop.call_later` (see :class:`TimerHandle`)."""

    __slots__ = ("_loop", "callback", "deadline")

    def __init__(self, loop: IOLoop, deadline: float, callback: Callback) -> None:
        self._loop = loop
        #: Monotonic time (``time.monotonic``) at which the callback is due.
        self.deadline = deadline
        #: The callback; ``None`` once it ran or was cancelled.
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        """Cancel the timer; a no-op if it already ran or was cancelled."""
        if self.callback is not None:
            self.callback = None
            self._loop._timer_cancelled()

    def __repr__(self) -> str:
        state = "pending" if self.callback is not None else "done"
        return f"<_Timeout {state} deadline={self.deadline:.6f}>"


class _Watch:
    """What is watched on one file descriptor: a pika handler, or a reader/writer pair."""

    __slots__ = ("events", "fd", "handler", "interest", "reader", "writer")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.handler: Callable[[int, int], None] | None = None
        self.interest = 0  # pika mask asked for through add/update_handler
        self.reader: Callback | None = None
        self.writer: Callback | None = None
        self.events = 0  # selectors mask registered right now (0 = not registered)


class IOLoop:
    """A single-threaded I/O loop over the :mod:`selectors` module, with pika's API.

    :param poller_type: ``None`` for the best available (epoll, kqueue, poll,
        then select), or one of ``'select'``, ``'poll'``, ``'epoll'``,
        ``'kqueue'``.
    :raises TypeError: if ``poller_type`` is not a string or None.
    :raises ValueError: if ``poller_type`` is unknown or not available here.
    """

    #: Event mask bit: the file descriptor is readable.
    READ: Final = _READ
    #: Event mask bit: the file descriptor is writable.
    WRITE: Final = _WRITE
    #: Event mask bit: error condition (reported through READ/WRITE by selectors).
    ERROR: Final = _ERROR

    def __init__(self, poller_type: str | None = None) -> None:
        if poller_type is None:
            selector_class = next(iter(_POLLERS.values()))
        elif not isinstance(poller_type, str):
            raise TypeError(f"poller_type must be a str or None, but got {poller_type!r}")
        elif poller_type not in _ALL_POLLER_NAMES:
            raise ValueError(
                f"poller_type must be one of {', '.join(_ALL_POLLER_NAMES)} or None, "
                f"but got {poller_type!r}"
            )
        elif poller_type not in _POLLERS:
            raise ValueError(
                f"poller_type {poller_type!r} is not available on this platform "
                f"(available: {', '.join(_POLLERS)})"
            )
        else:
            selector_class = _POLLERS[poller_type]
        self._selector: selectors.BaseSelector = selector_class()
        #: Name of the poller in use (``'epoll'``, ``'poll'`` ...).
        self.poller_type = next(n for n, c in _POLLERS.items() if c is selector_class)

        self._ready: collections.deque[Callback] = collections.deque()
        self._timers: list[tuple[float, int, _Timeout]] = []
        self._timer_seq = 0
        self._cancelled = 0
        self._watches: dict[int, _Watch] = {}

        self._running = False
        self._stopping = False
        self._closed = False
        self._polling = False
        self._wake_pending = False
        self._thread_id: int | None = None

        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self.add_reader(self._wake_fd, self._drain_wakeup)

    # ------------------------------------------------------------------ callbacks

    def add_callback_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` as soon as possible on the loop's thread.

        This is the only thread-safe method: from another thread it wakes the
        loop at once.  ``ioloop.add_callback_threadsafe(ioloop.stop)`` stops a
        loop running in another thread.

        :param callback: called without arguments.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        self._ready.append(callback)
        if self._polling and not self._wake_pending:
            self._wake()

    #: pika's alias; also thread-safe.
    add_callback = add_callback_threadsafe

    def call_soon(self, callback: Callback) -> SoonHandle:
        """Run ``callback`` on the next iteration, FIFO with other soon-callbacks.

        Not thread-safe (use :meth:`add_callback_threadsafe` from other threads).

        :param callback: called without arguments.
        :returns: a handle whose ``cancel()`` prevents the call.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        handle = SoonHandle(callback)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callback) -> _Timeout:
        """Run ``callback`` once, ``delay`` seconds from now (best effort).

        :param delay: non-negative number of seconds.
        :param callback: called without arguments.
        :returns: a handle for :meth:`remove_timeout` (it also has ``cancel()``).
        :raises TypeError: if ``delay`` is not a number or ``callback`` not callable.
        :raises ValueError: if ``delay`` is negative or NaN.
        """
        kind = type(delay)
        if kind is not float and kind is not int:
            if isinstance(delay, bool) or not isinstance(delay, (int, float)):
                raise TypeError(f"delay must be a number of seconds, but got {delay!r}")
        if not delay >= 0:
            raise ValueError(f"call_later: delay must be non-negative, but got {delay!r}")
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        deadline = _monotonic() + delay
        timeout = _Timeout(self, deadline, callback)
        seq = self._timer_seq
        self._timer_seq = seq + 1
        _heappush(self._timers, (deadline, seq, timeout))
        return timeout

    def remove_timeout(self, timeout_handle: TimerHandle) -> None:
        """Cancel a timer made by :meth:`call_later` (no-op if it ran or was removed).

        :param timeout_handle: the handle :meth:`call_later` returned.
        :raises TypeError: if ``timeout_handle`` is not such a handle.
        """
        if not isinstance(timeout_handle, _Timeout | SoonHandle):
            raise TypeError(
                f"timeout_handle must be a handle from call_later, but got {timeout_handle!r}"
            )
        timeout_handle.cancel()

    def _timer_cancelled(self) -> None:
        cancelled = self._cancelled + 1
        self._cancelled = cancelled
        timers = self._timers
        if cancelled >= _COMPACT_MIN_CANCELLED and cancelled * 2 > len(timers):
            # In place: the timer phase of run_once may hold a reference.
            timers[:] = [entry for entry in timers if entry[2].callback is not None]
            heapq.heapify(timers)
            self._cancelled = 0

    # ------------------------------------------------------------------ fd watching

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        """Start watching ``fd``; ``handler(fd, events)`` is called when it is ready.

        :param fd: the file descriptor.
        :param handler: called with the fd and the mask of events that occurred.
        :param events: mask of :attr:`READ`, :attr:`WRITE`, :attr:`ERROR`.
        :raises ValueError: if ``fd`` is already watched.
        """
        fd = check_fd(fd)
        check_callable("handler", handler)
        events = check_events(events, _ALL_EVENTS)
        if fd in self._watches:
            raise ValueError(f"fd {fd} is already watched by this IOLoop")
        watch = _Watch(fd)
        watch.handler = handler
        watch.interest = events
        self._watches[fd] = watch
        self._sync(watch)

    def update_handler(self, fd: int, events: int) -> None:
        """Change the events watched on ``fd`` (added with :meth:`add_handler`).

        :param fd: the file descriptor.
        :param events: mask of :attr:`READ`, :attr:`WRITE`, :attr:`ERROR`.
        :raises ValueError: if ``fd`` has no handler.
        """
        fd = check_fd(fd)
        events = check_events(events, _ALL_EVENTS)
        watch = self._watches.get(fd)
        if watch is None or watch.handler is None:
            raise ValueError(f"fd {fd} has no handler in this IOLoop")
        watch.interest = events
        self._sync(watch)

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd`` (added with :meth:`add_handler`).

        :param fd: the file descriptor.
        :raises ValueError: if ``fd`` has no handler.
        """
        fd = check_fd(fd)
        watch = self._watches.get(fd)
        if watch is None or watch.handler is None:
            raise ValueError(f"fd {fd} has no handler in this IOLoop")
        watch.handler = None
        watch.interest = 0
        self._drop(watch)

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (replaces a previous reader).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        watch = self._rw_watch(fd)
        check_callable("callback", callback)
        watch.reader = callback
        self._sync(watch)

    def remove_reader(self, fd: int) -> bool:
        """Stop calling the reader of ``fd``.

        :returns: whether there was a reader.
        """
        watch = self._watches.get(fd)
        if watch is None or watch.reader is None:
            return False
        watch.reader = None
        if watch.writer is None:
            self._drop(watch)
        else:
            self._sync(watch)
        return True

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is writable (replaces a previous writer).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        watch = self._rw_watch(fd)
        check_callable("callback", callback)
        watch.writer = callback
        self._sync(watch)

    def remove_writer(self, fd: int) -> bool:
        """Stop calling the writer of ``fd``.

        :returns: whether there was a writer.
        """
        watch = self._watches.get(fd)
        if watch is None or watch.writer is None:
            return False
        watch.writer = None
        if watch.reader is None:
            self._drop(watch)
        else:
            self._sync(watch)
        return True

    def _rw_watch(self, fd: int) -> _Watch:
        watch = self._watches.get(fd)
        if watch is None:
            watch = _Watch(check_fd(fd))
            self._watches[fd] = watch
        elif watch.handler is not None:
            raise ValueError(f"fd {fd} is watched through add_handler; use update_handler")
        return watch

    def _sync(self, watch: _Watch) -> None:
        """Make the selector's registration match what ``watch`` asks for."""
        if watch.handler is not None:
            interest = watch.interest
            mask = (_EVENT_READ if interest & _READ else 0) | (
                _EVENT_WRITE if interest & _WRITE else 0
            )
        else:
            mask = (_EVENT_READ if watch.reader is not None else 0) | (
                _EVENT_WRITE if watch.writer is not None else 0
            )
        current = watch.events
        if mask == current:
            return
        if current == 0:
            self._selector.register(watch.fd, mask, watch)
        elif mask == 0:
            self._selector.unregister(watch.fd)
        else:
            self._selector.modify(watch.fd, mask, watch)
        watch.events = mask

    def _drop(self, watch: _Watch) -> None:
        del self._watches[watch.fd]
        if watch.events:
            watch.events = 0
            try:
                self._selector.unregister(watch.fd)
            except (KeyError, ValueError, OSError):  # fd already closed by its owner
                LOGGER.debug("unregistering fd %d failed", watch.fd, exc_info=True)

    # ------------------------------------------------------------------ wake-up

    def _wake(self) -> None:
        self._wake_pending = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pipe is full: the loop is being woken anyway
        except OSError:
            LOGGER.debug("cannot wake the IOLoop (closed?)", exc_info=True)

    def _drain_wakeup(self) -> None:
        self._wake_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Run iterations until :meth:`stop` is called.

        A :meth:`stop` requested before ``start`` makes it return at once (as in pika).

        :raises RuntimeError: if the loop is already running or is closed.
        """
        if self._running:
            raise RuntimeError("IOLoop is not reentrant and is already running")
        if self._closed:
            raise RuntimeError("IOLoop is closed")
        self._running = True
        self._thread_id = threading.get_ident()
        try:
            run_once = self._run_once
            while not self._stopping:
                run_once()
        finally:
            self._stopping = False
            self._running = False
            self._polling = False
            self._thread_id = None

    def stop(self) -> None:
        """Make :meth:`start` return after the current iteration.

        Call it from the loop's thread (a callback) or, from another thread,
        through ``add_callback_threadsafe(ioloop.stop)``.
        """
        self._stopping = True
        if self._polling and not self._wake_pending:
            self._wake()

    def poll(self) -> None:
        """[Extension] Run one iteration: wait for I/O or the nearest timer, then dispatch."""
        if self._closed:
            raise RuntimeError("IOLoop is closed")
        self._run_once()

    def _run_once(self) -> None:
        ready = self._ready
        timers = self._timers
        limit = self._timer_seq  # timers made during this iteration wait for the next
        self._polling = True
        if ready or self._stopping:
            timeout: float | None = 0
        elif timers:
            while timers and timers[0][2].callback is None:
                _heappop(timers)
                self._cancelled -= 1
            if timers:
                timeout = timers[0][0] - _monotonic()
                if timeout < 0:
                    timeout = 0
            else:
                timeout = None
        else:
            timeout = None

        events = self._selector.select(timeout)
        self._polling = False

        for key, mask in events:
            watch = key.data
            try:
                handler = watch.handler
                if handler is not None:
                    ev = _SEL_TO_PIKA[mask & watch.events]
                    if ev:
                        handler(watch.fd, ev)
                else:
                    if mask & _EVENT_READ:
                        reader = watch.reader
                        if reader is not None:
                            reader()
                    if mask & _EVENT_WRITE:
                        writer = watch.writer
                        if writer is not None:
                            writer()
            except Exception:
                LOGGER.exception("IOLoop: fd %d event handler raised", watch.fd)

        n = len(ready)
        while n:
            n -= 1
            callback = ready.popleft()
            try:
                callback()
            except Exception:
                LOGGER.exception("IOLoop: callback %r raised", callback)

        if timers:
            now = _monotonic()
            while timers:
                deadline, seq, timer = timers[0]
                if deadline > now or seq >= limit:
                    break
                _heappop(timers)
                callback_ = timer.callback
                if callback_ is None:
                    self._cancelled -= 1
                    continue
                timer.callback = None
                try:
                    callback_()
                except Exception:
                    LOGGER.exception("IOLoop: timer callback %r raised", callback_)

    def close(self) -> None:
        """Release the loop's resources; call it after :meth:`start` returned.

        Idempotent.  Pending callbacks and timers are dropped; watched file
        descriptors are forgotten (not closed).

        :raises RuntimeError: if the loop is running.
        """
        if self._running:
            raise RuntimeError("cannot close a running IOLoop")
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches.values()):
            watch.handler = watch.reader = watch.writer = None
        self._watches.clear()
        self._selector.close()
        for _, _, timer in self._timers:
            timer.callback = None
        self._timers.clear()
        self._ready.clear()
        self._wake_pending = True  # late add_callback_threadsafe calls won't send
        self._wake_r.close()
        self._wake_w.close()

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` is running."""
        return self._running

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<IOLoop {self.poller_type} {state} fds={len(self._watches)}>"


class SelectEventLoop:
    """The :class:`amqp_core.io.contract.EventLoop` over an :class:`IOLoop`.

    Also a :class:`~amqp_core.io.contract.RunnableLoop` for tests.

    :param ioloop: the loop to drive; a new one (best poller) when omitted.
    :raises TypeError: if ``ioloop`` is not an :class:`IOLoop`.
    """

    def __init__(self, ioloop: IOLoop | None = None) -> None:
        if ioloop is None:
            ioloop = IOLoop()
        elif not isinstance(ioloop, IOLoop):
            raise TypeError(f"ioloop must be an IOLoop, but got {ioloop!r}")
        #: The underlying :class:`IOLoop`.
        self.ioloop = ioloop

    def time(self) -> float:
        """Monotonic time in seconds (the clock of :meth:`call_later`)."""
        return _monotonic()

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next iteration (see :meth:`IOLoop.call_soon`)."""
        return self.ioloop.call_soon(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` on the loop's thread; callable from any thread."""
        self.ioloop.add_callback_threadsafe(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds; a negative delay counts as 0."""
        if isinstance(delay, (int, float)) and delay < 0:
            delay = 0.0
        return self.ioloop.call_later(delay, callback)

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve in a worker thread; ``on_done`` runs on the loop's thread."""
        return threaded_getaddrinfo(
            self.ioloop.add_callback_threadsafe, host, port, family, socktype, proto, flags,
            on_done,
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
        """Open a TCP (optionally TLS) stream (see :func:`.fd_streams.connect_stream`)."""
        return fd_streams.connect_stream(
            self.ioloop, sockaddr, family, protocol, ssl_context, server_hostname, on_done
        )

    def run_until_stopped(self) -> None:
        """Test-only: run the loop until :meth:`stop_soon`."""
        self.ioloop.start()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return after this turn."""
        self.ioloop.add_callback_threadsafe(self.ioloop.stop)

    def close(self) -> None:
        """Close the underlying :class:`IOLoop`."""
        self.ioloop.close()
