"""The adapter contract: what an event loop must offer to run an AMQP connection.

Theory of operation: the protocol core does no I/O.  The one driver
(``amqp_core.io.driver``) glues it to any event loop that offers the few
methods below, shaped after asyncio so that asyncio-based loops need almost no
code.  An adapter author implements :class:`EventLoop`; everything else (the
channel API, heartbeats, the connection workflow) is shared.

* ``call_soon_threadsafe`` is the ONLY method that may be called from another
  thread; it is what ``add_callback_threadsafe`` uses, so it must wake an idle
  loop at once.
* ``connect_stream`` opens a TCP (optionally TLS) stream and drives an
  asyncio-style :class:`StreamProtocol`.  A loop that can only watch file
  descriptors gets streams from :mod:`amqp_core.io.fd_streams` instead of
  writing its own.
* Running and stopping a loop is not part of this contract (only tests need
  it); see :class:`RunnableLoop`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

Callback = Callable[[], None]


@runtime_checkable
class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled (twice, or after it ran: a no-op)."""

    def cancel(self) -> None:
        """Cancel the callback if it has not run yet."""


@runtime_checkable
class StreamTransport(Protocol):
    """The writing half of a stream, given to the protocol in ``connection_made``."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; never blocks."""

    def close(self) -> None:
        """Flush what is buffered, then close; ``connection_lost(None)`` follows once."""

    def abort(self) -> None:
        """Close at once, dropping buffered data; ``connection_lost(None)`` follows once."""

    def get_write_buffer_size(self) -> int:
        """Bytes queued but not yet handed to the kernel."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"socket"``, ``"peername"``, ``"sockname"``, ``"ssl_object"`` like asyncio."""


@runtime_checkable
class StreamProtocol(Protocol):
    """The callbacks a stream drives, each called on the loop's thread.

    Order: ``connection_made`` once, ``data_received`` any number of times,
    ``eof_received`` at most once, ``connection_lost`` exactly once.
    """

    def connection_made(self, transport: StreamTransport) -> None:
        """The stream is connected (and TLS-handshaken when TLS was asked for)."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived."""

    def eof_received(self) -> bool | None:
        """The peer closed its side; the transport closes itself afterwards."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """The stream is gone; ``exc`` is None for a local close or a clean EOF."""

    def pause_writing(self) -> None:
        """The transport's write buffer went over its high-water mark."""

    def resume_writing(self) -> None:
        """The transport's write buffer drained below its low-water mark."""


OnStreamDone = Callable[["StreamTransport | BaseException"], None]
OnResolved = Callable[["list[tuple[Any, ...]] | BaseException"], None]


@runtime_checkable
class EventLoop(Protocol):
    """The loop contract every adapter implements."""

    def time(self) -> float:
        """Monotonic time in seconds, the clock ``call_later`` uses."""

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next loop turn, in FIFO order with other soon-callbacks."""

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Like ``call_soon`` but callable from any thread; wakes an idle loop at once."""

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds."""

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve without blocking the loop; ``on_done`` gets the list or the exception."""

    def connect_stream(
        self,
        sockaddr: tuple[Any, ...],
        family: int,
        protocol: StreamProtocol,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        on_done: OnStreamDone,
    ) -> TimerHandle:
        """Connect a TCP stream to ``sockaddr`` (TCP_NODELAY set), TLS-wrap it when asked.

        On success ``protocol.connection_made(transport)`` is called and then
        ``on_done(transport)``; on failure ``on_done(exc)`` only.  Cancelling the
        returned handle before completion closes the half-open socket and calls
        nothing.
        """


class RunnableLoop(Protocol):
    """Test-only: a loop that can be run and stopped from the outside."""

    def run_until_stopped(self) -> None:
        """Run until :meth:`stop_soon` is called."""

    def stop_soon(self) -> None:
        """Make :meth:`run_until_stopped` return after the current turn (thread-safe)."""
