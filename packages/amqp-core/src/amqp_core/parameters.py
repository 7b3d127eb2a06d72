"""Connection parameters: where to connect, as whom, and how to tune the link.

Theory of operation: :class:`Parameters` is a bag of validated properties with
pika 1.3's names and defaults.  Every property has a setter that checks the
value (``TypeError`` for a wrong type, ``ValueError`` for a value out of range,
both naming the parameter), so a bad setting fails where it is made rather than
half-way through a handshake.  Nothing here does I/O or knows the connection
state machine; the connection reads these values when it connects.

:class:`ConnectionParameters` fills the bag from keyword arguments; arguments
left out keep the defaults, and the port defaults to 5671 instead of 5672 when
``ssl_options`` is given.  :class:`URLParameters` fills it from an
``amqp://`` or ``amqps://`` URL: user, password and virtual host are
percent-decoded, each query key is decoded by the ``_set_url_<key>`` method of
the same name (pika's convention, so a subclass can add keys), and the TLS keys
(pika's ``ssl_options`` dict and RabbitMQ's ``cacertfile``, ``certfile``,
``keyfile``, ``verify``, ``server_name_indication``) are gathered first and
turned into one :class:`ssl.SSLContext` at the end, so their order in the URL
does not matter.  An unknown key is an error that names the key.

Secrets: ``repr`` shows host, port, virtual host and whether TLS is on, never
credentials; URL errors never quote the URL itself.

Two deliberate differences from pika: equality compares every property (pika
compares host and port only), and a few values pika lets through are rejected
(booleans for numbers, ports outside 1..65535, negative ``retry_delay``,
``heartbeat`` above 65535, unknown ``tcp_options`` / ``ssl_options`` keys).
"""

from __future__ import annotations

import ast
import copy
import enum
import math
import ssl
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from amqp_core.credentials import VALID_TYPES, Credentials, ExternalCredentials, PlainCredentials
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


_RABBITMQ_TLS_KEYS = frozenset(
    {"cacertfile", "certfile", "keyfile", "verify", "server_name_indication"}
)
_SSL_DICT_KEYS = frozenset(
    {
        "protocol",
        "ca_certs",
        "cafile",
        "ca_path",
        "capath",
        "ca_data",
        "cadata",
        "certfile",
        "keyfile",
        "password",
        "ciphers",
        "server_hostname",
    }
)


class _TlsQuery:
    """Gathers the TLS-related URL query keys, then builds one :class:`SSLOptions`.

    pika's ``ssl_options`` dict and RabbitMQ's individual keys are two ways of
    saying the same thing; mixing them in one URL is an error.
    """

    def __init__(self, *, scheme_tls: bool) -> None:
        self.scheme_tls = scheme_tls
        self._ssl_dict: dict[str, Any] | _Default | None = _DEFAULT
        self._rabbitmq: dict[str, str] = {}

    @staticmethod
    def accepts(name: str) -> bool:
        """Tell whether the query key ``name`` is a TLS key."""
        return name == "ssl_options" or name in _RABBITMQ_TLS_KEYS

    def add(self, name: str, value: str) -> None:
        """Record one TLS query key (the value is never quoted in errors)."""
        if name == "ssl_options":
            try:
                opts = _parse_literal(value)
            except ValueError as exc:
                raise ValueError(f"Invalid URL parameter ssl_options: {exc}") from None
            if opts is not None and not isinstance(opts, dict):
                raise ValueError("Invalid URL parameter ssl_options: expected a dict or None")
            self._ssl_dict = opts
            return
        if not self.scheme_tls:
            raise ValueError(f"URL parameter {name} requires the amqps:// scheme")
        if not value:
            raise ValueError(f"URL parameter {name} must not be empty")
        self._rabbitmq[name] = value

    def build(self) -> SSLOptions | None:
        """Return the :class:`SSLOptions` the URL asks for, or None for plain TCP."""
        if not isinstance(self._ssl_dict, _Default):
            if self._rabbitmq:
                raise ValueError(
                    "URL parameter ssl_options cannot be combined with "
                    + ", ".join(sorted(self._rabbitmq))
                )
            if self._ssl_dict is None:
                if self.scheme_tls:
                    raise ValueError(
                        "URL parameter ssl_options=None is inconsistent with the amqps scheme"
                    )
                return None
            return _ssl_options_from_dict(self._ssl_dict)
        if not self.scheme_tls:
            return None
        return _ssl_options_from_rabbitmq_keys(self._rabbitmq)


