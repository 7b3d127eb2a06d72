"""``TwistedProtocolConnection``: pika's Twisted ``Protocol`` with Deferreds.

Theory of operation
-------------------
Twisted makes the connection (``ClientCreator``, ``connectProtocol`` with any
client endpoint, ``connectTCP``/``connectSSL``: TCP or Twisted's TLS), so the
host, port and TLS settings of the parameters are not used, as in pika.  The
AMQP side is amqp_core's one callback connection
(:class:`~amqp_adapter_twisted.TwistedConnection`, created with
``internal_connection_workflow=False``) whose loop, instead of connecting,
adopts the transport Twisted handed to this protocol:

* ``connectionMade`` starts the connection's attempt on the peer's address;
  the loop's ``connect_stream`` wraps Twisted's transport in a
  :class:`~amqp_adapter_twisted._loop.TwistedStreamTransport` on the next
  reactor turn and hands it to the driver (protocol header, handshake, the
  ``stack_timeout`` of the parameters);
* from then on ``dataReceived`` IS the driver's ``data_received`` (an instance
  attribute), so bytes go from Twisted's read into the protocol core with no
  call in between; the driver writes once per reactor turn, straight into
  Twisted's transport;
* ``connectionLost`` goes to the stream, which reports it to the driver once:
  the connection ends with ``StreamLostError`` (before the handshake is done:
  ``ready`` errbacks).

Deferreds: ``ready`` fires (with this protocol) when the AMQP connection is
open, or errbacks with why it could not open (``ProbableAuthenticationError``,
``StreamLostError`` ...); ``closed`` fires with the close reason (a callback,
not an errback, as in pika).  ``channel()`` is derived from the callback
connection's ``channel(on_open_callback=...)`` by the generic wrapper and
fires with a :class:`~amqp_adapter_twisted.TwistedChannel`; pending ones
errback with the close reason if the connection ends first.

The thread-safe entry point is :meth:`add_callback_threadsafe`
(``reactor.callFromThread``); everything else runs on the reactor's thread.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from amqp_core.adapters.utils import connection_workflow as workflow
from amqp_core.exceptions import AMQPConnectionError
from amqp_core.io.contract import OnStreamDone, StreamProtocol, TimerHandle
from amqp_core.parameters import Parameters

from ._deferreds import Completion, DeferredOwner, install
from ._loop import TwistedEventLoop, TwistedStreamTransport, default_reactor, require_reactor
from .channel import TwistedChannel
from .connection import TwistedConnection

__all__ = ["CONNECTION_DEFERREDS", "TwistedProtocolConnection"]


def _wrap_channel(_owner: Any, channel: Any) -> TwistedChannel:
    return TwistedChannel(channel)


def _close_unwanted_channel(channel: Any) -> None:
    if isinstance(channel, TwistedChannel) and channel.is_open:
        channel.close()


#: TwistedProtocolConnection's generic Deferred-returning methods.
CONNECTION_DEFERREDS: Mapping[str, Completion] = {
    "channel": Completion("on_open_callback", _wrap_channel, _close_unwanted_channel),
    "update_secret": Completion("callback"),
}


class _Adoption:
    """The handle of a "connect" that adopts the protocol's transport (next reactor turn)."""

    __slots__ = ("_call", "_on_done", "_owner", "_protocol")

    def __init__(
        self, loop: TwistedEventLoop, owner: TwistedProtocolConnection,
        protocol: StreamProtocol, on_done: OnStreamDone,
    ) -> None:
        self._owner = owner
        self._protocol = protocol
        self._on_done: OnStreamDone | None = on_done
        self._call = loop.call_soon(self._adopt)

    def _adopt(self) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is None:
            return
        stream = self._owner._attach(self._protocol)
        if stream is None:
            on_done(ConnectionResetError("the connection was lost before the AMQP handshake"))
            return
        self._protocol.connection_made(stream)
        on_done(stream)

    def cancel(self) -> None:
        """Give up before the hand-over: close Twisted's connection, call nothing."""
        if self._on_done is not None:
            self._on_done = None
            self._call.cancel()
            self._owner._abort_transport()


class _AdoptingLoop(TwistedEventLoop):
    """The contract loop of a :class:`TwistedProtocolConnection`: connects nothing, adopts."""

    __slots__ = ("_owner",)

    def __init__(self, reactor: Any, owner: TwistedProtocolConnection) -> None:
        super().__init__(reactor)
        self._owner = owner

    def connect_stream(
        self, sockaddr: tuple[Any, ...], family: int, protocol: StreamProtocol,
        ssl_context: Any, server_hostname: str | None, on_done: OnStreamDone,
    ) -> TimerHandle:
        """Hand the transport Twisted connected to ``protocol`` (TLS, if any, is Twisted's)."""
        return _Adoption(self, self._owner, protocol, on_done)


class _ProtocolBoundConnection(TwistedConnection):
    """The callback connection under a :class:`TwistedProtocolConnection`."""

    def start_on_transport(self, sockaddr: tuple[Any, ...], family: int) -> None:
        """Run the AMQP handshake over the transport the loop adopts."""
        self._start_attempt(sockaddr, family, self._on_attempt_done)

    def _on_attempt_done(self, error: Exception | None) -> None:
        if error is None:
            self._on_open_succeeded()
            return
        if isinstance(error, workflow.AMQPConnectorPhaseErrorBase):
            inner = error.exception
            if isinstance(inner, AMQPConnectionError):
                self._on_open_failed(inner)
                return
            if isinstance(error, workflow.AMQPConnectorAMQPHandshakeError) or isinstance(
                inner, OSError
            ):
                self._on_open_failed(
                    AMQPConnectionError(repr(inner), host=self.params.host, port=self.params.port)
                )
                return
        self._on_open_failed(error)


