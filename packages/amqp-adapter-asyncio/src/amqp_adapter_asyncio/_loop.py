"""The amqp_core loop contract over an asyncio event loop (any conforming one: uvloop too).

Theory of operation
-------------------
:class:`AsyncioEventLoop` implements :class:`amqp_core.io.contract.EventLoop`
with the loop's own services, never with file-descriptor watching, so every
loop that implements asyncio's API works (the default selector loop, uvloop,
the proactor loop):

* ``call_soon`` / ``call_later`` / ``time`` are the loop's; ``call_soon_threadsafe``
  is the loop's ``call_soon_threadsafe`` (the only thread-safe method).
* ``getaddrinfo`` runs ``loop.getaddrinfo`` in a task; the handle's ``cancel``
  cancels the task and suppresses the callback.
* ``connect_stream`` lets ``loop.create_connection(host=, port=, ssl=...)``
  connect to the address the workflow resolved (a numeric address is not
  resolved again) and build the transport, TLS included; TCP_NODELAY is set on
  the connected socket.  The loop owns the socket throughout, so a failed or
  cancelled connect is cleaned up by the loop.  During the connect a tiny gate
  protocol owns the transport, so a connect cancelled half-way closes the socket
  and calls nothing; on success the transport is switched with
  ``transport.set_protocol`` to a relay whose ``data_received`` (and the other
  hot callbacks) ARE the driver's bound methods, so bytes go from the transport
  straight into the driver; only ``connection_lost`` passes through the relay,
  which records that the stream is gone.  asyncio's protocol/transport shapes
  are the contract's already.
* The close callbacks run when the AMQP connection ends; the transport finishes
  closing a little later (TLS exchanges close_notify).
  :meth:`AsyncioEventLoop.wait_streams_closed` waits for that, so a program can
  close its loop without leaving a socket behind.
* The transport's write-buffer limits are raised to amqp_core's defaults
  (high 4 MiB, low 1 MiB) so a burst of publishes is not paused at asyncio's
  64 KiB.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any, cast

from amqp_core.io.contract import (
    Callback,
    OnResolved,
    OnStreamDone,
    StreamProtocol,
    StreamTransport,
    TimerHandle,
)
from amqp_core.io.fd_streams import DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER

__all__ = ["AsyncioEventLoop"]

LOGGER = logging.getLogger(__name__)


class _ResolveHandle:
    """A pending ``loop.getaddrinfo``; :meth:`cancel` suppresses the callback."""

    __slots__ = ("_on_done", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, args: tuple[Any, ...],
                 on_done: OnResolved) -> None:
        self._on_done: OnResolved | None = on_done
        self._task = loop.create_task(self._run(loop, *args))

    async def _run(self, loop: asyncio.AbstractEventLoop, host: str, port: int, family: int,
                   socktype: int, proto: int, flags: int) -> None:
        result: list[tuple[Any, ...]] | BaseException
        try:
            result = list(await loop.getaddrinfo(
                host, port, family=family, type=socktype, proto=proto, flags=flags
            ))
        except Exception as error:  # delivered, not raised
            result = error
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            try:
                on_done(result)
            except Exception:
                LOGGER.exception("getaddrinfo callback %r raised", on_done)

    def cancel(self) -> None:
        """Do not deliver the result (no-op once delivered)."""
        self._on_done = None
        self._task.cancel()


class _Gate(asyncio.Protocol):
    """Owns the transport while connecting; records what happens before the hand-over."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[BaseException | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = (exc,)


class _Relay:
    """The protocol the transport calls once connected: the driver's own methods, plus a note
    when the stream is gone.

    ``data_received`` and the other hot callbacks are the driver's bound methods stored as
    attributes, so the transport calls straight into the driver (no extra frame); only
    ``connection_made`` / ``connection_lost`` pass through here.
    """

    __slots__ = (
        "_owner", "_protocol", "data_received", "eof_received", "pause_writing",
        "resume_writing", "transport",
    )

    def __init__(self, protocol: StreamProtocol, owner: AsyncioEventLoop) -> None:
        self._protocol = protocol
        self._owner = owner
        self.transport: asyncio.BaseTransport | None = None
        self.data_received = protocol.data_received
        self.eof_received = protocol.eof_received
        self.pause_writing = protocol.pause_writing
        self.resume_writing = protocol.resume_writing

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._protocol.connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._owner._stream_lost(self)