def _load_failure(key: str, exc: BaseException) -> ValueError:
    return ValueError(f"URL parameter {key}: cannot load: {exc}")


def _ssl_options_from_rabbitmq_keys(keys: dict[str, str]) -> SSLOptions:
    """Build TLS settings from RabbitMQ's query names on a verifying default context."""
    cafile = keys.get("cacertfile")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ValueError) as exc:
        raise _load_failure("cacertfile", exc) from exc
    certfile, keyfile = keys.get("certfile"), keys.get("keyfile")
    if keyfile is not None and certfile is None:
        raise ValueError("URL parameter keyfile requires certfile")
    if certfile is not None:
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ValueError) as exc:
            raise _load_failure("keyfile" if keyfile else "certfile", exc) from exc
    verify = keys.get("verify", "verify_peer").lower()
    if verify == "verify_none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify != "verify_peer":
        raise ValueError("URL parameter verify must be verify_peer or verify_none")
    server_name = keys.get("server_name_indication")
    if server_name is not None and server_name.lower() == "disable":
        raise ValueError(
            "URL parameter server_name_indication=disable is not supported; "
            "give a host name or leave it out"
        )
    return SSLOptions(context, server_name)


def _dict_value(opts: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    value = opts.get(key)
    if value is not None and not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise ValueError(f"URL parameter ssl_options: {key} must be {names}")
    return value


def _ssl_options_from_dict(opts: dict[str, Any]) -> SSLOptions:
    """Build TLS settings from pika's ``ssl_options`` dict form."""
    for key in opts:
        if key not in _SSL_DICT_KEYS:
            raise ValueError(
                f"URL parameter ssl_options: unsupported key {key!r}; supported keys are "
                + ", ".join(sorted(_SSL_DICT_KEYS))
            )
    protocol = _dict_value(opts, "protocol", (int,))
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT if protocol is None else protocol)
    except (OSError, ValueError) as exc:
        raise ValueError(f"URL parameter ssl_options: invalid protocol: {exc}") from exc
    cafile = _dict_value(opts, "ca_certs", (str,)) or _dict_value(opts, "cafile", (str,))
    capath = _dict_value(opts, "ca_path", (str,)) or _dict_value(opts, "capath", (str,))
    cadata = _dict_value(opts, "ca_data", (str, bytes)) or _dict_value(opts, "cadata", (str, bytes))
    try:
        if cafile or capath or cadata:
            context.load_verify_locations(cafile, capath, cadata)
        else:
            context.load_default_certs()
    except (OSError, ValueError) as exc:
        raise _load_failure("ssl_options", exc) from exc
    certfile = _dict_value(opts, "certfile", (str,))
    keyfile = _dict_value(opts, "keyfile", (str,))
    password = _dict_value(opts, "password", (str, bytes))
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile, password)
        except (OSError, ValueError) as exc:
            raise _load_failure("ssl_options", exc) from exc
    elif keyfile:
        raise ValueError("URL parameter ssl_options: keyfile requires certfile")
    ciphers = _dict_value(opts, "ciphers", (str,))
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ValueError(f"URL parameter ssl_options: invalid ciphers: {exc}") from exc
    return SSLOptions(context, _dict_value(opts, "server_hostname", (str,)))


