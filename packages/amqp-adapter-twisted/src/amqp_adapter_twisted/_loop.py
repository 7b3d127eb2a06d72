"""The amqp_core loop contract over a Twisted reactor, and streams over Twisted transports.

Theory of operation
-------------------
:class:`TwistedEventLoop` implements :class:`amqp_core.io.contract.EventLoop`
with the reactor's own services:

* ``time`` is ``reactor.seconds()``: the clock ``callLater`` uses, so timers
  and heartbeats follow the reactor's notion of time (simulated in Twisted's
  test reactors).  ``call_soon`` is ``callLater(0, ...)``, ``call_later`` is
  ``callLater``; ``call_soon_threadsafe`` is ``callFromThread`` (the only
  thread-safe method; it wakes an idle reactor).
* ``getaddrinfo`` runs in amqp_core's small resolver pool and comes back
  through ``callFromThread`` (the reactor's own thread pool only starts once
  ``reactor.run()`` has, which would stall a reactor driven by
  :meth:`TwistedEventLoop.run_until_stopped`).
* ``connect_stream`` connects with ``reactor.connectTCP`` to the numeric
  address the workflow resolved (no second resolution; not through an endpoint,
  whose wrapping protocol would add a call per read and whose IPv6 resolution
  needs the reactor's thread pool); TCP_NODELAY is set once connected.  The Twisted protocol is a
  tiny relay whose ``dataReceived`` is replaced by the driver's own bound
  method at hand-over, so bytes go from Twisted's read straight into the
  driver.  Writes go straight to Twisted's ``transport.write``, which only
  appends to a list and lets the reactor send once per turn: together with the
  driver's one flush per turn, that is the write coalescing.  TLS with the
  standard-library ``ssl.SSLContext`` of the connection parameters is done by
  :mod:`._tls` over the same TCP transport (Twisted's own TLS needs pyOpenSSL
  contexts, which an ``ssl.SSLContext`` cannot be turned into).
* :class:`TwistedStreamTransport` is the contract's transport over any
  connected Twisted transport; :class:`~amqp_adapter_twisted.TwistedProtocolConnection`
  uses it for the transport Twisted handed to it (TCP or Twisted's TLS).

Write back-pressure, through Twisted's public producer/consumer interface
only: the stream registers itself with ``transport.registerProducer(stream,
True)`` as an ``IPushProducer``, so Twisted calls ``pauseProducing`` when its
buffer passes the transport's ``bufferSize`` (64 KiB) and ``resumeProducing``
once it has drained; the stream keeps that "paused" state and tells the
protocol ``pause_writing`` / ``resume_writing`` (each once per change).
Twisted publishes no byte count of its buffer, so ``get_write_buffer_size``
is derived from that state: the high-water mark while paused, 0 otherwise
(nothing reads Twisted's private buffer attributes).  The producer is
unregistered before closing: Twisted does not close a transport whose paused
producer is still registered.

End of stream: without half-close support Twisted reports the peer's FIN as
``connectionLost(ConnectionDone)``; the stream turns that into the contract's
``eof_received()`` followed by ``connection_lost(None)``.

For tests only, :meth:`TwistedEventLoop.run_until_stopped` drives the reactor
one iteration at a time (``runUntilCurrent`` + ``doIteration``, what
``reactor.run`` does) without starting it, so it can be run again and again
in one process; a reactor that ``reactor.run()`` already started is not
driven from here.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from typing import Any

from twisted.internet import error as twisted_error
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from amqp_core.io.contract import (
    Callback,
    OnResolved,
    OnStreamDone,
    StreamProtocol,
    StreamTransport,
    TimerHandle,
)
from amqp_core.io.resolver import threaded_getaddrinfo

__all__ = [
    "CONNECT_BACKSTOP",
    "TwistedEventLoop",
    "TwistedStreamTransport",
    "default_reactor",
    "to_os_error",
]

LOGGER = logging.getLogger(__name__)

#: Seconds after which Twisted itself gives up a TCP connect.  The connection's
#: ``socket_timeout`` / ``stack_timeout`` normally end an attempt long before.
CONNECT_BACKSTOP = 600.0
#: The write high-water mark assumed for a transport without a ``bufferSize`` (Twisted's own
#: default): what ``get_write_buffer_size`` reports while the producer is paused.
DEFAULT_HIGH_WATER = 1 << 16
#: Longest sleep of :meth:`TwistedEventLoop.run_until_stopped` between checks.
_MAX_IDLE = 0.25


def default_reactor() -> Any:
    """The global reactor (``twisted.internet.reactor``), installing the default one if needed."""
    from twisted.internet import reactor

    return reactor


def require_reactor(reactor: Any, name: str = "custom_reactor") -> Any:
    """Check that ``reactor`` has what the contract needs; return it.

    :raises TypeError: it lacks ``callLater``, ``callFromThread``, ``seconds`` or ``connectTCP``
    """
    missing = [
        attribute
        for attribute in ("callLater", "callFromThread", "seconds", "connectTCP")
        if not callable(getattr(reactor, attribute, None))
    ]
    if missing:
        raise TypeError(
            f"{name} must be a Twisted reactor (IReactorTime, IReactorThreads, IReactorTCP), "
            f"not {type(reactor).__name__} (it lacks {', '.join(missing)})"
        )
    return reactor


def to_os_error(failure: Failure | BaseException) -> BaseException:
    """Twisted's connect errors as the built-in ``OSError`` subclasses other adapters raise."""
    value = failure.value if isinstance(failure, Failure) else failure
    if isinstance(value, twisted_error.ConnectionRefusedError):
        return ConnectionRefusedError(errno.ECONNREFUSED, f"Connection refused ({value})")
    if isinstance(value, twisted_error.TimeoutError | twisted_error.TCPTimedOutError):
        return TimeoutError(errno.ETIMEDOUT, f"Connection timed out ({value})")
    if isinstance(value, twisted_error.ConnectionLost | twisted_error.ConnectionDone):
        return ConnectionResetError(errno.ECONNRESET, f"Connection lost ({value})")
    if isinstance(value, twisted_error.ConnectError):
        os_errno = value.osError if isinstance(value.osError, int) else errno.ECONNABORTED
        return OSError(os_errno, str(value))
    return value if value is not None else ConnectionResetError(errno.ECONNRESET, "unknown")


