"""Connection parameters: where to connect, as whom, and how to tune the link.

Theory of operation: :class:`Parameters` is a bag of validated properties with
pika 1.3's names and defaults.  Every property has a setter that checks the
value (``TypeError`` for a wrong type, ``ValueError`` for a value out of range,
both naming the parameter), so a bad setting fails where it is made rather than
half-way through a handshake.  Nothing here does I/O or knows the connection
state machine; the connection reads these values when it connects.

:class:`ConnectionParameters` fills the bag from keyword arguments; arguments
left out keep the defaults, and the port defaults to 5671 instead of 5672 when
``ssl_options`` is given.  :class:`URLParameters` (in :mod:`amqp_core.url_parameters`,
re-exported here) fills it from an ``amqp://`` or ``amqps://`` URL.

Secrets: ``repr`` shows host, port, virtual host and whether TLS is on, never
credentials; URL errors never quote the URL itself.

Two deliberate differences from pika: equality compares every property (pika
compares host and port only), and a few values pika lets through are rejected
(booleans for numbers, ports outside 1..65535, negative ``retry_delay``,
``heartbeat`` above 65535, unknown ``tcp_options`` / ``ssl_options`` keys).
"""

from __future__ import annotations

import copy
import enum
import math
import ssl
from collections.abc import Callable
from typing import Any, Final

from amqp_core.credentials import VALID_TYPES, Credentials, PlainCredentials
from amqp_core.tcp_socket_opts import validate_tcp_options

__all__ = [
    "ConnectionParameters",
    "HeartbeatCallable",
    "Parameters",
    "SSLOptions",
    "URLParameters",
]

#: ``heartbeat`` may be a callable ``(connection, broker_proposal) -> timeout``.
HeartbeatCallable = Callable[[Any, int], int]

_MAX_CHANNELS = 65535  # channel numbers are 16-bit; 0 is the connection itself
_FRAME_MIN_SIZE = 4096  # AMQP 0-9-1 section 4.2.3
_FRAME_MAX_SIZE = 131072  # RabbitMQ's largest negotiable frame
_MAX_HEARTBEAT = 65535  # Connection.Tune carries the heartbeat as a short
_SHORTSTR_MAX = 255  # encoded bytes in an AMQP short string


class _Default(enum.Enum):
    """Marks a keyword argument the caller did not pass."""

    DEFAULT = "DEFAULT"


_DEFAULT: Final = _Default.DEFAULT


def _require_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, but got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, but got {value!r}")
    return value


def _require_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    """Validate a finite, non-negative (or positive) number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float or an int, but got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, but got {value!r}")
    return value


def _require_timeout(name: str, value: object, *, allow_zero: bool) -> float | None:
    """Like :func:`_require_seconds`, but None (no timeout) is allowed too."""
    return None if value is None else _require_seconds(name, value, allow_zero=allow_zero)


def _require_str(name: str, value: object, *, shortstr: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, but got {value!r}")
    if shortstr and len(value.encode("utf-8")) > _SHORTSTR_MAX:
        raise ValueError(f"{name} must encode to at most {_SHORTSTR_MAX} bytes of UTF-8")
    return value


class SSLOptions:
    """TLS settings: the :class:`ssl.SSLContext` to wrap the socket with, and the
    name to send for SNI and check the certificate against.

    :param context: the TLS context (certificates, verification, ciphers)
    :param server_hostname: SNI / certificate name; None means the connection's host
    :raises TypeError: when ``context`` is not an :class:`ssl.SSLContext` or
        ``server_hostname`` is neither a str nor None
    """

    __slots__ = ("_context", "_server_hostname")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        self.context = context
        self.server_hostname = server_hostname

    @property
    def context(self) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` used to wrap the socket."""
        return self._context

    @context.setter
    def context(self, value: ssl.SSLContext) -> None:
        if not isinstance(value, ssl.SSLContext):
            raise TypeError(f"context must be of ssl.SSLContext type, but got {value!r}")
        self._context: ssl.SSLContext = value

    @property
    def server_hostname(self) -> str | None:
        """Name for SNI and hostname checking; None uses the connection's host."""
        return self._server_hostname

    @server_hostname.setter
    def server_hostname(self, value: str | None) -> None:
        if value is not None:
            _require_str("server_hostname", value)
            if not value:
                raise ValueError("server_hostname must be a non-empty str or None")
        self._server_hostname: str | None = value

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} server_hostname={self._server_hostname!r} "
            f"verify_mode={self._context.verify_mode.name}>"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SSLOptions):
            return (
                self._context is other._context and self._server_hostname == other._server_hostname
            )
        return NotImplemented

    def __copy__(self) -> SSLOptions:
        return SSLOptions(self._context, self._server_hostname)

    def __deepcopy__(self, memo: dict[int, Any]) -> SSLOptions:
        # An SSLContext cannot be copied; copies share it (it is safe to share).
        return SSLOptions(self._context, self._server_hostname)


