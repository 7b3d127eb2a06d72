"""pika's ``BlockingConnection``, driving the sans-I/O core directly over one socket.

Theory of operation: there is no hidden event loop.  The connection owns a
protocol core (:class:`amqp_core.protocol.Connection`) and a
:class:`~._blocking_transport.SocketTransport` (the socket, one selector, and a
self-pipe).  Control is inside the library only during a call, and every call
that must wait runs :meth:`BlockingConnection._wait`: write what the core
queued, then loop ``select`` (its timeout is the nearest of the caller's
deadline, the core's heartbeat timer, the blocked-connection deadline and,
when dispatching, the user timers) -> ``core.receive_data`` -> process every
core event -> ``core.handle_timer`` when due -> write, until the caller's
condition holds.  Heartbeats are therefore answered whenever a call waits.

Events change state at once (a reply fills its channel's slot, a confirm
settles a publish, a close marks the channel) but never call user code.  User
callbacks -- deliveries to ``basic_consume`` consumers, broker cancellations,
returned messages, Blocked/Unblocked, timers, ``add_callback_threadsafe`` --
become items of one FIFO *ready* queue, dispatched only by
``process_data_events`` (and ``start_consuming`` / ``consume`` / ``sleep``,
which call it) when it is not nested inside another callback, as pika does.

``add_callback_threadsafe`` appends to a deque and writes one byte to the
transport's wake pipe, so a connection blocked in ``select`` wakes at once.

Writes are coalesced: a publish or an ack only appends frames to the core's
buffer, written when it passes ``FLUSH_THRESHOLD`` and whenever the
connection waits, before ``process_data_events`` / ``close`` return, and (by
a ``weakref.finalize`` hook) when the connection is garbage-collected or the
interpreter exits.

Opening follows pika's connection workflow: each parameter set in order,
every address ``getaddrinfo`` returns, ``connection_attempts`` passes with
``retry_delay`` seconds between them (both from the LAST parameter set); a
refused login, an unknown vhost or a broker's close ends the workflow at once.
The error raised is the last attempt's: ``AMQPConnectionError`` for socket,
TLS and timeout failures, the handshake's own error otherwise.

Every way the connection ends (our close acknowledged, the broker's close,
a lost stream, a heartbeat or blocked-connection timeout, a protocol error)
goes through :meth:`BlockingConnection._terminate` once; the first call that
observes it raises the error (except our own close), later calls raise
``ConnectionWrongStateError`` and channel calls ``ChannelWrongStateError``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import platform
import socket
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

from .. import frame, spec
from .._version import __version__ as _version
from ..exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteProtocolError,
    StreamLostError,
)
from ..parameters import ConnectionParameters, Parameters
from ..protocol import NEED_DATA
from ..protocol import Connection as CoreConnection
from ..protocol import events as ev
from ._blocking_channel import BlockingChannel, Call
from ._blocking_confirms import ReturnedMessage
from ._blocking_transport import SocketTransport, TransportClosed, open_socket
from .utils.connection_workflow import AMQPConnectorException, AMQPConnectorStackTimeout

__all__ = ["BlockingChannel", "BlockingConnection", "ReturnedMessage"]

LOGGER = logging.getLogger(__name__)

PRODUCT: Final = "amqp-core"

#: An item of the ready queue: a delivery for a ``basic_consume`` consumer, or a ``Call``.
ReadyItem = ev.Delivery | Call

#: Handshake failures that another attempt cannot fix: the workflow stops at once.
_FINAL_ERRORS: Final = (
    ProbableAuthenticationError,
    ProbableAccessDeniedError,
    AuthenticationError,
    ConnectionOpenAborted,
    ConnectionClosedByBroker,
)

_DELIVERY: Final = ev.Delivery
_RPC_REPLY: Final = ev.RpcReply
_METHOD_RECEIVED: Final = ev.MethodReceived
_CONFIRM_INDEXES: Final = frozenset({spec.Basic.Ack.INDEX, spec.Basic.Nack.INDEX})
_CANCEL_INDEX: Final = spec.Basic.Cancel.INDEX


class _Timer:
    """A ``call_later`` timer; its identity is the opaque id pika returns."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def fire(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.callback()