class _Call:
    """A :class:`~amqp_core.io.contract.TimerHandle` over a Twisted ``DelayedCall``."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def cancel(self) -> None:
        """Cancel if still pending (no-op after it ran or was cancelled)."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()


def _peer_tuple(address: Any) -> tuple[Any, ...] | None:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return None
    return (host, port)


@implementer(IPushProducer)
class TwistedStreamTransport:
    """The contract's :class:`~amqp_core.io.contract.StreamTransport` over a Twisted transport.

    Writes go straight to the Twisted transport (it buffers and sends once per
    reactor turn).  The owner forwards the Twisted protocol's ``connectionLost``
    to :meth:`twisted_connection_lost`, which calls ``protocol.connection_lost``
    exactly once (with None after a local close or a clean end of stream).

    :param transport: a connected Twisted ``ITransport`` (TCP, or Twisted's TLS)
    :param protocol: the contract protocol to report to (the driver)
    """

    __slots__ = (
        "_closing", "_high_water", "_lost", "_paused", "_protocol", "_registered", "transport",
        "write",
    )

    def __init__(self, transport: Any, protocol: StreamProtocol) -> None:
        #: The Twisted transport underneath.
        self.transport = transport
        self._protocol: StreamProtocol | None = protocol
        self._closing = False
        self._lost = False
        self._paused = False
        self._registered = False
        high_water = getattr(transport, "bufferSize", None)
        self._high_water = (
            high_water if isinstance(high_water, int) and high_water > 0 else DEFAULT_HIGH_WATER
        )
        #: ``write(data)``: Twisted's own ``transport.write`` (no extra call on the hot path).
        self.write = transport.write
        register = getattr(transport, "registerProducer", None)
        if register is not None:
            try:
                register(self, True)
                self._registered = True
            except RuntimeError:  # someone else registered a producer: no back-pressure then
                LOGGER.debug("transport %r already has a producer", transport)

    def __repr__(self) -> str:
        return f"<TwistedStreamTransport {self.transport!r}>"

    # ------------------------------------------------------------ StreamTransport

    def close(self) -> None:
        """Send what is buffered, then close; ``connection_lost(None)`` follows."""
        if not self._closing:
            self._closing = True
            self._unregister_producer()
            self.transport.loseConnection()

    def _unregister_producer(self) -> None:
        # Twisted does not close a transport whose (paused) producer is still registered:
        # it resumes the producer when the buffer drains instead.
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def abort(self) -> None:
        """Close at once, dropping buffered data; ``connection_lost(None)`` follows."""
        self._closing = True
        self._unregister_producer()
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - transports without abortConnection
            self.transport.loseConnection()

    def get_write_buffer_size(self) -> int:
        """Twisted tells no byte count: its high-water mark while it has paused us, else 0.

        The "paused" state comes from Twisted's ``pauseProducing`` /
        ``resumeProducing`` (the public producer interface); a transport that
        refused our producer always reports 0.
        """
        return self._high_water if self._paused else 0

    @property
    def writing_paused(self) -> bool:
        """True between Twisted's ``pauseProducing`` and ``resumeProducing``."""
        return self._paused

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"socket"``, ``"peername"``, ``"sockname"`` like asyncio; ``"twisted_transport"``."""
        transport = self.transport
        if name == "socket":
            get_handle = getattr(transport, "getHandle", None)
            handle = get_handle() if get_handle is not None else None
            return handle if isinstance(handle, socket.socket) else default
        if name == "peername":
            peer = _peer_tuple(transport.getPeer())
            return default if peer is None else peer
        if name == "sockname":
            host = _peer_tuple(transport.getHost())
            return default if host is None else host
        if name == "twisted_transport":
            return transport
        return default

    # ------------------------------------------------------------ from the Twisted side

    def twisted_connection_lost(self, reason: Failure) -> None:
        """The Twisted protocol's ``connectionLost``: report it once to the contract protocol."""
        if self._lost:
            return
        self._lost = True
        protocol, self._protocol = self._protocol, None
        if protocol is None:
            return
        exc: BaseException | None = None
        if self._closing:
            pass
        elif isinstance(reason.value, twisted_error.ConnectionDone):
            # the peer closed its side: Twisted (without half-close) reports it as the end
            try:
                protocol.eof_received()
            finally:
                protocol.connection_lost(None)
            return
        else:
            exc = to_os_error(reason)
        protocol.connection_lost(exc)

    # ------------------------------------------------------------ IPushProducer

    def pauseProducing(self) -> None:
        """Twisted's buffer is full: the protocol should stop writing (told once)."""
        if not self._paused:
            self._paused = True
            if self._protocol is not None:
                self._protocol.pause_writing()

    def resumeProducing(self) -> None:
        """Twisted's buffer drained (told once per pause)."""
        if self._paused:
            self._paused = False
            if self._protocol is not None:
                self._protocol.resume_writing()

    def stopProducing(self) -> None:
        """The connection is going away (``connectionLost`` follows)."""


