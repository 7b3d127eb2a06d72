"""The gevent I/O loop facade (pika's ``_GeventSelectorIOLoop`` shape) and its contract loop.

Theory of operation
-------------------
gevent runs one *hub* greenlet per OS thread; the hub owns a libev (or libuv)
loop offering io watchers, timers, async watchers and ``run_callback``.
:class:`GeventIOLoop` drives amqp_core's connection with those alone:

* Soon-callbacks (``call_soon``) go into one deque; the first one of a batch
  schedules a single ``hub.loop.run_callback(self._run_ready)``, which runs the
  callbacks queued before it started (later ones wait for the next batch, so
  I/O is never starved).  Any greenlet of the hub's thread may call
  ``call_soon``: appending to a deque and scheduling a hub callback never
  switches greenlets.
* Thread-safe callbacks (``call_soon_threadsafe`` / ``add_callback``) from
  another OS thread append to the same deque (atomic under the GIL) and call
  ``send()`` on one gevent async watcher, the only libev call that is safe
  from any thread (libev coalesces sends that arrive before the loop wakes).
  The watcher's callback runs the deque in the hub.  From the hub's own thread
  the call is a plain ``call_soon``: no system call.  "Same thread" is judged
  with the *original* ``_thread.get_ident`` (under ``gevent.monkey`` the
  patched one names greenlets) against ``hub.thread_ident``.
* File descriptors are watched with one io watcher per (fd, direction), so
  amqp_core's :mod:`~amqp_core.io.fd_streams` gets ``add_reader`` /
  ``add_writer`` ... and pika-style ``add_handler(fd, handler, events)`` works
  with a watcher for the combined mask.
* Timers are gevent timers started with ``update=True`` (their delay counts
  from now, not from the loop's cached time); ``time()`` is ``time.monotonic``.
* ``start()`` blocks the calling greenlet on a :class:`gevent.event.Event`
  until ``stop()`` sets it (``stop()`` before ``start()`` makes ``start()``
  return at once, as in pika); the hub meanwhile runs every other greenlet.
  While ``start()`` waits, the async watcher holds a reference on the loop so
  that a ``stop`` coming from another OS thread is waited for; otherwise it
  holds none and never keeps ``gevent.wait()`` from returning.
* Name resolution runs in a greenlet through gevent's resolver
  (:func:`gevent.socket.getaddrinfo`), correct whether or not the process is
  monkey-patched.  Streams come from :func:`amqp_core.io.fd_streams.connect_stream`.

Callbacks, handlers and timers that raise are logged (``logging.exception``)
and the loop continues.  Everything except ``add_callback`` /
``add_callback_threadsafe`` / ``call_soon_threadsafe`` / ``stop`` must be
called on the hub's thread (from any of its greenlets).
"""

from __future__ import annotations

import collections
import logging
import math
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, cast

import gevent
import gevent.event
import gevent.hub
import gevent.socket
from gevent.monkey import get_original

from amqp_core.io import fd_streams
from amqp_core.io.contract import Callback, OnResolved, OnStreamDone, StreamProtocol, TimerHandle

__all__ = ["GeventEventLoop", "GeventIOLoop"]

LOGGER = logging.getLogger(__name__)

#: The real OS thread id, even when ``gevent.monkey`` patched ``_thread``.
_real_thread_ident: Callable[[], int] = get_original("_thread", "get_ident")
_monotonic = time.monotonic

_READ: Final = 1
_WRITE: Final = 2


