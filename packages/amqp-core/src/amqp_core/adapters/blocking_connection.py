"""pika's ``BlockingConnection``, driving the sans-I/O core directly over one socket.

Theory of operation: :class:`BlockingConnection` is the public, pika-shaped
surface over :class:`~._blocking_loop.BlockingLoop`, which owns the protocol
core, the socket transport and the one I/O loop every blocking call runs (see
that module for how waiting, heartbeats, event routing and callback dispatch
work).  This module adds the opening workflow and the public methods.

Opening follows pika's connection workflow: each parameter set in order,
every address ``getaddrinfo`` returns, ``connection_attempts`` passes with
``retry_delay`` seconds between them (both from the LAST parameter set).  One
try is a TCP connect within ``socket_timeout``, TLS when ``ssl_options`` is
set, and the AMQP handshake (answered by the core itself), all within
``stack_timeout``.  A refused login, an unknown vhost or a broker's close ends
the workflow at once.  The error raised is the last try's:
``AMQPConnectionError`` (with ``host`` and ``port``) for socket, TLS and
timeout failures, the handshake's own error otherwise
(``ProbableAuthenticationError``, ``ProbableAccessDeniedError``,
``IncompatibleProtocolError`` ...).

Writes are coalesced: a publish or an ack only appends frames to the core's
buffer, written when it passes ``FLUSH_THRESHOLD`` (64 KiB), whenever the
connection waits, before ``process_data_events`` / ``sleep`` / ``close``
return, and -- through a ``weakref.finalize`` hook -- when the connection is
garbage-collected or the interpreter exits.  A publish followed by
``time.sleep`` or by work on another connection is therefore not on the wire
yet: call ``process_data_events()`` to push it out.

``add_callback_threadsafe`` appends to a deque and writes one byte to the
transport's wake pipe, so a connection blocked in ``select`` wakes at once.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._core_factory import FINAL_HANDSHAKE_ERRORS, new_core
from ..exceptions import (
    AMQPConnectionError,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
)
from ..parameters import ConnectionParameters, Parameters
from ..protocol import Connection as CoreConnection
from ._blocking_channel import BlockingChannel
from ._blocking_confirms import ReturnedMessage
from ._blocking_loop import BlockingLoop, Timer, last_words
from ._blocking_transport import SocketTransport, TransportClosed, open_socket
from .utils.connection_workflow import AMQPConnectorException, AMQPConnectorStackTimeout

__all__ = ["BlockingChannel", "BlockingConnection", "ReturnedMessage"]

LOGGER = logging.getLogger(__name__)

def _as_configs(parameters: Any) -> tuple[Parameters, ...]:
    if parameters is None:
        return (ConnectionParameters(),)
    if isinstance(parameters, Parameters):
        return (parameters,)
    if isinstance(parameters, str | bytes) or not isinstance(parameters, Sequence):
        raise TypeError(
            "parameters must be a ConnectionParameters / URLParameters instance or a "
            f"sequence of them, not {type(parameters).__name__}"
        )
    configs = tuple(parameters)
    if not configs:
        raise ValueError(f"Expected a non-empty sequence of connection parameters, but got "
                         f"{parameters!r}.")
    for config in configs:
        if not isinstance(config, Parameters):
            raise TypeError(
                f"parameters must hold Parameters instances, not {type(config).__name__}"
            )
    return configs


def _number(value: Any, name: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kinds = "a number or None" if allow_none else "a number"
        raise TypeError(f"{name} must be {kinds}, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


class BlockingConnection(BlockingLoop):
    """A connection whose methods block until done (pika's ``BlockingConnection``).

    :param parameters: a ``ConnectionParameters`` / ``URLParameters``, a
        non-empty sequence of them tried in order, or None for the defaults
    :raises AMQPConnectionError: no attempt succeeded (socket errors, timeouts,
        TLS failures); ``host`` and ``port`` name the last broker tried
    :raises ProbableAuthenticationError: the broker refused the credentials
    :raises ProbableAccessDeniedError: the virtual host does not exist or is denied
    :raises IncompatibleProtocolError: the peer does not speak AMQP 0-9-1

    Callbacks (consumers, timers, Blocked/Unblocked, returns, thread-safe
    callbacks) run only inside :meth:`process_data_events`,
    :meth:`BlockingChannel.start_consuming`, :meth:`BlockingChannel.consume`
    and :meth:`sleep`.  Only :meth:`add_callback_threadsafe` may be called from
    another thread.  Usable as a context manager: leaving the block closes the
    connection if it is open.
    """

    def __init__(self, parameters: Any = None) -> None:
        configs = _as_configs(parameters)
        super().__init__(configs[-1])
        self.server_properties: dict[str, Any] = {}
        self._connect(configs)

    def __repr__(self) -> str:
        if self._error is not None:
            state = "CLOSED"
        elif self._core is None:
            state = "INIT"
        else:
            state = self._core.state.value
        return (
            f"<BlockingConnection {state} host={self._params.host} port={self._params.port}>"
        )

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if self.is_open:
            self.close()

    # ------------------------------------------------------------ opening

    def _connect(self, configs: tuple[Parameters, ...]) -> None:
        last = configs[-1]
        errors: list[BaseException] = []
        for attempt in range(last.connection_attempts):
            if attempt and last.retry_delay:
                # nothing is connected yet, so there is nothing to service meanwhile
                time.sleep(last.retry_delay)
            for params in configs:
                try:
                    addresses = socket.getaddrinfo(
                        params.host, params.port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP
                    )
                except OSError as error:
                    errors.append(AMQPConnectionError(
                        f"Could not resolve {params.host!r}: {error!r}",
                        host=params.host, port=params.port,
                    ))
                    continue
                for family, socktype, proto, _name, sockaddr in addresses:
                    try:
                        self._open(params, family, socktype, proto, sockaddr)
                        return
                    except AMQPConnectorException as failure:
                        LOGGER.info("Connection attempt to %s failed: %r", sockaddr, failure)
                        errors.append(AMQPConnectionError(
                            failure, host=params.host, port=params.port
                        ))
                    except AMQPConnectionError as failure:
                        LOGGER.info("Connection attempt to %s failed: %r", sockaddr, failure)
                        if isinstance(failure, FINAL_HANDSHAKE_ERRORS):
                            raise
                        errors.append(failure)
        LOGGER.error("Connection workflow failed: %r", errors[-1])
        raise errors[-1]

    def _open(self, params: Parameters, family: int, socktype: int, proto: int,
              sockaddr: tuple[Any, ...]) -> None:
        """One try: TCP, TLS, AMQP handshake, all before ``stack_timeout``."""
        deadline = None
        if params.stack_timeout:
            deadline = time.monotonic() + params.stack_timeout
        sock = open_socket(params, family, socktype, proto, sockaddr, deadline)
        self._params = params
        self._transport = transport = SocketTransport(sock)
        self._core = core = self._new_core(params)
        self._error = None
        self._error_reported = False
        self._opened = False
        core.initiate()
        try:
            if not self._wait(lambda: self._opened, deadline):
                raise AMQPConnectorStackTimeout(
                    f"Timeout while setting up the connection stack ({params.stack_timeout} s) "
                    f"to {params.host}:{params.port}"
                )
        except BaseException:
            transport.close()
            self._core = None
            raise
        self.server_properties = core.server_properties
        self._finalizer = weakref.finalize(self, last_words, core, transport)
        credentials = params.credentials
        if getattr(credentials, "erase_on_connect", False):
            credentials.erase_credentials()
        LOGGER.info("Connection opened to %s:%s", params.host, params.port)

    def _new_core(self, params: Parameters) -> CoreConnection:
        # weak: the finalizer keeps the core alive, the core must not keep us alive
        return new_core(params, weakref.ref(self))

    # ------------------------------------------------------------ state

    @property
    def is_open(self) -> bool:
        """True while the connection is open (not closing or closed)."""
        core = self._core
        return self._error is None and core is not None and core.is_open

    @property
    def is_closed(self) -> bool:
        """True once the connection has ended."""
        return self._error is not None

    @property
    def server_capabilities(self) -> dict[str, Any]:
        """The ``capabilities`` table of the broker's Connection.Start."""
        capabilities = self.server_properties.get("capabilities", {})
        return capabilities if isinstance(capabilities, dict) else {}

    @property
    def basic_nack_supported(self) -> bool:
        """The broker supports Basic.Nack."""
        return bool(self.server_capabilities.get("basic.nack", False))

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        """The broker sends Basic.Cancel when a consumer's queue goes away."""
        return bool(self.server_capabilities.get("consumer_cancel_notify", False))

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        """The broker supports exchange-to-exchange bindings."""
        return bool(self.server_capabilities.get("exchange_exchange_bindings", False))

    @property
    def publisher_confirms_supported(self) -> bool:
        """The broker supports publisher confirms."""
        return bool(self.server_capabilities.get("publisher_confirms", False))

    @property
    def channel_max(self) -> int:
        """Negotiated channel_max (the proposal until the connection is open)."""
        core = self._core
        return core.channel_max if core is not None else self._params.channel_max

    @property
    def frame_max(self) -> int:
        """Negotiated frame_max (the proposal until the connection is open)."""
        core = self._core
        return core.frame_max if core is not None else self._params.frame_max

    @property
    def heartbeat(self) -> int:
        """Negotiated heartbeat interval in seconds (0: off)."""
        core = self._core
        return core.heartbeat if core is not None else 0

    @property
    def tls_info(self) -> dict[str, Any] | None:
        """TLS details of the connection (not in pika); None over plain TCP or when closed.

        Keys: ``version`` (``"TLSv1.3"``), ``cipher`` (``(name, protocol, secret bits)``),
        ``peer_certificate`` (``ssl.SSLSocket.getpeercert()``: empty when not verified).
        """
        transport = self._transport
        if transport is None or transport.closed:
            return None
        sock = transport.socket
        if not isinstance(sock, ssl.SSLSocket):
            return None
        return {"version": sock.version(), "cipher": sock.cipher(),
                "peer_certificate": sock.getpeercert() or {}}

    # pika's legacy names
    basic_nack = basic_nack_supported
    consumer_cancel_notify = consumer_cancel_notify_supported
    exchange_exchange_bindings = exchange_exchange_bindings_supported
    publisher_confirms = publisher_confirms_supported

    def _require_open(self) -> CoreConnection:
        core = self._core
        if self._error is not None:
            self._raise_error()
        if core is None or not core.is_open:
            raise ConnectionWrongStateError(f"Connection is not open: {self!r}")
        return core

    # ------------------------------------------------------------ callbacks

    def add_on_connection_blocked_callback(self, callback: Callable[[Any, Any], Any]) -> None:
        """``callback(connection, frame.Method(spec.Connection.Blocked))`` on Connection.Blocked.

        See ``blocked_connection_timeout`` to bound how long a blocked call may wait.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(self, callback: Callable[[Any, Any], Any]) -> None:
        """``callback(connection, frame.Method(spec.Connection.Unblocked))`` on Unblocked."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._unblocked_callbacks.append(callback)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        """Call ``callback()`` after ``delay`` seconds, from ``process_data_events``.

        :returns: an opaque timer id for :meth:`remove_timeout`
        """
        seconds = _number(delay, "delay", allow_none=False)
        assert seconds is not None
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        return self._add_timer(seconds, callback)

    def remove_timeout(self, timeout_id: Any) -> None:
        """Cancel a timer made by :meth:`call_later` (no error if it already ran)."""
        if isinstance(timeout_id, Timer):
            timeout_id.cancelled = True

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` on the connection's thread as soon as possible.

        The only method that may be called from any thread.  The callback runs
        from ``process_data_events`` / ``start_consuming`` / ``consume`` /
        ``sleep``; a connection waiting inside one of them wakes at once.

        :raises ConnectionWrongStateError: the connection is closed
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        transport = self._transport
        if transport is None or self._error is not None:
            raise ConnectionWrongStateError(
                "BlockingConnection.add_callback_threadsafe() called on a closed connection."
            )
        self._threadsafe.append(callback)
        try:
            transport.wake()
        except TransportClosed:
            raise ConnectionWrongStateError(
                "BlockingConnection.add_callback_threadsafe() called on a closed connection."
            ) from None

    # ------------------------------------------------------------ commands

    def channel(self, channel_number: int | None = None) -> BlockingChannel:
        """Open a channel (the next free number unless ``channel_number`` is given).

        :raises ConnectionWrongStateError: the connection is not open
        :raises InvalidChannelNumber: the number is out of range or in use
        :raises NoFreeChannels: every channel number is in use
        """
        core = self._require_open()
        number = core.open_channel(channel_number)
        channel = BlockingChannel(self, number, core, self._ready)
        self._channels[number] = channel
        self._wait(lambda: not channel._is_opening())
        if not channel.is_open:
            channel._raise_not_open()
        return channel

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the channels that are open, then the connection, waiting for the broker.

        :raises ConnectionWrongStateError: the connection is not open
        """
        if isinstance(reply_code, bool) or not isinstance(reply_code, int):
            raise TypeError(f"reply_code must be int, not {type(reply_code).__name__}")
        if not isinstance(reply_text, str):
            raise TypeError(f"reply_text must be str, not {type(reply_text).__name__}")
        if not self.is_open:
            message = (f"BlockingConnection.close({reply_code}, {reply_text!r}) called on "
                       "closed connection.")
            LOGGER.error(message)
            raise ConnectionWrongStateError(message)
        core = self._core
        assert core is not None
        LOGGER.info("Closing connection (%s): %s", reply_code, reply_text)
        closing = [channel for channel in self._channels.values() if channel.is_open]
        for channel in closing:
            channel._begin_close(reply_code, reply_text)
        if closing:
            # channels first (as pika does), so no channel frame follows Connection.Close
            self._wait(lambda: all(channel.is_closed for channel in closing))
        self._close_reason = (reply_code, reply_text)
        core.close(reply_code, reply_text)
        self._wait(lambda: self._error is not None, raise_error=False)
        if not isinstance(self._error, ConnectionClosedByClient):
            self._raise_error()
        self._error_reported = True

    def update_secret(self, new_secret: str | bytes, reason: str) -> None:
        """Give the broker a new secret (e.g. a refreshed OAuth 2 token) and wait for its Ok."""
        if not isinstance(new_secret, str | bytes):
            raise TypeError(f"new_secret must be str or bytes, not {type(new_secret).__name__}")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be str, not {type(reason).__name__}")
        core = self._require_open()
        target = self._secret_updates + 1
        core.update_secret(new_secret, reason)
        self._wait(lambda: self._secret_updates >= target)

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Do I/O and dispatch the callbacks that are ready.

        :param time_limit: 0 (the default) returns as soon as what was
            readable has been processed; ``N`` seconds waits at most that long
            for something to dispatch; None waits until there is something
        """
        limit = _number(time_limit, "time_limit", allow_none=True)
        if self._error is not None:
            self._raise_error()
        ready = self._ready
        self._woken = False
        if self._dispatch_depth:
            # nested in a callback: no dispatch here, so stop at anything new
            seen = len(ready)

            def done() -> bool:
                return len(ready) > seen or self._woken
        else:

            def done() -> bool:
                return bool(ready) or self._woken

        if done():
            self._poll(0.0)  # what is ready is dispatched below; still service the socket
        else:
            deadline = None if limit is None else time.monotonic() + limit
            self._wait(done, deadline, user_timers=True)
        if not self._dispatch_depth:
            self._dispatch()
        self._flush()
        if self._error is not None and not self._error_reported:
            self._raise_error()  # a close() from a callback is not an error: no raise then

    def sleep(self, duration: float) -> None:
        """Wait ``duration`` seconds while doing I/O and dispatching callbacks."""
        seconds = _number(duration, "duration", allow_none=False)
        assert seconds is not None
        deadline = time.monotonic() + seconds
        left = seconds
        while True:
            self.process_data_events(left)
            left = deadline - time.monotonic()
            if left <= 0:
                return