class _Relay(Protocol):
    """The Twisted protocol of one stream opened by :meth:`TwistedEventLoop.connect_stream`.

    At hand-over ``dataReceived`` becomes an instance attribute: the driver's
    ``data_received`` (plain TCP) or the TLS layer's ``raw_data_received``.
    """

    def __init__(self, connect: _StreamConnect) -> None:
        self._connect: _StreamConnect | None = connect
        self.stream: Any = None  # has twisted_connection_lost(reason)

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:  # pragma: no cover - not a TCP socket after all
                pass
        connect, self._connect = self._connect, None
        if connect is None:  # pragma: no cover - built by _RelayFactory only
            self.abort()
            return
        connect._tcp_connected(self)

    def abort(self) -> None:
        """Abort the TCP connection."""
        transport: Any = self.transport
        transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        """Replaced at hand-over; data before that has nowhere to go (nothing was sent yet)."""
        LOGGER.debug("%d bytes arrived before the stream was handed over; dropped", len(data))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.twisted_connection_lost(reason)


class _RelayFactory(ClientFactory):
    """Builds the one :class:`_Relay` of a connect attempt and reports a failed connect."""

    noisy = False

    def __init__(self, connect: _StreamConnect) -> None:
        self._connect = connect

    def buildProtocol(self, addr: Any) -> Protocol:
        relay = _Relay(self._connect)
        relay.factory = self
        return relay

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._connect._fail(to_os_error(reason))