class _StreamConnect:
    """The handle :meth:`AsyncioEventLoop.connect_stream` returns (one connect in a task)."""

    __slots__ = ("_on_done", "_owner", "_protocol", "_task")

    def __init__(
        self, owner: AsyncioEventLoop, sockaddr: tuple[Any, ...], family: int,
        protocol: StreamProtocol, ssl_context: ssl.SSLContext | None,
        server_hostname: str | None, on_done: OnStreamDone,
    ) -> None:
        loop = owner.loop
        self._owner = owner
        self._on_done: OnStreamDone | None = on_done
        self._protocol: StreamProtocol | None = protocol
        self._task = loop.create_task(
            self._run(loop, sockaddr, family, ssl_context, server_hostname)
        )

    def cancel(self) -> None:
        """Give up: close the half-open socket, call nothing (no-op once connected)."""
        self._on_done = None
        self._protocol = None
        self._task.cancel()

    async def _run(
        self, loop: asyncio.AbstractEventLoop, sockaddr: tuple[Any, ...], family: int,
        ssl_context: ssl.SSLContext | None, server_hostname: str | None,
    ) -> None:
        gate = _Gate()
        try:
            # the loop owns the socket from the start, so a cancelled or failed connect is
            # cleaned up by the loop itself; a numeric address is not resolved again
            transport, _ = await loop.create_connection(
                lambda: gate, host=sockaddr[0], port=sockaddr[1], family=family,
                proto=socket.IPPROTO_TCP, ssl=ssl_context,
                # asyncio checks the certificate against server_hostname; "" means no SNI/check
                server_hostname=(server_hostname or "") if ssl_context is not None else None,
            )
        except Exception as error:
            self._report(error)
            return
        protocol, on_done = self._protocol, self._on_done
        if protocol is None or on_done is None:  # cancelled as the connect completed
            transport.abort()
            return
        self._protocol = self._on_done = None
        try:
            transport.set_write_buffer_limits(high=DEFAULT_HIGH_WATER, low=DEFAULT_LOW_WATER)
        except (AttributeError, NotImplementedError, ValueError):  # pragma: no cover - odd loops
            pass
        sock = transport.get_extra_info("socket")
        if sock is not None and family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - the loop set it already, or cannot
                pass
        stream = cast(StreamTransport, transport)
        # from here on the transport calls the driver directly (see _Relay)
        relay = _Relay(protocol, self._owner)
        self._owner._stream_opened(relay)
        transport.set_protocol(cast(asyncio.BaseProtocol, relay))
        relay.connection_made(stream)
        on_done(stream)
        # whatever reached the gate between the handshake and the hand-over, in order
        for data in gate.data:
            relay.data_received(data)
        if gate.eof:
            relay.eof_received()
        if gate.lost is not None:
            relay.connection_lost(gate.lost[0])

    def _report(self, error: BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        self._protocol = None
        if on_done is not None:
            on_done(error)


class AsyncioEventLoop:
    """The :class:`amqp_core.io.contract.EventLoop` over an asyncio loop.

    Also a :class:`~amqp_core.io.contract.RunnableLoop` for tests.

    :param loop: any asyncio event loop (uvloop's included)
    :raises TypeError: ``loop`` is not an ``asyncio.AbstractEventLoop``
    """

    __slots__ = ("_all_closed", "_streams", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"loop must be an asyncio.AbstractEventLoop, not {type(loop).__name__}"
            )
        #: The native asyncio loop.
        self.loop = loop
        self._streams: set[_Relay] = set()
        self._all_closed: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<AsyncioEventLoop {self.loop!r}>"

    def time(self) -> float:
        """The loop's monotonic clock."""
        return self.loop.time()

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next loop turn."""
        return self.loop.call_soon(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` on the loop's thread; callable from any thread.

        :raises RuntimeError: the loop is closed
        """
        self.loop.call_soon_threadsafe(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds (a negative delay counts as 0)."""
        return self.loop.call_later(max(0.0, delay), callback)

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve with ``loop.getaddrinfo``; ``on_done`` gets the list or the exception."""
        return _ResolveHandle(self.loop, (host, port, family, socktype, proto, flags), on_done)

    def connect_stream(
        self,
        sockaddr: tuple[Any, ...],
        family: int,
        protocol: StreamProtocol,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        on_done: OnStreamDone,
    ) -> TimerHandle:
        """Connect and build the transport with ``loop.create_connection`` (TLS through the
        loop when ``ssl_context`` is set); see the module comment."""
        return _StreamConnect(
            self, sockaddr, family, protocol, ssl_context, server_hostname, on_done
        )

    # ------------------------------------------------------------ stream bookkeeping

    @property
    def open_streams(self) -> int:
        """How many streams opened through this object have not reported ``connection_lost``."""
        return len(self._streams)

    def _stream_opened(self, relay: _Relay) -> None:
        self._streams.add(relay)

    def _stream_lost(self, relay: _Relay) -> None:
        self._streams.discard(relay)
        if not self._streams and self._all_closed is not None:
            waiter, self._all_closed = self._all_closed, None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_streams_closed(self, timeout: float = 5.0) -> None:
        """Wait until every stream opened here is gone (``connection_lost`` ran).

        A transport closes after the connection's close callbacks have run (a TLS
        stream exchanges close_notify first); waiting for it before closing the loop
        leaves no socket behind.  Streams still open after ``timeout`` seconds are
        aborted.
        """
        if not self._streams:
            return
        if self._all_closed is None or self._all_closed.done():
            self._all_closed = self.loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._all_closed), timeout)
        except TimeoutError:
            for relay in list(self._streams):
                if relay.transport is not None:
                    relay.transport.abort()  # type: ignore[attr-defined]
            if self._streams and self._all_closed is not None:
                await asyncio.wait_for(asyncio.shield(self._all_closed), 1.0)

    # ------------------------------------------------------------ RunnableLoop (tests)

    def run_until_stopped(self) -> None:
        """Test-only: ``loop.run_forever()`` until :meth:`stop_soon`."""
        self.loop.run_forever()

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return."""
        self.loop.call_soon_threadsafe(self.loop.stop)