def _client_properties(params: Parameters) -> dict[str, Any]:
    """The Start-Ok client properties: ours, then the application's on top."""
    properties: dict[str, Any] = {
        "product": PRODUCT,
        "platform": f"Python {platform.python_version()}",
        "capabilities": {
            "authentication_failure_close": True,
            "basic.nack": True,
            "connection.blocked": True,
            "consumer_cancel_notify": True,
            "publisher_confirms": True,
        },
        "information": "A pika-compatible AMQP 0-9-1 client",
        "version": _version,
    }
    if params.client_properties:
        properties.update(params.client_properties)
    return properties


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


def _last_words(core: CoreConnection, transport: SocketTransport) -> None:
    """Finalizer: write what is still queued (best effort, bounded) and close the socket."""
    if transport.closed:
        return
    try:
        transport.flush_blocking(core.data_to_send(), timeout=1.0)
    finally:
        transport.close()


class BlockingConnection:
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
        self._params = configs[-1]
        self._core: CoreConnection | None = None
        self._transport: SocketTransport | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._channels: dict[int, BlockingChannel] = {}
        self._ready: deque[ReadyItem] = deque()
        self._threadsafe: deque[Callable[[], Any]] = deque()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._timer_sequence = itertools.count()
        self._dispatch_depth = 0
        self._woken = False
        self._opened = False
        self._error: BaseException | None = None
        self._error_reported = False
        self._close_reason = (200, "Normal shutdown")
        self._blocked_deadline: float | None = None
        self._blocked_callbacks: list[Callable[[Any, Any], Any]] = []
        self._unblocked_callbacks: list[Callable[[Any, Any], Any]] = []
        self._secret_updates = 0
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
                        if isinstance(failure, _FINAL_ERRORS):
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
        self._finalizer = weakref.finalize(self, _last_words, core, transport)
        credentials = params.credentials
        if getattr(credentials, "erase_on_connect", False):
            credentials.erase_credentials()
        LOGGER.info("Connection opened to %s:%s", params.host, params.port)

    def _new_core(self, params: Parameters) -> CoreConnection:
        heartbeat = params.heartbeat
        setting: Any = heartbeat
        if callable(heartbeat):
            user_callable = heartbeat

            def setting(broker_value: int) -> int:
                return int(user_callable(self, broker_value))

        return CoreConnection(
            credentials=params.credentials,
            virtual_host=params.virtual_host,
            client_properties=_client_properties(params),
            channel_max=params.channel_max,
            frame_max=params.frame_max,
            heartbeat=setting,
            locale=params.locale,
        )

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

    def _raise_error(self) -> NoReturn:
        """Raise the connection's end once (our own close excepted), then a state error."""
        error = self._error
        if not self._error_reported and not isinstance(error, ConnectionClosedByClient):
            self._error_reported = True
            assert error is not None
            raise error
        raise ConnectionWrongStateError(f"Connection is closed: {error!r}")

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
        timer = _Timer(time.monotonic() + seconds, callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._timer_sequence), timer))
        return timer

    def remove_timeout(self, timeout_id: Any) -> None:
        """Cancel a timer made by :meth:`call_later` (no error if it already ran)."""
        if isinstance(timeout_id, _Timer):
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

        deadline = None if limit is None else time.monotonic() + limit
        self._wait(done, deadline, user_timers=True)
        if not self._dispatch_depth:
            self._dispatch()
        self._flush()
        if self._error is not None:
            self._raise_error()

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

    # ------------------------------------------------------------ for BlockingChannel

    def _in_dispatch(self) -> bool:
        return self._dispatch_depth > 0

    def _notify(self) -> None:
        """Something a waiting ``process_data_events`` caller cares about happened."""
        self._woken = True

    def _take_ready(self, belongs: Callable[[Any], bool]) -> list[ReadyItem]:
        """Remove and return the ready items for which ``belongs(item)`` is true."""
        ready = self._ready
        kept: list[ReadyItem] = []
        taken: list[ReadyItem] = []
        for item in ready:
            (taken if belongs(item) else kept).append(item)
        if taken:
            ready.clear()
            ready.extend(kept)
        return taken

    def _drain_output(self) -> None:
        """Write what is queued, do a non-blocking round of I/O, wait while the kernel is full."""
        self._poll(0.0)
        transport = self._transport
        if self._error is None and transport is not None and transport.backlog_size:
            self._wait(lambda: not transport.backlog_size)
        if self._error is not None:
            self._raise_error()

    # ------------------------------------------------------------ the wait loop

    def _wait(self, done: Callable[[], bool], deadline: float | None = None, *,
              user_timers: bool = False, raise_error: bool = True) -> bool:
        """Do I/O until ``done()`` (True) or ``deadline`` passes (False).

        At least one round of I/O happens unless ``done()`` already holds.

        :raises: the connection's error if it ends meanwhile (unless ``raise_error`` is False)
        """
        self._flush()
        polled = False
        monotonic = time.monotonic
        while True:
            if self._error is not None:
                if raise_error:
                    self._raise_error()
                return done()
            if done():
                return True
            timeout: float | None = None
            now = monotonic()
            if deadline is not None:
                timeout = deadline - now
                if timeout <= 0:
                    if polled:
                        return False
                    timeout = 0.0
            core_deadline = self._core.get_timer() if self._core is not None else None
            if core_deadline is not None:
                left = core_deadline - now
                if timeout is None or left < timeout:
                    timeout = left
            if self._blocked_deadline is not None:
                left = self._blocked_deadline - now
                if timeout is None or left < timeout:
                    timeout = left
            if user_timers and self._timers:
                left = self._timers[0][0] - now
                if timeout is None or left < timeout:
                    timeout = left
            if timeout is not None and timeout < 0:
                timeout = 0.0
            self._poll(timeout)
            polled = True

    def _poll(self, timeout: float | None) -> None:
        """One round: write, select, read and process, timers, write."""
        transport = self._transport
        core = self._core
        if transport is None or core is None or self._error is not None:
            return
        self._flush()
        if self._error is not None:
            return
        try:
            chunks, woken = transport.poll(timeout)
        except TransportClosed:
            return
        except OSError as error:
            self._terminate(StreamLostError(f"Stream connection lost: {error!r}"))
            return
        if woken:
            threadsafe = self._threadsafe
            ready = self._ready
            while threadsafe:
                ready.append(Call(threadsafe.popleft()))
        if chunks:
            for chunk in chunks:
                core.receive_data(chunk)
            self._process_events()
        self._service_timers()
        self._flush()

    def _flush(self) -> None:
        core = self._core
        transport = self._transport
        if core is None or transport is None or transport.closed:
            return
        data = core.data_to_send()
        if data:
            try:
                transport.write(data)
            except TransportClosed:
                pass
            except OSError as error:
                self._terminate(StreamLostError(f"Stream connection lost: {error!r}"))

    def _service_timers(self) -> None:
        core = self._core
        if core is None or self._error is not None:
            return
        now = time.monotonic()
        core_deadline = core.get_timer()
        if core_deadline is not None and now >= core_deadline:
            core.handle_timer(now)
            self._process_events()
        if self._blocked_deadline is not None and now >= self._blocked_deadline:
            self._blocked_deadline = None
            self._terminate(ConnectionBlockedTimeout(
                f"Blocked connection timeout expired "
                f"({self._params.blocked_connection_timeout} s)"
            ))
            return
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                self._ready.append(Call(timer.fire))

    def _dispatch(self) -> None:
        """Run the callbacks that were ready when it started (not those they make ready)."""
        ready = self._ready
        if not ready:
            return
        channels = self._channels
        self._dispatch_depth += 1
        try:
            for _ in range(len(ready)):
                if not ready:
                    break
                item = ready.popleft()
                if type(item) is _DELIVERY:
                    channel = channels.get(item.channel_number)
                    if channel is not None:
                        channel._dispatch_delivery(item)
                else:
                    item.dispatch()  # type: ignore[union-attr]
        finally:
            self._dispatch_depth -= 1

    # ------------------------------------------------------------ core events

    def _process_events(self) -> None:
        core = self._core
        assert core is not None
        channels = self._channels
        while True:
            try:
                event = core.next_event()
            except RemoteProtocolError as error:
                self._terminate(error)
                return
            if event is NEED_DATA:
                return
            kind = type(event)
            if kind is _DELIVERY:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    channel._on_delivery(event)  # type: ignore[arg-type]
            elif kind is _METHOD_RECEIVED:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    method = event.method  # type: ignore[union-attr]
                    index = method.INDEX
                    if index in _CONFIRM_INDEXES:
                        channel._on_confirm(method)
                    elif index == _CANCEL_INDEX:
                        channel._on_broker_cancel(method)
            elif kind is _RPC_REPLY:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    channel._on_rpc_reply(event)  # type: ignore[arg-type]
            else:
                self._on_other_event(event)  # type: ignore[arg-type]
                if self._error is not None:
                    return

    def _on_other_event(self, event: ev.Event) -> None:
        kind = type(event)
        if kind is ev.Returned:
            assert isinstance(event, ev.Returned)
            channel = self._channels.get(event.channel_number)
            if channel is not None:
                channel._on_return(event)
        elif kind is ev.ChannelOpened:
            assert isinstance(event, ev.ChannelOpened)
            channel = self._channels.get(event.channel_number)
            if channel is not None:
                channel._on_open_ok()
        elif kind is ev.ChannelClosed:
            assert isinstance(event, ev.ChannelClosed)
            self._on_channel_closed(event)
        elif kind is ev.ConnectionOpened:
            self._opened = True
        elif kind is ev.ConnectionFailed:
            assert isinstance(event, ev.ConnectionFailed)
            self._terminate(event.error)
        elif kind is ev.ConnectionClosed:
            assert isinstance(event, ev.ConnectionClosed)
            params = self._params
            if event.by_peer:
                LOGGER.error("Connection closed by the broker: (%s) %s",
                             event.reply_code, event.reply_text)
                self._terminate(ConnectionClosedByBroker(
                    event.reply_code, event.reply_text, host=params.host, port=params.port
                ))
            else:
                code, text = self._close_reason
                self._terminate(ConnectionClosedByClient(
                    code, text, host=params.host, port=params.port
                ))
        elif kind is ev.ConnectionBlocked:
            assert isinstance(event, ev.ConnectionBlocked)
            timeout = self._params.blocked_connection_timeout
            if timeout is not None and self._blocked_deadline is None:
                self._blocked_deadline = time.monotonic() + timeout
            method = frame.Method(0, spec.Connection.Blocked(reason=event.reason))
            for callback in self._blocked_callbacks:
                self._ready.append(Call(callback, (self, method)))
        elif kind is ev.ConnectionUnblocked:
            self._blocked_deadline = None
            method = frame.Method(0, spec.Connection.Unblocked())
            for callback in self._unblocked_callbacks:
                self._ready.append(Call(callback, (self, method)))
        elif kind is ev.UpdateSecretOk:
            self._secret_updates += 1

    def _on_channel_closed(self, event: ev.ChannelClosed) -> None:
        channel = self._channels.pop(event.channel_number, None)
        if channel is None:
            return
        number = event.channel_number

        def belongs(item: Any) -> bool:
            if type(item) is _DELIVERY:
                return bool(item.channel_number == number)
            return isinstance(item, Call) and item.owner is channel

        self._take_ready(belongs)
        channel._on_closed(event.reply_code, event.reply_text, event.by_peer)

    def _terminate(self, error: BaseException) -> None:
        """The connection is over: say last words, close the socket, close every channel."""
        if self._error is not None:
            return
        params = self._params
        if isinstance(error, AMQPConnectionError):
            if error.host is None:
                error.host = params.host
            if error.port is None:
                error.port = params.port
        self._error = error
        transport = self._transport
        core = self._core
        if transport is not None and not transport.closed:
            if core is not None:
                data = core.data_to_send()  # a Close-Ok, or the Close naming a protocol error
                if data:
                    try:
                        transport.write(data)
                    except (OSError, TransportClosed):
                        pass
            transport.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._blocked_deadline = None
        self._ready.clear()
        self._threadsafe.clear()
        self._timers.clear()
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            channel._on_connection_closed(error)
        if self._opened and not isinstance(error, ConnectionClosedByClient):
            LOGGER.error("Connection to %s:%s ended: %r", params.host, params.port, error)
