"""The gevent I/O loop (pika's ``_GeventSelectorIOLoop`` shape) that runs amqp_core connections.

Theory of operation
-------------------
gevent runs one *hub* greenlet per OS thread; the hub owns a libev (or libuv)
loop offering io watchers, timers, async watchers and ``run_callback``.
:class:`GeventIOLoop` uses those alone, but never runs a connection's
callbacks *in* the hub: the hub cannot block, and callbacks that block
cooperatively (``time.sleep`` once monkey-patched, a database call, starting a
thread) are common in gevent programs.  Instead:

* Every piece of work (a soon-callback, a fired timer, a ready file
  descriptor, a thread-safe callback) is appended to one FIFO deque, the
  *work queue*, and run by the *dispatcher*: the greenlet blocked in
  :meth:`GeventIOLoop.start` while there is one (so callbacks run in the
  greenlet that runs the loop, as with any other loop), otherwise a background
  greenlet of the loop, created on first need and parked between batches
  (pika's behaviour: the connection works whenever the hub runs).  With
  ``background=False`` there is no background greenlet: work waits for
  ``start()``, as with a select IOLoop.
* Watchers fire in the hub.  If the dispatcher is parked, the hub switches to
  it at once; it runs the batch of work queued before it started (work queued
  meanwhile waits for the next batch, so I/O is never starved), then parks
  again with ``hub.switch()``.  At most one dispatcher runs work at a time, so
  a callback that blocks pauses the connection (like blocking any loop) while
  the other greenlets go on; it never makes callbacks of the same loop
  interleave.
* A level-triggered io watcher that fires while the dispatcher is busy is
  stopped until its queued event has been run, so the hub does not spin.
* ``call_soon`` (from any greenlet of the hub's thread; it never switches)
  appends and schedules one ``hub.loop.run_callback`` that wakes the
  dispatcher.  ``add_callback_threadsafe`` from another OS thread appends
  (atomic under the GIL) and ``send()``-s one async watcher, the only libev
  call that is safe from any thread (libev coalesces sends).  "Another thread"
  is judged with the *original* ``_thread.get_ident`` (monkey-patched, the
  patched one names greenlets) against ``hub.thread_ident``.
* Timers are gevent timers started with ``update=True`` (their delay counts
  from now, not from the loop's cached time); ``time()`` is ``time.monotonic``.
* ``stop()`` sets a flag and wakes the dispatcher; ``start()`` returns after
  the batch it is running (a ``stop()`` before ``start()`` makes it return at
  once, as in pika).  While a greenlet waits in ``start()`` the async watcher
  holds a reference on the loop, so a stop from another thread is waited for;
  otherwise it holds none and never keeps ``gevent.wait()`` from returning.

Callbacks, handlers and timers that raise ``Exception`` are logged and the loop
continues.  Everything but ``add_callback`` / ``add_callback_threadsafe`` /
``call_soon_threadsafe`` / ``stop`` must be called on the hub's thread.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, cast

import gevent
import gevent.hub
import greenlet
from gevent.monkey import get_original

from amqp_core.io.contract import Callback, TimerHandle
from amqp_core.io.loop_checks import SoonHandle, check_callable, check_events, check_fd

__all__ = ["GeventIOLoop"]

LOGGER = logging.getLogger(__name__)

#: The real OS thread id, even when ``gevent.monkey`` patched ``_thread``.
_real_thread_ident: Callable[[], int] = get_original("_thread", "get_ident")
_monotonic = time.monotonic
_getcurrent = greenlet.getcurrent

_READ: Final = 1
_WRITE: Final = 2


class _Timer:
    """A timer handle returned by :meth:`GeventIOLoop.call_later`."""

    __slots__ = ("_loop", "_watcher", "callback")

    def __init__(self, loop: GeventIOLoop, delay: float, callback: Callback) -> None:
        self._loop = loop
        #: The callback; None once it ran or was cancelled.
        self.callback: Callback | None = callback
        self._watcher: Any = loop._native.timer(delay)
        self._watcher.start(self._fire, update=True)

    def cancel(self) -> None:
        """Cancel the timer; a no-op if it already ran or was cancelled."""
        if self.callback is not None:
            self.callback = None
            self._watcher.close()
            self._loop._timers.discard(self)

    def _fire(self) -> None:  # in the hub
        self._watcher.close()
        if self.callback is not None:
            self._loop._post(self)

    def __call__(self) -> None:  # in the dispatcher
        callback = self.callback
        if callback is not None:
            self.callback = None
            self._loop._timers.discard(self)
            callback()

    def __repr__(self) -> str:
        return f"<_Timer {'pending' if self.callback is not None else 'done'}>"


class _Watch:
    """One io watcher whose callback runs in the dispatcher."""

    __slots__ = ("args", "callback", "loop", "queued", "stopped", "watcher")

    def __init__(self, loop: GeventIOLoop, fd: int, events: int,
                 callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.loop = loop
        self.callback: Callable[..., None] | None = callback
        self.args = args
        self.queued = False  # waiting in the work queue
        self.stopped = False  # watcher stopped while queued (a busy dispatcher)
        self.watcher: Any = loop._native.io(fd, events)
        self.watcher.start(self._fire)

    def _fire(self) -> None:  # in the hub
        if self.queued:
            return
        self.queued = True
        if not self.loop._post(self):
            self.stopped = True  # level-triggered: don't let the hub spin meanwhile
            self.watcher.stop()

    def __call__(self) -> None:  # in the dispatcher
        self.queued = False
        callback = self.callback
        if callback is None:
            return
        if self.stopped:
            self.stopped = False
            self.watcher.start(self._fire)
        callback(*self.args)

    def close(self) -> None:
        self.callback = None
        self.watcher.close()


def _check_events(events: object) -> int:
    return check_events(
        events, _READ | _WRITE, names="READ/WRITE", allowed="READ (1) and WRITE (2)"
    )


class GeventIOLoop:
    """An I/O loop on a gevent hub, with pika's ``_GeventSelectorIOLoop`` API.

    :param gevent_hub: the hub to run on; None for the calling thread's hub
        (``gevent.get_hub()``).
    :param background: while no greenlet is in :meth:`start`, run the loop's
        callbacks in a background greenlet (True, pika's behaviour: the
        connection works whenever the hub runs); with False they wait for
        :meth:`start`, as with a select IOLoop.
    :raises TypeError: if ``gevent_hub`` is not a :class:`gevent.hub.Hub`.
    :raises ValueError: if ``gevent_hub`` belongs to another OS thread or is destroyed.
    """

    #: Event mask bit: readable (gevent's value).
    READ: Final = _READ
    #: Event mask bit: writable (gevent's value).
    WRITE: Final = _WRITE
    #: gevent has no error mask; errors surface through READ/WRITE (pika's value: 0).
    ERROR: Final = 0

    def __init__(self, gevent_hub: gevent.hub.Hub | None = None, *,
                 background: bool = True) -> None:
        if not isinstance(background, bool):
            raise TypeError(f"background must be a bool, but got {background!r}")
        if gevent_hub is None:
            gevent_hub = gevent.get_hub()
        elif not isinstance(gevent_hub, gevent.hub.Hub):
            raise TypeError(f"gevent_hub must be a gevent.hub.Hub or None, but got {gevent_hub!r}")
        if gevent_hub.thread_ident != _real_thread_ident():
            raise ValueError("gevent_hub belongs to another thread; create the loop on its thread")
        if gevent_hub.loop is None:
            raise ValueError("gevent_hub is destroyed")
        self._hub = gevent_hub
        self._native: Any = gevent_hub.loop
        self._thread_ident: int = gevent_hub.thread_ident
        self._work: collections.deque[Callback] = collections.deque()
        self._wake_scheduled = False  # a _hub_wake is queued with run_callback
        self._busy = False  # a dispatcher is running work (maybe blocked in a callback)
        self._parked_main: greenlet.greenlet | None = None  # start()'s greenlet, parked
        self._parked_bg: greenlet.greenlet | None = None  # the background one, parked
        self._background: greenlet.greenlet | None = None
        self._background_allowed = background
        self._readers: dict[int, _Watch] = {}
        self._writers: dict[int, _Watch] = {}
        self._handlers: dict[int, tuple[_Watch | None, Callable[[int, int], None]]] = {}
        self._timers: set[_Timer] = set()
        self._async: Any = cast(Any, self._native.async_())  # (the stubs lack ``ref``)
        self._async.ref = False
        self._async.start(self._hub_wake)
        self._running = False
        self._stopping = False
        self._closed = False
        self._contract: Any = None

    # ------------------------------------------------------------------ properties

    @property
    def hub(self) -> gevent.hub.Hub:
        """The gevent hub this loop runs on."""
        return self._hub

    @property
    def loop(self) -> Any:
        """gevent's native loop (``hub.loop``, a ``gevent._interfaces.ILoop``)."""
        return self._native

    @property
    def background(self) -> bool:
        """Whether callbacks run in a background greenlet while no greenlet is in :meth:`start`."""
        return self._background_allowed

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` is running."""
        return self._running

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def time(self) -> float:
        """Monotonic time in seconds (the clock of :meth:`call_later`)."""
        return _monotonic()

    def contract(self) -> Any:
        """The :class:`~amqp_adapter_gevent.GeventEventLoop` over this loop (one per loop)."""
        if self._contract is None:
            from ._contract import GeventEventLoop

            self._contract = GeventEventLoop(self)
        return self._contract

    # ------------------------------------------------------------------ dispatching

    def _post(self, item: Callback) -> bool:
        """In the hub: queue ``item``; run the batch now if a dispatcher is parked.

        :returns: whether a dispatcher took the work at once.
        """
        self._work.append(item)
        return self._dispatch_now()

    def _dispatch_now(self) -> bool:
        """In the hub: hand the queued work to a parked dispatcher (or make one)."""
        if self._busy or self._closed:
            return False
        target = self._parked_main if self._parked_main is not None else self._parked_bg
        if target is None:
            if self._background is not None or not self._background_allowed:
                return False  # (it is busy elsewhere, or work waits for start())
            target = self._background = greenlet.greenlet(self._serve_background, self._hub)
        target.switch()
        return True

    def _hub_wake(self) -> None:
        """In the hub (run_callback, or the async watcher): wake a dispatcher."""
        self._wake_scheduled = False
        if self._work or (self._stopping and self._parked_main is not None):
            self._dispatch_now()

    def _request_wake(self) -> None:
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self._native.run_callback(self._hub_wake)

    def _run_batch(self) -> None:
        """In a dispatcher: run the work queued before this call (FIFO)."""
        work = self._work
        self._busy = True
        try:
            for _ in range(len(work)):
                item = work.popleft()
                try:
                    item()
                except Exception:
                    LOGGER.exception("GeventIOLoop: callback %r raised", item)
        finally:
            self._busy = False
        if work:
            self._request_wake()  # more came meanwhile: after the hub had its turn

    def _park(self, main: bool) -> None:
        me = _getcurrent()
        if main:
            self._parked_main = me
        else:
            self._parked_bg = me
        try:
            self._hub.switch()
        finally:
            if main:
                self._parked_main = None
            else:
                self._parked_bg = None

    def _serve_background(self) -> None:
        try:
            while not self._closed:
                if self._work and self._parked_main is None:
                    self._run_batch()
                self._park(main=False)
        except greenlet.GreenletExit:
            pass
        except BaseException:  # never let it reach the hub
            LOGGER.exception("GeventIOLoop: the background dispatcher failed")
        finally:
            self._background = None

    # ------------------------------------------------------------------ callbacks

    def call_soon(self, callback: Callback) -> SoonHandle:
        """Run ``callback`` soon in the loop's dispatcher, FIFO with other soon-callbacks.

        Greenlet-safe: any greenlet of the hub's thread may call it (it never
        switches).  From another OS thread use :meth:`add_callback_threadsafe`.

        :param callback: called without arguments.
        :returns: a handle whose ``cancel()`` prevents the call.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        handle = SoonHandle(callback)
        self._work.append(handle)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self._native.run_callback(self._hub_wake)
        return handle

    def add_callback_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` in the loop as soon as possible; callable from any OS thread.

        From another thread this wakes the hub through a gevent async watcher;
        from the hub's thread (any greenlet) it is a cheap :meth:`call_soon`.
        ``ioloop.add_callback_threadsafe(ioloop.stop)`` stops a loop from outside.

        :param callback: called without arguments.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        self._work.append(callback)
        if _real_thread_ident() == self._thread_ident:
            if not self._wake_scheduled:
                self._wake_scheduled = True
                self._native.run_callback(self._hub_wake)
        elif not self._closed:
            self._async.send()

    #: pika's name (thread-safe, like pika's ``add_callback``).
    add_callback = add_callback_threadsafe
    #: asyncio's name.
    call_soon_threadsafe = add_callback_threadsafe

    def call_later(self, delay: float, callback: Callback) -> _Timer:
        """Run ``callback`` once, ``delay`` seconds from now.

        :param delay: non-negative number of seconds.
        :param callback: called without arguments.
        :returns: a handle for :meth:`remove_timeout` (it also has ``cancel()``).
        :raises TypeError: if ``delay`` is not a number or ``callback`` not callable.
        :raises ValueError: if ``delay`` is negative, infinite or NaN.
        """
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, but got {delay!r}")
        if not delay >= 0 or math.isinf(delay):
            raise ValueError(f"delay must be a finite non-negative number, but got {delay!r}")
        check_callable("callback", callback)
        timer = _Timer(self, float(delay), callback)
        self._timers.add(timer)
        return timer

    def remove_timeout(self, timeout_handle: TimerHandle) -> None:
        """Cancel a timer made by :meth:`call_later` (no-op if it ran or was removed).

        :param timeout_handle: the handle :meth:`call_later` returned.
        :raises TypeError: if ``timeout_handle`` is not such a handle.
        """
        if not isinstance(timeout_handle, _Timer | SoonHandle):
            raise TypeError(
                f"timeout_handle must be a handle from call_later, but got {timeout_handle!r}"
            )
        timeout_handle.cancel()

    # ------------------------------------------------------------------ fd watching

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (replaces a previous reader).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        self._add_rw(self._readers, fd, _READ, callback)

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is writable (replaces a previous writer).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        self._add_rw(self._writers, fd, _WRITE, callback)

    def _add_rw(self, watches: dict[int, _Watch], fd: int, events: int,
                callback: Callback) -> None:
        fd = check_fd(fd)
        check_callable("callback", callback)
        if fd in self._handlers:
            raise ValueError(f"fd {fd} is watched through add_handler; use update_handler")
        old = watches.pop(fd, None)
        if old is not None:
            old.close()
        watches[fd] = _Watch(self, fd, events, callback, ())

    def remove_reader(self, fd: int) -> bool:
        """Stop calling the reader of ``fd``.

        :returns: whether there was a reader.
        """
        watch = self._readers.pop(fd, None)
        if watch is None:
            return False
        watch.close()
        return True

    def remove_writer(self, fd: int) -> bool:
        """Stop calling the writer of ``fd``.

        :returns: whether there was a writer.
        """
        watch = self._writers.pop(fd, None)
        if watch is None:
            return False
        watch.close()
        return True

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        """Start watching ``fd``; ``handler(fd, events)`` is called when it is ready.

        :param fd: the file descriptor.
        :param handler: called with the fd and the mask that was asked for.
        :param events: mask of :attr:`READ` and :attr:`WRITE`.
        :raises ValueError: if ``fd`` is already watched.
        """
        fd = check_fd(fd)
        check_callable("handler", handler)
        events = _check_events(events)
        if fd in self._handlers or fd in self._readers or fd in self._writers:
            raise ValueError(f"fd {fd} is already watched by this loop")
        self._handlers[fd] = (self._handler_watch(fd, events, handler), handler)

    def _handler_watch(self, fd: int, events: int,
                       handler: Callable[[int, int], None]) -> _Watch | None:
        return _Watch(self, fd, events, handler, (fd, events)) if events else None

    def update_handler(self, fd: int, events: int) -> None:
        """Change the events watched on ``fd`` (added with :meth:`add_handler`).

        :raises ValueError: if ``fd`` has no handler.
        """
        fd = check_fd(fd)
        events = _check_events(events)
        entry = self._handlers.get(fd)
        if entry is None:
            raise ValueError(f"fd {fd} has no handler in this loop")
        watch, handler = entry
        if watch is not None:
            watch.close()
        self._handlers[fd] = (self._handler_watch(fd, events, handler), handler)

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd`` (added with :meth:`add_handler`).

        :raises ValueError: if ``fd`` has no handler.
        """
        fd = check_fd(fd)
        entry = self._handlers.pop(fd, None)
        if entry is None:
            raise ValueError(f"fd {fd} has no handler in this loop")
        if entry[0] is not None:
            entry[0].close()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Run the loop's callbacks in the calling greenlet until :meth:`stop`.

        The hub runs every other greenlet meanwhile.  A :meth:`stop` requested
        before ``start`` makes it return at once.

        :raises RuntimeError: if called from the hub greenlet itself, from a
            callback of this loop, from another thread, while already running,
            or after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("GeventIOLoop is closed")
        if _real_thread_ident() != self._thread_ident:
            raise RuntimeError("GeventIOLoop.start() must be called on its hub's thread")
        current = _getcurrent()
        if current is self._hub:
            raise RuntimeError(
                "GeventIOLoop.start() cannot block the hub: call it from a greenlet "
                "(e.g. the main one), not from a gevent callback"
            )
        if self._running:
            raise RuntimeError("GeventIOLoop is not reentrant and is already running")
        if self._busy and current is self._background:
            raise RuntimeError("GeventIOLoop.start() cannot be called from one of its callbacks")
        self._running = True
        self._async.ref = True
        try:
            while not self._stopping:
                if self._work and not self._busy:
                    self._run_batch()
                    if self._stopping:
                        break
                self._park(main=True)
        finally:
            self._stopping = False
            self._running = False
            if not self._closed:
                self._async.ref = False
                if self._work:
                    self._request_wake()  # what is left goes to the background dispatcher

    def stop(self) -> None:
        """Make :meth:`start` return after the current batch; callable from any greenlet or
        OS thread."""
        if _real_thread_ident() != self._thread_ident:
            self.add_callback_threadsafe(self.stop)
            return
        self._stopping = True
        if self._parked_main is not None:
            self._request_wake()

    def close(self) -> None:
        """Release this loop's watchers; call it after :meth:`start` returned.

        Idempotent.  Pending callbacks and timers are dropped and watched file
        descriptors forgotten (not closed).  gevent's hub and its loop belong to
        the thread and are left alone (``gevent.get_hub().destroy()`` is yours
        to call).

        :raises RuntimeError: if the loop is running.
        """
        if self._running:
            raise RuntimeError("cannot close a running GeventIOLoop")
        if self._closed:
            return
        self._closed = True
        for watch in (*self._readers.values(), *self._writers.values()):
            watch.close()
        for maybe_watch, _handler in self._handlers.values():
            if maybe_watch is not None:
                maybe_watch.close()
        self._readers.clear()
        self._writers.clear()
        self._handlers.clear()
        for timer in list(self._timers):
            timer.cancel()
        self._work.clear()
        self._async.close()
        background = self._parked_bg
        if background is not None:  # let it see _closed and end, from the hub
            self._native.run_callback(background.switch)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<GeventIOLoop {state} hub={self._hub!r}>"