class _StreamConnect:
    """The handle :meth:`TwistedEventLoop.connect_stream` returns (one connect attempt)."""

    __slots__ = (
        "_connector", "_on_done", "_protocol", "_relay", "_server_hostname", "_ssl_context",
    )

    def __init__(
        self, reactor: Any, sockaddr: tuple[Any, ...], protocol: StreamProtocol,
        ssl_context: ssl.SSLContext | None, server_hostname: str | None,
        on_done: OnStreamDone,
    ) -> None:
        self._protocol: StreamProtocol | None = protocol
        self._on_done: OnStreamDone | None = on_done
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._relay: _Relay | None = None
        self._connector = reactor.connectTCP(
            sockaddr[0], sockaddr[1], _RelayFactory(self), timeout=CONNECT_BACKSTOP
        )

    def cancel(self) -> None:
        """Give up: close the half-open socket, call nothing (no-op once connected)."""
        if self._on_done is None:
            return
        self._on_done = None
        self._protocol = None
        relay, self._relay = self._relay, None
        if relay is not None:  # TCP is up, the TLS handshake is not done
            relay.stream = None
            relay.abort()
        else:
            self._connector.stopConnecting()

    def _fail(self, error: BaseException) -> None:
        on_done, self._on_done = self._on_done, None
        self._protocol = None
        self._relay = None
        if on_done is not None:
            on_done(error)

    def _tcp_connected(self, relay: _Relay) -> None:
        protocol = self._protocol
        if protocol is None or self._on_done is None:  # pragma: no cover - cancelled meanwhile
            relay.abort()
            return
        if self._ssl_context is None:
            stream = TwistedStreamTransport(relay.transport, protocol)
            relay.stream = stream
            relay.dataReceived = protocol.data_received  # type: ignore[method-assign]
            self._ready(stream)
            return
        from ._tls import TLSStreamTransport

        self._relay = relay
        tls = TLSStreamTransport(
            relay.transport, protocol, self._ssl_context, self._server_hostname,
            self._tls_done,
        )
        relay.stream = tls
        relay.dataReceived = tls.raw_data_received  # type: ignore[method-assign]
        tls.start_handshake()

    def _tls_done(self, result: StreamTransport | BaseException) -> None:
        self._relay = None
        if isinstance(result, BaseException):
            self._fail(result)
        else:
            self._ready(result)

    def _ready(self, stream: StreamTransport) -> None:
        protocol, self._protocol = self._protocol, None
        on_done, self._on_done = self._on_done, None
        assert protocol is not None and on_done is not None
        protocol.connection_made(stream)
        on_done(stream)


class TwistedEventLoop:
    """The :class:`amqp_core.io.contract.EventLoop` over a Twisted reactor.

    Also a :class:`~amqp_core.io.contract.RunnableLoop` for tests (see
    :meth:`run_until_stopped`).

    :param reactor: the reactor (the global ``twisted.internet.reactor`` when None)
    :raises TypeError: ``reactor`` is not a reactor
    """

    __slots__ = ("_stopping", "reactor")

    def __init__(self, reactor: Any = None) -> None:
        #: The native reactor.
        self.reactor = require_reactor(default_reactor() if reactor is None else reactor,
                                       "reactor")
        self._stopping = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.reactor!r}>"

    def time(self) -> float:
        """``reactor.seconds()``: the clock of ``callLater``."""
        seconds: float = self.reactor.seconds()
        return seconds

    def call_soon(self, callback: Callback) -> TimerHandle:
        """Run ``callback`` on the next reactor turn (``callLater(0, ...)``)."""
        return _Call(self.reactor.callLater(0, callback))

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` on the reactor's thread: ``reactor.callFromThread`` (thread-safe)."""
        self.reactor.callFromThread(callback)

    def call_later(self, delay: float, callback: Callback) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds (a negative delay counts as 0)."""
        return _Call(self.reactor.callLater(max(0.0, delay), callback))

    def getaddrinfo(
        self, host: str, port: int, family: int, socktype: int, proto: int, flags: int,
        on_done: OnResolved,
    ) -> TimerHandle:
        """Resolve in amqp_core's resolver threads; ``on_done`` runs on the reactor's thread."""
        return threaded_getaddrinfo(
            self.reactor.callFromThread, host, port, family, socktype, proto, flags, on_done
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
        """Connect with ``reactor.connectTCP`` (TLS over it when ``ssl_context`` is set)."""
        return _StreamConnect(
            self.reactor, sockaddr, protocol, ssl_context, server_hostname, on_done
        )

    # ------------------------------------------------------------ RunnableLoop (tests)

    def run_until_stopped(self) -> None:
        """Test-only: drive the reactor until :meth:`stop_soon` (see the module comment).

        :raises RuntimeError: the reactor is running already (``reactor.run()``)
        """
        reactor = self.reactor
        if getattr(reactor, "running", False):
            raise RuntimeError("the reactor is running already: it cannot be driven from here")
        self._stopping = False
        while not self._stopping:
            reactor.runUntilCurrent()
            if self._stopping:
                break
            timeout = reactor.timeout()
            reactor.doIteration(_MAX_IDLE if timeout is None else min(timeout, _MAX_IDLE))

    def stop_soon(self) -> None:
        """Test-only, thread-safe: make :meth:`run_until_stopped` return after this turn."""
        self.reactor.callFromThread(self._stop)

    def _stop(self) -> None:
        self._stopping = True