class _Handle:
    """A cancellable soon-callback (see :meth:`GeventIOLoop.call_soon`)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        """Cancel the callback if it has not run yet."""
        self.callback = None

    def __call__(self) -> None:
        callback = self.callback
        if callback is not None:
            self.callback = None
            callback()


class _Timer:
    """A timer handle returned by :meth:`GeventIOLoop.call_later`."""

    __slots__ = ("_loop", "_watcher", "callback")

    def __init__(self, loop: GeventIOLoop, watcher: Any, callback: Callback) -> None:
        self._loop = loop
        self._watcher = watcher
        #: The callback; None once it ran or was cancelled.
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        """Cancel the timer; a no-op if it already ran or was cancelled."""
        if self.callback is not None:
            self.callback = None
            self._watcher.close()
            self._loop._timers.discard(self)

    def _fire(self) -> None:
        callback = self.callback
        if callback is None:
            return
        self.callback = None
        self._watcher.close()
        self._loop._timers.discard(self)
        try:
            callback()
        except Exception:
            LOGGER.exception("GeventIOLoop: timer callback %r raised", callback)

    def __repr__(self) -> str:
        return f"<_Timer {'pending' if self.callback is not None else 'done'}>"


class _Resolve:
    """A getaddrinfo running in a greenlet; ``cancel()`` kills it and suppresses delivery."""

    __slots__ = ("_greenlet", "_loop", "_on_done")

    def __init__(self, loop: GeventIOLoop, args: tuple[Any, ...], on_done: OnResolved) -> None:
        self._loop = loop
        self._on_done: OnResolved | None = on_done
        self._greenlet = gevent.spawn(self._run, args)

    def _run(self, args: tuple[Any, ...]) -> None:
        result: list[tuple[Any, ...]] | BaseException
        try:
            result = gevent.socket.getaddrinfo(*args)
        except Exception as exc:  # delivered, not raised
            result = exc
        self._loop.call_soon(lambda: self._deliver(result))

    def _deliver(self, result: list[tuple[Any, ...]] | BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)

    def cancel(self) -> None:
        """Do not deliver the result (no-op once delivered)."""
        if self._on_done is not None:
            self._on_done = None
            self._greenlet.kill(block=False)


def _check_callable(name: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be a callable, but got {value!r}")


def _check_fd(fd: object) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be an int file descriptor, but got {fd!r}")
    if fd < 0:
        raise ValueError(f"fd must be non-negative, but got {fd!r}")
    return fd


def _check_events(events: object) -> int:
    if isinstance(events, bool) or not isinstance(events, int):
        raise TypeError(f"events must be an int mask of READ/WRITE, but got {events!r}")
    if events & ~(_READ | _WRITE):
        raise ValueError(f"events must be a mask of READ (1) and WRITE (2), but got {events!r}")
    return events


class GeventIOLoop:
    """An I/O loop on a gevent hub, with pika's ``_GeventSelectorIOLoop`` API.

    :param gevent_hub: the hub to run on; None for the calling thread's hub
        (``gevent.get_hub()``).
    :raises TypeError: if ``gevent_hub`` is not a :class:`gevent.hub.Hub`.
    :raises ValueError: if ``gevent_hub`` belongs to another OS thread.
    """

    #: Event mask bit: readable (gevent's value).
    READ: Final = _READ
    #: Event mask bit: writable (gevent's value).
    WRITE: Final = _WRITE
    #: gevent has no error mask; errors surface through READ/WRITE (pika's value: 0).
    ERROR: Final = 0

    def __init__(self, gevent_hub: gevent.hub.Hub | None = None) -> None:
        if gevent_hub is None:
            gevent_hub = gevent.get_hub()
        elif not isinstance(gevent_hub, gevent.hub.Hub):
            raise TypeError(f"gevent_hub must be a gevent.hub.Hub or None, but got {gevent_hub!r}")
        if gevent_hub.thread_ident != _real_thread_ident():
            raise ValueError("gevent_hub belongs to another thread; create the loop on its thread")
        if gevent_hub.loop is None:
            raise ValueError("gevent_hub is destroyed")
        self._hub = gevent_hub
        self._loop = gevent_hub.loop
        self._thread_ident: int = gevent_hub.thread_ident
        self._ready: collections.deque[Callback] = collections.deque()
        self._scheduled = False  # a _run_ready is queued with run_callback
        self._readers: dict[int, Any] = {}
        self._writers: dict[int, Any] = {}
        self._handlers: dict[int, tuple[Any, Callable[[int, int], None]]] = {}
        self._timers: set[_Timer] = set()
        self._async: Any = cast(Any, self._loop.async_())  # (the stubs lack ``ref``)
        self._async.ref = False
        self._async.start(self._run_ready)
        self._stop_event = gevent.event.Event()
        self._running = False
        self._closed = False
        self._contract: GeventEventLoop | None = None

    # ------------------------------------------------------------------ properties

    @property
    def hub(self) -> gevent.hub.Hub:
        """The gevent hub this loop runs on."""
        return self._hub

    @property
    def loop(self) -> Any:
        """gevent's native loop (``hub.loop``, a ``gevent._interfaces.ILoop``)."""
        return self._loop

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` is blocking a greenlet right now."""
        return self._running

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def time(self) -> float:
        """Monotonic time in seconds (the clock of :meth:`call_later`)."""
        return _monotonic()

    # ------------------------------------------------------------------ callbacks

    def call_soon(self, callback: Callback) -> _Handle:
        """Run ``callback`` in the hub soon, FIFO with other soon-callbacks.

        Greenlet-safe: any greenlet of the hub's thread may call it (it never
        switches).  From another OS thread use :meth:`add_callback_threadsafe`.

        :param callback: called without arguments.
        :returns: a handle whose ``cancel()`` prevents the call.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        handle = _Handle(callback)
        self._ready.append(handle)
        if not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self._run_ready)
        return handle

    def add_callback_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` in the hub as soon as possible; callable from any OS thread.

        From another thread this wakes the hub through a gevent async watcher;
        from the hub's thread (any greenlet) it is a cheap :meth:`call_soon`.
        ``ioloop.add_callback_threadsafe(ioloop.stop)`` stops a loop from outside.

        :param callback: called without arguments.
        :raises TypeError: if ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        if _real_thread_ident() == self._thread_ident:
            self._ready.append(callback)
            if not self._scheduled:
                self._scheduled = True
                self._loop.run_callback(self._run_ready)
            return
        self._ready.append(callback)
        if not self._closed:
            self._async.send()

    #: pika's name (thread-safe, like pika's ``add_callback``).
    add_callback = add_callback_threadsafe
    #: asyncio's name.
    call_soon_threadsafe = add_callback_threadsafe

    def _run_ready(self) -> None:
        self._scheduled = False
        ready = self._ready
        n = len(ready)
        while n:
            n -= 1
            try:
                callback = ready.popleft()
            except IndexError:  # pragma: no cover - only this greenlet pops
                break
            try:
                callback()
            except Exception:
                LOGGER.exception("GeventIOLoop: callback %r raised", callback)
        if ready and not self._scheduled and not self._closed:
            self._scheduled = True
            self._loop.run_callback(self._run_ready)

    def call_later(self, delay: float, callback: Callback) -> _Timer:
        """Run ``callback`` once in the hub, ``delay`` seconds from now.

        :param delay: non-negative number of seconds.
        :param callback: called without arguments.
        :returns: a handle for :meth:`remove_timeout` (it also has ``cancel()``).
        :raises TypeError: if ``delay`` is not a number or ``callback`` not callable.
        :raises ValueError: if ``delay`` is negative or NaN.
        """
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, but got {delay!r}")
        if not delay >= 0 or math.isinf(delay):
            raise ValueError(f"delay must be a finite non-negative number, but got {delay!r}")
        _check_callable("callback", callback)
        watcher = self._loop.timer(float(delay))
        timer = _Timer(self, watcher, callback)
        self._timers.add(timer)
        watcher.start(timer._fire, update=True)
        return timer

    def remove_timeout(self, timeout_handle: TimerHandle) -> None:
        """Cancel a timer made by :meth:`call_later` (no-op if it ran or was removed).

        :param timeout_handle: the handle :meth:`call_later` returned.
        :raises TypeError: if ``timeout_handle`` is not such a handle.
        """
        if not isinstance(timeout_handle, _Timer | _Handle):
            raise TypeError(
                f"timeout_handle must be a handle from call_later, but got {timeout_handle!r}"
            )
        timeout_handle.cancel()

    # ------------------------------------------------------------------ fd watching

    def _io(self, fd: int, events: int, callback: Callable[..., None], *args: Any) -> Any:
        watcher = self._loop.io(fd, events)
        watcher.start(self._dispatch, callback, *args)
        return watcher

    @staticmethod
    def _dispatch(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            LOGGER.exception("GeventIOLoop: fd callback %r raised", callback)

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (replaces a previous reader).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        fd = _check_fd(fd)
        _check_callable("callback", callback)
        if fd in self._handlers:
            raise ValueError(f"fd {fd} is watched through add_handler; use update_handler")
        old = self._readers.pop(fd, None)
        if old is not None:
            old.close()
        self._readers[fd] = self._io(fd, _READ, callback)

    def remove_reader(self, fd: int) -> bool:
        """Stop calling the reader of ``fd``.

        :returns: whether there was a reader.
        """
        watcher = self._readers.pop(fd, None)
        if watcher is None:
            return False
        watcher.close()
        return True

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is writable (replaces a previous writer).

        :raises ValueError: if ``fd`` is watched through :meth:`add_handler`.
        """
        fd = _check_fd(fd)
        _check_callable("callback", callback)
        if fd in self._handlers:
            raise ValueError(f"fd {fd} is watched through add_handler; use update_handler")
        old = self._writers.pop(fd, None)
        if old is not None:
            old.close()
        self._writers[fd] = self._io(fd, _WRITE, callback)

    def remove_writer(self, fd: int) -> bool:
        """Stop calling the writer of ``fd``.

        :returns: whether there was a writer.
        """
        watcher = self._writers.pop(fd, None)
        if watcher is None:
            return False
        watcher.close()
        return True

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        """Start watching ``fd``; ``handler(fd, events)`` is called when it is ready.

        :param fd: the file descriptor.
        :param handler: called with the fd and the mask that was asked for.
        :param events: mask of :attr:`READ` and :attr:`WRITE`.
        :raises ValueError: if ``fd`` is already watched.
        """
        fd = _check_fd(fd)
        _check_callable("handler", handler)
        events = _check_events(events)
        if fd in self._handlers or fd in self._readers or fd in self._writers:
            raise ValueError(f"fd {fd} is already watched by this loop")
        self._handlers[fd] = (self._maybe_io(fd, events, handler), handler)

    def _maybe_io(self, fd: int, events: int, handler: Callable[[int, int], None]) -> Any:
        return self._io(fd, events, handler, fd, events) if events else None

    def update_handler(self, fd: int, events: int) -> None:
        """Change the events watched on ``fd`` (added with :meth:`add_handler`).

        :raises ValueError: if ``fd`` has no handler.
        """
        fd = _check_fd(fd)
        events = _check_events(events)
        entry = self._handlers.get(fd)
        if entry is None:
            raise ValueError(f"fd {fd} has no handler in this loop")
        watcher, handler = entry
        if watcher is not None:
            watcher.close()
        self._handlers[fd] = (self._maybe_io(fd, events, handler), handler)

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd`` (added with :meth:`add_handler`).

        :raises ValueError: if ``fd`` has no handler.
        """
        fd = _check_fd(fd)
        entry = self._handlers.pop(fd, None)
        if entry is None:
            raise ValueError(f"fd {fd} has no handler in this loop")
        if entry[0] is not None:
            entry[0].close()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Block the calling greenlet until :meth:`stop`; the hub runs meanwhile.

        A :meth:`stop` requested before ``start`` makes it return at once.

        :raises RuntimeError: if called from the hub greenlet itself (a callback),
            from another thread, while already running, or after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("GeventIOLoop is closed")
        if _real_thread_ident() != self._thread_ident:
            raise RuntimeError("GeventIOLoop.start() must be called on its hub's thread")
        if gevent.getcurrent() is self._hub:
            raise RuntimeError(
                "GeventIOLoop.start() cannot block the hub: call it from a greenlet "
                "(e.g. the main one), not from a loop callback"
            )
        if self._running:
            raise RuntimeError("GeventIOLoop is not reentrant and is already running")
        self._running = True
        self._async.ref = True
        try:
            self._stop_event.wait()
        finally:
            self._stop_event.clear()
            self._running = False
            if not self._closed:
                self._async.ref = False

    def stop(self) -> None:
        """Make :meth:`start` return; callable from any greenlet or OS thread."""
        if _real_thread_ident() != self._thread_ident:
            self.add_callback_threadsafe(self.stop)
            return
        self._stop_event.set()

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
        for watcher in (*self._readers.values(), *self._writers.values()):
            watcher.close()
        for watcher, _handler in self._handlers.values():
            if watcher is not None:
                watcher.close()
        self._readers.clear()
        self._writers.clear()
        self._handlers.clear()
        for timer in list(self._timers):
            timer.cancel()
        self._ready.clear()
        self._async.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<GeventIOLoop {state} hub={self._hub!r}>"

    def contract(self) -> GeventEventLoop:
        """The :class:`~amqp_core.io.contract.EventLoop` over this loop (one per loop)."""
        if self._contract is None:
            self._contract = GeventEventLoop(self)
        return self._contract


class GeventEventLoop:
    """The :class:`amqp_core.io.contract.EventLoop` over a :class:`GeventIOLoop`.

    Also a :class:`~amqp_core.io.contract.RunnableLoop` for tests.

    :param ioloop: the loop to drive; a new one on the calling thread's hub when omitted.
    :raises TypeError: if ``ioloop`` is not a :class:`GeventIOLoop`.
    """

    def __init__(self, ioloop: GeventIOLoop | None = None) -> None:
        if ioloop is None:
            ioloop = GeventIOLoop()
        elif not isinstance(ioloop, GeventIOLoop):
            raise TypeError(f"ioloop must be a GeventIOLoop, but got {ioloop!r}")
        #: The underlying :class:`GeventIOLoop`.
        self.ioloop = ioloop
        # the hot paths, bound once
        self.call_soon: Callable[[Callback], TimerHandle] = ioloop.call_soon
        self.call_soon_threadsafe: Callable[[Callback], None] = ioloop.add_callback_threadsafe

    def time(self) -> float:
        """Monotonic time in seconds (the clock of :meth:`call_later`)."""
        return _monotonic()

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds; a negative delay counts as 0."""
        if isinstance(delay, (int, float)) and delay < 0:
            delay = 0.0
        return self.ioloop.call_later(delay, callback)

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve with gevent's resolver in a greenlet; ``on_done`` runs in the hub."""
        _check_callable("on_done", on_done)
        return _Resolve(self.ioloop, (host, port, family, socktype, proto, flags), on_done)

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
        """Test-only: block the calling greenlet until :meth:`stop_soon`."""
        self.ioloop.start()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return."""
        self.ioloop.stop()

    def close(self) -> None:
        """Close the underlying :class:`GeventIOLoop`."""
        self.ioloop.close()

