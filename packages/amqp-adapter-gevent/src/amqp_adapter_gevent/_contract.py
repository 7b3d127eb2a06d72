"""``GeventEventLoop``: amqp_core's loop contract over a :class:`GeventIOLoop`.

Theory of operation: the contract's scheduling methods are the
:class:`~amqp_adapter_gevent._loop.GeventIOLoop`'s own (bound once, no extra
call on the hot path).  Streams come from
:func:`amqp_core.io.fd_streams.connect_stream`, which only needs the loop's
``add_reader`` / ``add_writer`` / ``call_soon``.  Names are resolved in a
greenlet by gevent's resolver (:func:`gevent.socket.getaddrinfo`), which is
right with and without monkey-patching (amqp_core's thread-pool resolver would
park a greenlet-thread on a real queue once ``threading`` is patched); the
result is delivered through ``call_soon``, and ``cancel()`` kills the greenlet.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket

from amqp_core.io import fd_streams
from amqp_core.io.contract import Callback, OnResolved, OnStreamDone, StreamProtocol, TimerHandle

from ._loop import GeventIOLoop, _monotonic

__all__ = ["GeventEventLoop"]


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
        """Resolve with gevent's resolver in a greenlet; ``on_done`` runs in the loop."""
        if not callable(on_done):
            raise TypeError(f"on_done must be a callable, but got {on_done!r}")
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
        """Test-only: run the loop in the calling greenlet until :meth:`stop_soon`."""
        self.ioloop.start()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return."""
        self.ioloop.stop()

    def close(self) -> None:
        """Close the underlying :class:`GeventIOLoop`."""
        self.ioloop.close()