class Parameters:
    """Base connection parameters: every property with pika 1.3's default.

    Use :class:`ConnectionParameters` or :class:`URLParameters` to build one.
    """

    __slots__ = (
        "_blocked_connection_timeout",
        "_channel_max",
        "_client_properties",
        "_connection_attempts",
        "_credentials",
        "_frame_max",
        "_heartbeat",
        "_host",
        "_locale",
        "_port",
        "_retry_delay",
        "_socket_timeout",
        "_ssl_options",
        "_stack_timeout",
        "_tcp_options",
        "_virtual_host",
    )

    DEFAULT_USERNAME = "guest"
    DEFAULT_PASSWORD = "guest"

    DEFAULT_BLOCKED_CONNECTION_TIMEOUT: float | None = None
    DEFAULT_CHANNEL_MAX = _MAX_CHANNELS
    DEFAULT_CLIENT_PROPERTIES: dict[str, Any] | None = None
    DEFAULT_CREDENTIALS: Credentials = PlainCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD)
    DEFAULT_CONNECTION_ATTEMPTS = 1
    DEFAULT_FRAME_MAX = _FRAME_MAX_SIZE
    DEFAULT_HEARTBEAT_TIMEOUT: int | None = None  # None accepts the broker's proposal
    DEFAULT_HOST = "localhost"
    DEFAULT_LOCALE = "en_US"
    DEFAULT_PORT = 5672
    DEFAULT_RETRY_DELAY = 2.0
    DEFAULT_SOCKET_TIMEOUT: float | None = 10.0  # socket connect() timeout
    DEFAULT_STACK_TIMEOUT: float | None = 15.0  # TCP + TLS + AMQP handshake timeout
    DEFAULT_SSL = False
    DEFAULT_SSL_OPTIONS: SSLOptions | None = None
    DEFAULT_SSL_PORT = 5671
    DEFAULT_VIRTUAL_HOST = "/"
    DEFAULT_TCP_OPTIONS: dict[str, int] | None = None

    _blocked_connection_timeout: float | None
    _channel_max: int
    _client_properties: dict[str, Any] | None
    _connection_attempts: int
    _credentials: Credentials
    _frame_max: int
    _heartbeat: int | HeartbeatCallable | None
    _host: str
    _locale: str
    _port: int
    _retry_delay: float
    _socket_timeout: float | None
    _stack_timeout: float | None
    _ssl_options: SSLOptions | None
    _virtual_host: str
    _tcp_options: dict[str, int] | None

    def __init__(self) -> None:
        self.blocked_connection_timeout = self.DEFAULT_BLOCKED_CONNECTION_TIMEOUT
        self.channel_max = self.DEFAULT_CHANNEL_MAX
        self.client_properties = self.DEFAULT_CLIENT_PROPERTIES
        self.connection_attempts = self.DEFAULT_CONNECTION_ATTEMPTS
        self.credentials = self.DEFAULT_CREDENTIALS
        self.frame_max = self.DEFAULT_FRAME_MAX
        self.heartbeat = self.DEFAULT_HEARTBEAT_TIMEOUT
        self.host = self.DEFAULT_HOST
        self.locale = self.DEFAULT_LOCALE
        self.port = self.DEFAULT_PORT
        self.retry_delay = self.DEFAULT_RETRY_DELAY
        self.socket_timeout = self.DEFAULT_SOCKET_TIMEOUT
        self.stack_timeout = self.DEFAULT_STACK_TIMEOUT
        self.ssl_options = self.DEFAULT_SSL_OPTIONS
        self.virtual_host = self.DEFAULT_VIRTUAL_HOST
        self.tcp_options = self.DEFAULT_TCP_OPTIONS

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} host={self._host} port={self._port} "
            f"virtual_host={self._virtual_host} ssl={self._ssl_options is not None}>"
        )

    def _comparison_key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in Parameters.__slots__)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Parameters):
            return self._comparison_key() == other._comparison_key()
        return NotImplemented

    @property
    def blocked_connection_timeout(self) -> float | None:
        """Seconds the broker may keep the connection blocked before it is torn
        down with ``ConnectionBlockedTimeout``; None waits forever.
        """
        return self._blocked_connection_timeout

    @blocked_connection_timeout.setter
    def blocked_connection_timeout(self, value: float | None) -> None:
        self._blocked_connection_timeout = _require_timeout(
            "blocked_connection_timeout", value, allow_zero=True
        )

    @property
    def channel_max(self) -> int:
        """Largest channel number the client proposes (1..65535)."""
        return self._channel_max

    @channel_max.setter
    def channel_max(self, value: int) -> None:
        self._channel_max = _require_int("channel_max", value, 1, _MAX_CHANNELS)

    @property
    def client_properties(self) -> dict[str, Any] | None:
        """Overrides for the client properties sent in ``Connection.StartOk``."""
        return self._client_properties

    @client_properties.setter
    def client_properties(self, value: dict[str, Any] | None) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"client_properties must be dict or None, but got {value!r}")
        if value:
            # fix: a value of no AMQP type was only found when Connection.StartOk was
            # encoded, after the protocol header had gone out
            from ._codec import encode_table
            from .exceptions import AMQPError

            try:
                encode_table(value)
            except (AMQPError, TypeError, ValueError, OverflowError) as error:
                raise TypeError(f"client_properties cannot be sent: {error}") from None
        self._client_properties = copy.deepcopy(value)

    @property
    def connection_attempts(self) -> int:
        """How many times to try connecting (at least 1); see :attr:`retry_delay`."""
        return self._connection_attempts

    @connection_attempts.setter
    def connection_attempts(self, value: int) -> None:
        self._connection_attempts = _require_int("connection_attempts", value, 1)

    @property
    def credentials(self) -> Credentials:
        """The SASL credentials (an instance of a class in ``credentials.VALID_TYPES``)."""
        return self._credentials

    @credentials.setter
    def credentials(self, value: Credentials) -> None:
        if not isinstance(value, tuple(VALID_TYPES)):
            raise TypeError(
                f"credentials must be an object of type: {VALID_TYPES!r}, "
                f"but got {type(value).__name__}"
            )
        self._credentials = copy.deepcopy(value)

    @property
    def frame_max(self) -> int:
        """Largest AMQP frame the client proposes, in bytes (4096..131072)."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self._frame_max = _require_int("frame_max", value, _FRAME_MIN_SIZE, _FRAME_MAX_SIZE)

    @property
    def heartbeat(self) -> int | HeartbeatCallable | None:
        """Heartbeat timeout in seconds: an int overrides the broker's proposal
        (0 disables heartbeats), None accepts it, and a callable
        ``(connection, broker_proposal) -> int`` decides during tuning.
        """
        return self._heartbeat

    @heartbeat.setter
    def heartbeat(self, value: int | HeartbeatCallable | None) -> None:
        if value is not None and not callable(value):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"heartbeat must be an int, a callable or None, but got {value!r}")
            _require_int("heartbeat", value, 0, _MAX_HEARTBEAT)
        self._heartbeat = value

    @property
    def host(self) -> str:
        """Host name or IP address of the broker."""
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        _require_str("host", value)
        if not value:
            raise ValueError("host must be a non-empty str")
        self._host = value

    @property
    def locale(self) -> str:
        """Locale sent to the broker, such as ``'en_US'``."""
        return self._locale

    @locale.setter
    def locale(self, value: str) -> None:
        self._locale = _require_str("locale", value, shortstr=True)

    @property
    def port(self) -> int:
        """TCP port of the broker (1..65535).  A decimal str is accepted, as by pika."""
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        candidate: object = value
        if isinstance(candidate, str) and candidate.strip().isdigit():
            candidate = int(candidate)
        self._port = _require_int("port", candidate, 1, 65535)

    @property
    def retry_delay(self) -> float:
        """Seconds to wait between connection attempts."""
        return self._retry_delay

    @retry_delay.setter
    def retry_delay(self, value: float) -> None:
        self._retry_delay = _require_seconds("retry_delay", value, allow_zero=True)

    @property
    def socket_timeout(self) -> float | None:
        """Timeout of the TCP connect in seconds; None disables it."""
        return self._socket_timeout

    @socket_timeout.setter
    def socket_timeout(self, value: float | None) -> None:
        checked = _require_timeout("socket_timeout", value, allow_zero=False)
        self._socket_timeout = None if checked is None else float(checked)

    @property
    def stack_timeout(self) -> float | None:
        """Timeout of the whole TCP + TLS + AMQP bring-up in seconds; None disables it."""
        return self._stack_timeout

    @stack_timeout.setter
    def stack_timeout(self, value: float | None) -> None:
        checked = _require_timeout("stack_timeout", value, allow_zero=False)
        self._stack_timeout = None if checked is None else float(checked)

    @property
    def ssl_options(self) -> SSLOptions | None:
        """None for plain TCP, or the :class:`SSLOptions` for TLS."""
        return self._ssl_options

    @ssl_options.setter
    def ssl_options(self, value: SSLOptions | None) -> None:
        if value is not None and not isinstance(value, SSLOptions):
            raise TypeError(f"ssl_options must be None or SSLOptions but got {value!r}")
        self._ssl_options = value

    @property
    def virtual_host(self) -> str:
        """The RabbitMQ virtual host to open."""
        return self._virtual_host

    @virtual_host.setter
    def virtual_host(self, value: str) -> None:
        self._virtual_host = _require_str("virtual_host", value, shortstr=True)

    @property
    def tcp_options(self) -> dict[str, int] | None:
        """None, or TCP options for the socket (``TCP_KEEPIDLE``, ``TCP_KEEPINTVL``,
        ``TCP_KEEPCNT``, ``TCP_USER_TIMEOUT``).
        """
        return self._tcp_options

    @tcp_options.setter
    def tcp_options(self, value: dict[str, int] | None) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"tcp_options must be a dict or None, but got {value!r}")
        self._tcp_options = validate_tcp_options(value)


class ConnectionParameters(Parameters):
    """Connection parameters from keyword arguments; omitted ones keep the defaults.

    :param host: broker host name or IP address
    :param port: broker port; defaults to 5671 when ``ssl_options`` is given, else 5672
    :param virtual_host: virtual host to open
    :param credentials: SASL credentials (default guest/guest)
    :param channel_max: largest channel number to propose
    :param frame_max: largest frame size to propose
    :param heartbeat: int (0 = off), None (accept the broker's), or a callable
        ``(connection, broker_proposal) -> int``
    :param ssl_options: None for plain TCP or :class:`SSLOptions`
    :param connection_attempts: how many times to try connecting
    :param retry_delay: seconds between attempts
    :param socket_timeout: TCP connect timeout in seconds
    :param stack_timeout: whole bring-up timeout in seconds
    :param locale: locale sent to the broker
    :param blocked_connection_timeout: seconds the connection may stay blocked
    :param client_properties: overrides for the ``Connection.StartOk`` client properties
    :param tcp_options: TCP options for the socket
    :raises TypeError: on a value of the wrong type (the message names the parameter)
    :raises ValueError: on a value out of range (the message names the parameter)
    """

    __slots__ = ()

    _DEFAULT = _DEFAULT

    def __init__(
        self,
        host: str | _Default = _DEFAULT,
        port: int | _Default = _DEFAULT,
        virtual_host: str | _Default = _DEFAULT,
        credentials: Credentials | _Default = _DEFAULT,
        channel_max: int | _Default = _DEFAULT,
        frame_max: int | _Default = _DEFAULT,
        heartbeat: int | HeartbeatCallable | _Default | None = _DEFAULT,
        ssl_options: SSLOptions | _Default | None = _DEFAULT,
        connection_attempts: int | _Default = _DEFAULT,
        retry_delay: float | _Default = _DEFAULT,
        socket_timeout: float | _Default | None = _DEFAULT,
        stack_timeout: float | _Default | None = _DEFAULT,
        locale: str | _Default = _DEFAULT,
        blocked_connection_timeout: float | _Default | None = _DEFAULT,
        client_properties: dict[str, Any] | _Default | None = _DEFAULT,
        tcp_options: dict[str, int] | _Default | None = _DEFAULT,
    ) -> None:
        super().__init__()
        if blocked_connection_timeout is not _DEFAULT:
            self.blocked_connection_timeout = blocked_connection_timeout
        if channel_max is not _DEFAULT:
            self.channel_max = channel_max
        if client_properties is not _DEFAULT:
            self.client_properties = client_properties
        if connection_attempts is not _DEFAULT:
            self.connection_attempts = connection_attempts
        if credentials is not _DEFAULT:
            self.credentials = credentials
        if frame_max is not _DEFAULT:
            self.frame_max = frame_max
        if heartbeat is not _DEFAULT:
            self.heartbeat = heartbeat
        if host is not _DEFAULT:
            self.host = host
        if locale is not _DEFAULT:
            self.locale = locale
        if retry_delay is not _DEFAULT:
            self.retry_delay = retry_delay
        if socket_timeout is not _DEFAULT:
            self.socket_timeout = socket_timeout
        if stack_timeout is not _DEFAULT:
            self.stack_timeout = stack_timeout
        if ssl_options is not _DEFAULT:
            self.ssl_options = ssl_options
        # The default port depends on whether TLS is on, so it comes after ssl_options.
        if port is not _DEFAULT:
            self.port = port
        else:
            self.port = self.DEFAULT_SSL_PORT if self.ssl_options else self.DEFAULT_PORT
        if virtual_host is not _DEFAULT:
            self.virtual_host = virtual_host
        if tcp_options is not _DEFAULT:
            self.tcp_options = tcp_options


# at the end: url_parameters imports this module
from amqp_core.url_parameters import URLParameters  # noqa: E402
