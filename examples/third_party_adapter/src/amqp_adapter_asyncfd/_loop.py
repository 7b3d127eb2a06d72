"""The amqp_core loop contract over an asyncio selector loop, through fd watching.

Theory of operation: timers and callbacks are the asyncio loop's own
(``call_soon``, ``call_later``, ``time``; ``call_soon_threadsafe`` is the only
thread-safe method and wakes the loop).  Streams are not asyncio transports:
amqp_core's :func:`~amqp_core.io.fd_streams.connect_stream` builds them from
``add_reader`` / ``add_writer``, which any selector-based asyncio loop offers
(the asyncio loop *is* an ``FdWatchingLoop``).  Name resolution runs in
amqp_core's resolver threads and comes back through ``call_soon_threadsafe``.
``run_until_stopped`` / ``stop_soon`` / ``close`` are for tests
(amqp_core's ``RunnableLoop``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from amqp_core.io import fd_streams
from amqp_core.io.contract import Callback, OnResolved, OnStreamDone, StreamProtocol, TimerHandle
from amqp_core.io.resolver import threaded_getaddrinfo

__all__ = ["AsyncfdEventLoop"]


class AsyncfdEventLoop:
    """:class:`amqp_core.io.contract.EventLoop` over an asyncio loop that watches fds.

    :param loop: an asyncio selector event loop
    :raises TypeError: ``loop`` cannot watch file descriptors (the proactor loop)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"loop must be an asyncio event loop, not {type(loop).__name__}")
        if not isinstance(loop, fd_streams.FdWatchingLoop):
            raise TypeError("loop must watch file descriptors (add_reader/add_writer)")
        self.loop = loop

    def time(self) -> float:
        """The asyncio loop's monotonic clock."""
        return self.loop.time()

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next loop turn (FIFO)."""
        return self.loop.call_soon(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` on the loop's thread; callable from any thread."""
        self.loop.call_soon_threadsafe(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds (a negative delay counts as 0)."""
        return self.loop.call_later(max(0.0, delay), callback)

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve in a worker thread; ``on_done`` runs on the loop's thread."""
        return threaded_getaddrinfo(self.loop.call_soon_threadsafe, host, port, family,
                                    socktype, proto, flags, on_done)

    def connect_stream(
        self, sockaddr: tuple[Any, ...], family: int, protocol: StreamProtocol,
        ssl_context: ssl.SSLContext | None, server_hostname: str | None,
        on_done: OnStreamDone,
    ) -> TimerHandle:
        """A TCP (optionally TLS) stream over fd watching (amqp_core's helper)."""
        return fd_streams.connect_stream(self.loop, sockaddr, family, protocol, ssl_context,
                                         server_hostname, on_done)

    # ------------------------------------------------------------ RunnableLoop (tests)

    def run_until_stopped(self) -> None:
        """Test-only: ``run_forever`` until :meth:`stop_soon`."""
        self.loop.run_forever()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return."""
        self.loop.call_soon_threadsafe(self.loop.stop)

    def close(self) -> None:
        """Close the asyncio loop (after shutting down its default executor)."""
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