def _family_of(address: Any) -> int:
    kind = type(address).__name__
    if kind == "IPv6Address":
        return socket.AF_INET6
    if kind == "UNIXAddress":
        return socket.AF_UNIX
    return socket.AF_INET


class TwistedProtocolConnection(Protocol, DeferredOwner):
    """pika's ``TwistedProtocolConnection``: connect it with Twisted, wait for ``ready``.

    ::

        conn = await ClientCreator(reactor, TwistedProtocolConnection, params).connectTCP(
            "127.0.0.1", 5672)
        await conn.ready
        channel = await conn.channel()
        await channel.queue_declare("jobs")

    :param parameters: connection parameters (credentials, virtual host, heartbeat,
        ``stack_timeout`` ...; host, port and TLS are Twisted's business)
    :param custom_reactor: the reactor (the global one when None)
    :raises TypeError: bad parameters or reactor

    Attributes: ``ready`` (fires with this protocol once the AMQP connection is
    open, errbacks if it cannot open), ``closed`` (fires with the close reason).
    """

    _TARGET = "callback_connection"

    def __init__(self, parameters: Parameters | None = None, custom_reactor: Any = None) -> None:
        reactor = default_reactor() if custom_reactor is None else require_reactor(
            custom_reactor, "custom_reactor"
        )
        self._reactor = reactor
        self._pending = set()
        self._failure = None
        self._stream: TwistedStreamTransport | None = None
        self._lost: Failure | None = None
        self._close_waiters: list[Deferred[Any]] = []
        #: Fires with this protocol once the AMQP connection is open.
        self.ready: Deferred[Any] | None = Deferred()
        self.ready.addCallback(lambda _: self.connectionReady())
        #: Fires with the reason once the connection has ended.
        self.closed: Deferred[BaseException] = Deferred()
        self._impl = _ProtocolBoundConnection(
            parameters=parameters,
            on_open_callback=self._on_opened,
            on_open_error_callback=self._on_open_failed,
            on_close_callback=self._on_closed,
            custom_ioloop=_AdoptingLoop(reactor, self),
            internal_connection_workflow=False,
        )

    def __repr__(self) -> str:
        return f"<TwistedProtocolConnection {self._impl!r}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == self._TARGET:
            raise AttributeError(name)
        return getattr(self._impl, name)

    # ------------------------------------------------------------ public API

    @property
    def callback_connection(self) -> TwistedConnection:
        """The amqp_core callback-API connection underneath."""
        return self._impl

    @property
    def is_open(self) -> bool:
        """True while the AMQP connection is open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """True once the AMQP connection has ended."""
        return self._impl.is_closed

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reactor's thread (``reactor.callFromThread``); any thread."""
        self._impl.add_callback_threadsafe(callback)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> Deferred[Any]:
        """Close the connection (unless closing or closed already).

        :returns: a Deferred firing with the close reason once the connection has ended
        """
        impl = self._impl
        if not impl.is_closed and not impl.is_closing:
            impl.close(reply_code, reply_text)
        # called from a channel's close callback while the connection ends, the connection is
        # closed but its close callback (which sets the reason) has not run yet: wait for it
        if self._failure is not None:
            return succeed(self._failure)
        waiter: Deferred[Any] = Deferred()
        self._close_waiters.append(waiter)
        return waiter

    def connectionReady(self) -> TwistedProtocolConnection:
        """Called when the connection is open; its result is what ``ready`` fires with."""
        return self

    # ------------------------------------------------------------ IProtocol

    def connectionMade(self) -> None:
        """Twisted connected: start the AMQP handshake over this transport."""
        transport: Any = self.transport
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except (OSError, AttributeError, NotImplementedError):
                pass
        peer = transport.getPeer()
        address = (getattr(peer, "host", str(peer)), getattr(peer, "port", 0))
        self._impl.start_on_transport(address, _family_of(peer))

    def dataReceived(self, data: bytes) -> None:
        """Replaced by the driver's ``data_received`` once the stream is adopted."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Twisted's connection is gone: the AMQP connection ends (``StreamLostError``)."""
        self._lost = reason
        stream = self._stream
        if stream is not None:
            stream.twisted_connection_lost(reason)

    # ------------------------------------------------------------ adoption (the loop's)

    def _attach(self, protocol: StreamProtocol) -> TwistedStreamTransport | None:
        if self._lost is not None or self.transport is None:
            return None
        stream = TwistedStreamTransport(self.transport, protocol)
        self._stream = stream
        self.dataReceived = protocol.data_received  # type: ignore[method-assign]
        return stream

    def _abort_transport(self) -> None:
        transport: Any = self.transport
        if transport is not None and self._lost is None:
            abort = getattr(transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:  # pragma: no cover - transports without abortConnection
                transport.loseConnection()

    # ------------------------------------------------------------ connection callbacks

    def _on_opened(self, _connection: Any) -> None:
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.callback(None)

    def _on_open_failed(self, _connection: Any, error: BaseException) -> None:
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.errback(error)
        self._finish(error)

    def _on_closed(self, _connection: Any, reason: BaseException) -> None:
        self._finish(reason)

    def _finish(self, reason: BaseException) -> None:
        if self._failure is not None:
            return
        self._failure = reason
        self._fail_pending(reason)
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(reason)
        if not self.closed.called:
            self.closed.callback(reason)
        if self._lost is None and self.transport is not None and self._stream is None:
            self._abort_transport()  # the handshake never started: nothing else closes it


install(TwistedProtocolConnection, CONNECTION_DEFERREDS, TwistedConnection)
