"""The pika-compatible asynchronous ``Connection``, written once for every loop.

Theory of operation: a :class:`Connection` owns one protocol core per
connection attempt and a :class:`~amqp_core.io.driver.StreamDriver` that moves
its bytes over a stream the adapter's loop opened.  Core events arrive in
:meth:`Connection._on_core_event` and become pika's callbacks; the channel
API (:class:`amqp_core.channel.Channel`) calls back into the core through the
few ``_core_*`` helpers here, then asks the driver to flush once this turn.

Opening: the connection workflow (``adapters/utils/connection_workflow.py``)
resolves addresses and calls :meth:`Connection._start_attempt` for each; the
attempt ends in ``on_done(None)`` once the AMQP handshake completes, or
``on_done(error)``.  Only then do the user's open / open-error callbacks run,
so a failed attempt followed by a successful one looks like one success.

Closing: every path (our close acknowledged, a broker close, a lost stream,
a heartbeat timeout, a blocked-connection timeout, a protocol error) ends in
:meth:`_finish` exactly once, which closes the channels with the same error
and calls the close callbacks with it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import exceptions, frame, spec
from ._core_factory import new_core
from .adapters.utils import connection_workflow as workflow
from .exceptions import (
    AMQPConnectionError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
)
from .io.contract import EventLoop, StreamTransport, TimerHandle
from .io.driver import StreamDriver
from .parameters import Parameters
from .protocol import Connection as CoreConnection
from .protocol import ConnectionState
from .protocol import events as ev
from .tcp_socket_opts import apply_tcp_options

if TYPE_CHECKING:
    from .channel import Channel

LOGGER = logging.getLogger(__name__)

AttemptDone = Callable[[Exception | None], None]


class Connection:
    """The asynchronous connection, bound to an event loop by its adapter subclass.

    Do not create it directly: use :class:`~amqp_core.SelectConnection` or
    another adapter's connection class.
    """

    # pika's state constants
    CONNECTION_CLOSED = 0
    CONNECTION_INIT = 1
    CONNECTION_PROTOCOL = 2
    CONNECTION_START = 3
    CONNECTION_TUNE = 4
    CONNECTION_OPEN = 5
    CONNECTION_CLOSING = 6

    _STATE_MAP = {
        ConnectionState.INIT: CONNECTION_INIT,
        ConnectionState.AWAIT_START: CONNECTION_PROTOCOL,
        ConnectionState.AWAIT_TUNE: CONNECTION_START,
        ConnectionState.AWAIT_OPEN_OK: CONNECTION_TUNE,
        ConnectionState.OPEN: CONNECTION_OPEN,
        ConnectionState.CLOSING: CONNECTION_CLOSING,
        ConnectionState.CLOSED: CONNECTION_CLOSED,
    }

    def __init__(
        self,
        parameters: Parameters | None,
        on_open_callback: Callable[[Any], None] | None,
        on_open_error_callback: Callable[[Any, BaseException], None] | None,
        on_close_callback: Callable[[Any, BaseException], None] | None,
        loop: EventLoop,
    ) -> None:
        from .parameters import ConnectionParameters

        if parameters is None:
            parameters = ConnectionParameters()
        elif not isinstance(parameters, Parameters):
            raise TypeError(
                "parameters must be a ConnectionParameters or URLParameters instance, not "
                f"{type(parameters).__name__}"
            )
        for name, value in (
            ("on_open_callback", on_open_callback),
            ("on_open_error_callback", on_open_error_callback),
            ("on_close_callback", on_close_callback),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None, not {type(value).__name__}")
        self.params = parameters
        self._loop = loop
        self._core: CoreConnection | None = None
        self._driver: StreamDriver | None = None
        self._channels: dict[int, Channel] = {}
        self._on_open_callbacks: list[Callable[[Any], None]] = []
        self._on_open_error_callbacks: list[Callable[[Any, BaseException], None]] = []
        self._on_close_callbacks: list[Callable[[Any, BaseException], None]] = []
        self._on_blocked_callbacks: list[Callable[[Any, Any], None]] = []
        self._on_unblocked_callbacks: list[Callable[[Any, Any], None]] = []
        self._update_secret_callbacks: list[Callable[[Any], None]] = []
        self._blocked_timer: TimerHandle | None = None
        self._attempt_done: AttemptDone | None = None
        self._attempt_timers: list[TimerHandle] = []
        self._attempt_stream_handle: TimerHandle | None = None
        self._attempt_address: tuple[Any, ...] | None = None
        self._opened = False
        self._closed = False
        self._closing_requested = False
        self._error: BaseException | None = None
        self.server_properties: dict[str, Any] = {}
        self.known_hosts: str = ""
        if on_open_callback is not None:
            self._on_open_callbacks.append(on_open_callback)
        if on_open_error_callback is not None:
            self._on_open_error_callbacks.append(on_open_error_callback)
        if on_close_callback is not None:
            self._on_close_callbacks.append(on_close_callback)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self._state_name()} params={self.params!r}>"

    def _state_name(self) -> str:
        if self._closed:
            return "CLOSED"
        return "INIT" if self._core is None else self._core.state.value

    # ------------------------------------------------------------ pika properties

    @property
    def connection_state(self) -> int:
        """pika's numeric connection state."""
        if self._closed or self._core is None:
            return self.CONNECTION_CLOSED if self._closed else self.CONNECTION_INIT
        return self._STATE_MAP[self._core.state]

    @property
    def is_open(self) -> bool:
        """True while the connection is open and not closing."""
        return self._opened and not self._closed and self._core is not None and self._core.is_open

    @property
    def is_closing(self) -> bool:
        """True after close() was called and before the connection is closed."""
        return (
            not self._closed
            and self._core is not None
            and self._core.state is ConnectionState.CLOSING
        )

    @property
    def is_closed(self) -> bool:
        """True before opening starts? No: True once the connection has ended."""
        return self._closed

    @property
    def server_capabilities(self) -> dict[str, Any]:
        """The broker's ``capabilities`` table from Connection.Start."""
        capabilities = self.server_properties.get("capabilities", {})
        return capabilities if isinstance(capabilities, dict) else {}

    def _has_capability(self, name: str) -> bool:
        return bool(self.server_capabilities.get(name, False))

    @property
    def basic_nack(self) -> bool:
        """The broker supports Basic.Nack."""
        return self._has_capability("basic.nack")

    @property
    def consumer_cancel_notify(self) -> bool:
        """The broker sends Basic.Cancel when a consumer's queue goes away."""
        return self._has_capability("consumer_cancel_notify")

    @property
    def exchange_exchange_bindings(self) -> bool:
        """The broker supports exchange-to-exchange bindings."""
        return self._has_capability("exchange_exchange_bindings")

    @property
    def publisher_confirms(self) -> bool:
        """The broker supports publisher confirms."""
        return self._has_capability("publisher_confirms")

    @property
    def channel_max(self) -> int:
        """Negotiated channel_max."""
        return self._core.channel_max if self._core is not None else self.params.channel_max

    @property
    def frame_max(self) -> int:
        """Negotiated frame_max."""
        return self._core.frame_max if self._core is not None else self.params.frame_max

    @property
    def heartbeat(self) -> int:
        """Negotiated heartbeat interval in seconds (0: off)."""
        return self._core.heartbeat if self._core is not None else 0

    # ------------------------------------------------------------ callbacks

    def add_on_close_callback(self, callback: Callable[[Any, BaseException], None]) -> None:
        """``callback(connection, exception)`` when the connection closes."""
        _require_callable(callback, "callback")
        self._on_close_callbacks.append(callback)

    def add_on_open_callback(self, callback: Callable[[Any], None]) -> None:
        """``callback(connection)`` once the connection is open."""
        _require_callable(callback, "callback")
        self._on_open_callbacks.append(callback)

    def add_on_open_error_callback(
        self, callback: Callable[[Any, BaseException], None], remove_default: bool = True
    ) -> None:
        """``callback(connection, exception)`` when opening fails."""
        _require_callable(callback, "callback")
        if remove_default:
            self._on_open_error_callbacks.clear()
        self._on_open_error_callbacks.append(callback)

    def add_on_connection_blocked_callback(self, callback: Callable[[Any, Any], None]) -> None:
        """``callback(connection, frame.Method(Connection.Blocked))``."""
        _require_callable(callback, "callback")
        self._on_blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(self, callback: Callable[[Any, Any], None]) -> None:
        """``callback(connection, frame.Method(Connection.Unblocked))``."""
        _require_callable(callback, "callback")
        self._on_unblocked_callbacks.append(callback)

    # ------------------------------------------------------------ commands

    def channel(
        self, channel_number: int | None = None,
        on_open_callback: Callable[[Any], None] | None = None,
    ) -> Channel:
        """Open a channel; ``on_open_callback(channel)`` runs once it is open.

        :raises ConnectionWrongStateError: the connection is not open
        :raises InvalidChannelNumber: the number is out of range or in use
        """
        from .channel import Channel

        if on_open_callback is not None and not callable(on_open_callback):
            raise TypeError("on_open_callback must be callable or None")
        core = self._require_open_core()
        number = core.open_channel(channel_number)
        channel = Channel(self, number, on_open_callback)
        self._channels[number] = channel
        self._request_flush()
        return channel

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection; the close callbacks get ``ConnectionClosedByClient``.

        :raises ConnectionWrongStateError: already closing or closed
        """
        if not isinstance(reply_code, int) or isinstance(reply_code, bool):
            raise TypeError(f"reply_code must be int, not {type(reply_code).__name__}")
        if not isinstance(reply_text, str):
            raise TypeError(f"reply_text must be str, not {type(reply_text).__name__}")
        if self._closed or self.is_closing or self._closing_requested:
            raise ConnectionWrongStateError(
                f"Illegal close({reply_code}, {reply_text!r}) request on {self!r} because it "
                "was called while connection state=" + self._state_name()
            )
        self._closing_requested = True
        core = self._core
        if core is None or not self._opened:
            # still opening: abort the attempt; the open-error callbacks report it
            self._abort_opening(
                exceptions.ConnectionOpenAborted(
                    f"close() called before connection was opened ({reply_code}, {reply_text!r})"
                )
            )
            return
        self._close_reason = (reply_code, reply_text)
        for channel in list(self._channels.values()):
            channel._on_connection_closing(reply_code, reply_text)
        core.close(reply_code, reply_text)
        self._request_flush()

    def update_secret(
        self, new_secret: str | bytes, reason: str, callback: Callable[[Any], None] | None = None
    ) -> None:
        """Send Connection.UpdateSecret; ``callback(frame)`` on UpdateSecretOk."""
        if not isinstance(new_secret, str | bytes):
            raise TypeError("new_secret must be str or bytes")
        if not isinstance(reason, str):
            raise TypeError("reason must be str")
        core = self._require_open_core()
        core.update_secret(new_secret, reason)
        if callback is not None:
            _require_callable(callback, "callback")
            self._update_secret_callbacks.append(callback)
        self._request_flush()

    # ------------------------------------------------------------ channel helpers

    def _require_open_core(self) -> CoreConnection:
        core = self._core
        if core is None or self._closed or not core.is_open:
            raise ConnectionWrongStateError(
                f"Connection is not open (state={self._state_name()})"
            )
        return core

    def _request_flush(self) -> None:
        driver = self._driver
        if driver is not None:
            driver.request_flush()

    # ------------------------------------------------------------ attempts

    def _new_core(self) -> CoreConnection:
        return new_core(self.params, lambda: self)

    def _start_attempt(
        self, sockaddr: tuple[Any, ...], family: int, on_done: AttemptDone
    ) -> None:
        """Open a stream to ``sockaddr`` and run the AMQP handshake over it."""
        params = self.params
        self._core = self._new_core()
        self._driver = StreamDriver(self._core, self._loop, self, params.host, params.port)
        self._attempt_done = on_done
        self._attempt_address = sockaddr
        ssl_context: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if params.ssl_options is not None:
            ssl_context = params.ssl_options.context
            server_hostname = params.ssl_options.server_hostname
            if server_hostname is None and ssl_context.check_hostname:
                server_hostname = params.host
        loop = self._loop
        if params.stack_timeout:
            self._attempt_timers.append(
                loop.call_later(params.stack_timeout, self._on_stack_timeout)
            )
        if params.socket_timeout:
            self._attempt_timers.append(
                loop.call_later(params.socket_timeout, self._on_socket_timeout)
            )
        self._attempt_stream_handle = loop.connect_stream(
            sockaddr, family, self._driver, ssl_context, server_hostname, self._on_stream_done
        )

    def _on_stream_done(self, result: StreamTransport | BaseException) -> None:
        self._attempt_stream_handle = None
        if isinstance(result, BaseException):
            phase = (
                workflow.AMQPConnectorTransportSetupError
                if isinstance(result, ssl.SSLError)
                else workflow.AMQPConnectorSocketConnectError
            )
            self._end_attempt(
                phase(result, host=self.params.host, port=self.params.port,
                      address=self._attempt_address)
            )
            return
        # the socket connect timeout no longer applies; the stack timeout does
        sock = result.get_extra_info("socket")
        if sock is not None and self.params.tcp_options:
            try:
                apply_tcp_options(sock, self.params.tcp_options)
            except (OSError, ValueError):
                LOGGER.warning("Could not apply tcp_options %r", self.params.tcp_options)

    def _on_socket_timeout(self) -> None:
        if self._attempt_stream_handle is not None:
            self._attempt_stream_handle.cancel()
            self._attempt_stream_handle = None
            self._end_attempt(
                workflow.AMQPConnectorSocketConnectError(
                    TimeoutError(
                        f"TCP connection attempt timed out after {self.params.socket_timeout} s"
                        f" ({self.params.host!r}/{self._attempt_address})"
                    ),
                    host=self.params.host, port=self.params.port,
                    address=self._attempt_address,
                )
            )

    def _on_stack_timeout(self) -> None:
        if self._attempt_done is None:
            return
        # As pika does, the timeout is wrapped in the error of the phase it interrupted:
        # still connecting (TCP, or TCP+TLS: one step here) or already in the AMQP handshake.
        phase: type[workflow.AMQPConnectorPhaseErrorBase]
        if self._attempt_stream_handle is not None:
            self._attempt_stream_handle.cancel()
            self._attempt_stream_handle = None
            phase = (
                workflow.AMQPConnectorTransportSetupError
                if self.params.ssl_options is not None
                else workflow.AMQPConnectorSocketConnectError
            )
        else:
            phase = workflow.AMQPConnectorAMQPHandshakeError
        timeout = workflow.AMQPConnectorStackTimeout(
            f"Timeout while setting up the connection stack ({self.params.stack_timeout} s) "
            f"to {self.params.host!r}/{self._attempt_address}"
        )
        # Fix: abandon (not just abort) the stream, so that its connection_lost, which
        # arrives a loop turn later, is not reported as the failure of the NEXT attempt
        # (it used to end a retry at once, with a bogus "EOF before Connection.Start").
        if self._driver is not None:
            self._driver.abandon()
        self._end_attempt(
            phase(timeout, host=self.params.host, port=self.params.port,
                  address=self._attempt_address)
        )

    def _end_attempt(self, error: Exception | None) -> None:
        for timer in self._attempt_timers:
            timer.cancel()
        self._attempt_timers.clear()
        done, self._attempt_done = self._attempt_done, None
        if error is not None:
            self._driver = None
            self._core = None
        if done is not None:
            done(error)

    def _abort_attempt(self) -> None:
        """The workflow gave up on this attempt (abort)."""
        for timer in self._attempt_timers:
            timer.cancel()
        self._attempt_timers.clear()
        self._attempt_done = None
        if self._attempt_stream_handle is not None:
            self._attempt_stream_handle.cancel()
            self._attempt_stream_handle = None
        if self._driver is not None:
            self._driver.abandon()  # see _on_stack_timeout
        self._driver = None
        self._core = None

    def _abort_opening(self, error: Exception) -> None:
        """Hook for adapters: close() during opening. Overridden by BaseConnection."""
        self._abort_attempt()
        self._on_open_failed(error)

    # ------------------------------------------------------------ outcome of opening

    def _on_open_succeeded(self) -> None:
        self._opened = True
        if getattr(self.params.credentials, "erase_on_connect", False):
            self.params.credentials.erase_credentials()
        for callback in list(self._on_open_callbacks):
            self._run_callback(callback, self)

    def _on_open_failed(self, error: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        for callback in list(self._on_open_error_callbacks):
            self._run_callback(callback, self, error)

    # ------------------------------------------------------------ driver handler

    def _on_core_event(self, event: ev.Event) -> None:
        kind = type(event)
        if kind is ev.Delivery:
            channel = self._channels.get(event.channel_number)  # type: ignore[attr-defined]
            if channel is not None:
                channel._on_delivery(event)  # type: ignore[arg-type]
            return
        channel_number = getattr(event, "channel_number", None)
        if channel_number is not None:
            channel = self._channels.get(channel_number)
            if channel is None:
                return
            if kind is ev.RpcReply:
                channel._on_rpc_reply(event)  # type: ignore[arg-type]
            elif kind is ev.MethodReceived:
                channel._on_method(event.method)  # type: ignore[attr-defined]
            elif kind is ev.Returned:
                channel._on_return(event)  # type: ignore[arg-type]
            elif kind is ev.ChannelOpened:
                channel._on_open_ok()
            elif kind is ev.ChannelClosed:
                del self._channels[channel_number]
                assert isinstance(event, ev.ChannelClosed)
                channel._on_closed(event.reply_code, event.reply_text, event.by_peer)
            return
        if kind is ev.ConnectionOpened:
            assert isinstance(event, ev.ConnectionOpened)
            self.server_properties = event.server_properties
            self.known_hosts = event.known_hosts
            self._end_attempt(None)
        elif kind is ev.ConnectionClosed:
            assert isinstance(event, ev.ConnectionClosed)
            error: AMQPConnectionError
            if event.by_peer:
                error = ConnectionClosedByBroker(
                    event.reply_code, event.reply_text,
                    host=self.params.host, port=self.params.port,
                )
            else:
                code, text = getattr(self, "_close_reason", (200, "Normal shutdown"))
                error = ConnectionClosedByClient(
                    code, text, host=self.params.host, port=self.params.port
                )
            if self._driver is not None:
                self._driver.mark_terminated(error)
        elif kind is ev.ConnectionBlocked:
            self._on_blocked(event)
        elif kind is ev.ConnectionUnblocked:
            self._on_unblocked()
        elif kind is ev.UpdateSecretOk:
            method = frame.Method(0, spec.Connection.UpdateSecretOk())
            callbacks, self._update_secret_callbacks = self._update_secret_callbacks, []
            for callback in callbacks:
                self._run_callback(callback, method)

    def _on_stream_terminated(self, error: Exception) -> None:
        """The driver reports the end: route it to the attempt or to the close callbacks."""
        self._cancel_blocked_timer()
        if self._attempt_done is not None:
            self._end_attempt(
                workflow.AMQPConnectorAMQPHandshakeError(
                    error, host=self.params.host, port=self.params.port,
                    address=self._attempt_address,
                )
            )
            return
        self._finish(error)

    def _on_writing_paused(self, paused: bool) -> None:
        """Write back-pressure from the transport (publishers may wait on it)."""

    def _finish(self, error: BaseException) -> None:
        if self._closed:
            return
        if not self._opened:
            self._on_open_failed(error)
            return
        self._closed = True
        self._error = error
        for channel in list(self._channels.values()):
            channel._on_connection_lost(error)
        self._channels.clear()
        for callback in list(self._on_close_callbacks):
            self._run_callback(callback, self, error)

    def _run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            LOGGER.exception("User callback %r raised; the connection continues", callback)

    # ------------------------------------------------------------ blocking

    def _on_blocked(self, event: Any) -> None:
        timeout = self.params.blocked_connection_timeout
        if timeout is not None and self._blocked_timer is None:
            self._blocked_timer = self._loop.call_later(timeout, self._on_blocked_timeout)
        method = frame.Method(0, spec.Connection.Blocked(reason=event.reason))
        for callback in list(self._on_blocked_callbacks):
            self._run_callback(callback, self, method)

    def _on_unblocked(self) -> None:
        self._cancel_blocked_timer()
        method = frame.Method(0, spec.Connection.Unblocked())
        for callback in list(self._on_unblocked_callbacks):
            self._run_callback(callback, self, method)

    def _cancel_blocked_timer(self) -> None:
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None

    def _on_blocked_timeout(self) -> None:
        self._blocked_timer = None
        error = ConnectionBlockedTimeout(
            f"Blocked connection timeout expired ({self.params.blocked_connection_timeout} s)",
            host=self.params.host, port=self.params.port,
        )
        if self._driver is not None:
            self._driver.close_transport(abort=True)
            self._driver.mark_terminated(error)


def _require_callable(value: Any, name: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")