class URLParameters(Parameters):
    """Connection parameters from an AMQP URL::

        amqp[s]://username:password@host:port/virtual_host?key=value&...

    User, password and virtual host are percent-decoded (the default virtual
    host ``/`` is written ``%2F``; an empty path also means ``/``).  ``amqps``
    turns TLS on with a verifying default context and makes 5671 the default
    port.  Query keys: ``blocked_connection_timeout``, ``channel_max``,
    ``client_properties`` (a Python dict literal), ``connection_attempts``,
    ``frame_max``, ``heartbeat``, ``locale``, ``retry_delay``,
    ``socket_timeout``, ``stack_timeout``, ``ssl_options`` (pika's dict
    literal), ``tcp_options`` (a dict literal), RabbitMQ's TLS keys
    ``cacertfile``, ``certfile``, ``keyfile``, ``verify`` (``verify_peer`` or
    ``verify_none``) and ``server_name_indication``, and ``auth_mechanism``
    (``plain`` or ``external``).

    :param url: the AMQP URL
    :raises TypeError: when ``url`` is not a str
    :raises ValueError: on a malformed URL, an unknown query key or an invalid
        value (the message names the key; it never quotes the URL)
    """

    __slots__ = ()

    # The query key ``foo`` is decoded by the method named _SETTER_PREFIX + "foo".
    _SETTER_PREFIX = "_set_url_"

    def __init__(self, url: str) -> None:
        super().__init__()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, but got {type(url).__name__}")
        try:
            parts = urllib.parse.urlsplit(url)
            hostname = parts.hostname
            username, password = parts.username, parts.password
        except ValueError as exc:
            raise ValueError(f"url is not a valid AMQP URL: {exc}") from None
        try:
            port = parts.port
        except ValueError:
            # Python's message may quote part of the netloc (a mistyped password).
            raise ValueError("url has an invalid port: it must be an int in 1..65535") from None

        scheme = parts.scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise ValueError(
                f"Unexpected URL scheme {parts.scheme!r}; supported scheme values: amqp, amqps"
            )
        tls = _TlsQuery(scheme_tls=scheme == "amqps")

        if hostname:
            self.host = urllib.parse.unquote(hostname)
        if port is not None:
            self.port = port
        else:
            self.port = self.DEFAULT_SSL_PORT if tls.scheme_tls else self.DEFAULT_PORT
        if username is not None:
            self.credentials = PlainCredentials(
                urllib.parse.unquote(username), urllib.parse.unquote(password or "")
            )
        if len(parts.path) > 1:
            raw_vhost = parts.path[1:]
            if "/" in raw_vhost:
                raise ValueError(
                    "virtual_host in the URL path must be a single segment; "
                    "percent-encode '/' as %2F"
                )
            self.virtual_host = urllib.parse.unquote(raw_vhost)

        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        for name, values in query.items():
            if len(values) != 1:
                raise ValueError(
                    f"Expected exactly one value for URL parameter {name}, "
                    f"but got {len(values)} values"
                )
            value = values[0]
            if tls.accepts(name):
                tls.add(name, value)
                continue
            setter: Callable[[str], None] | None = getattr(self, self._SETTER_PREFIX + name, None)
            if setter is None:
                raise ValueError(f"Unknown URL parameter: {name!r}")
            try:
                setter(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Invalid URL parameter {name}={value!r}: {exc}") from exc

        self.ssl_options = tls.build()

    # -- one decoder per query key ------------------------------------------

    def _set_url_auth_mechanism(self, value: str) -> None:
        mechanism = value.strip().lower()
        if mechanism == "external":
            self.credentials = ExternalCredentials()
        elif mechanism == "plain":
            if not isinstance(self.credentials, PlainCredentials):
                self.credentials = self.DEFAULT_CREDENTIALS
        else:
            raise ValueError("auth_mechanism must be 'plain' or 'external'")

    def _set_url_blocked_connection_timeout(self, value: str) -> None:
        self.blocked_connection_timeout = _parse_float(value)

    def _set_url_channel_max(self, value: str) -> None:
        self.channel_max = _parse_int(value)

    def _set_url_client_properties(self, value: str) -> None:
        self.client_properties = _parse_literal(value)

    def _set_url_connection_attempts(self, value: str) -> None:
        self.connection_attempts = _parse_int(value)

    def _set_url_frame_max(self, value: str) -> None:
        self.frame_max = _parse_int(value)

    def _set_url_heartbeat(self, value: str) -> None:
        self.heartbeat = _parse_int(value)

    def _set_url_locale(self, value: str) -> None:
        self.locale = value

    def _set_url_retry_delay(self, value: str) -> None:
        self.retry_delay = _parse_float(value)

    def _set_url_socket_timeout(self, value: str) -> None:
        self.socket_timeout = _parse_float(value)

    def _set_url_stack_timeout(self, value: str) -> None:
        self.stack_timeout = _parse_float(value)

    def _set_url_tcp_options(self, value: str) -> None:
        self.tcp_options = _parse_literal(value)


def _parse_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number") from None


def _parse_literal(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("expected a Python literal such as {'key': 'value'}") from None
