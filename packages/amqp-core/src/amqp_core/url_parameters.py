"""Connection parameters from an ``amqp://`` / ``amqps://`` URL (:class:`URLParameters`).

Theory of operation: user, password and virtual host are percent-decoded; each query key is
decoded by the ``_set_url_<key>`` method of the same name (pika's convention, so a subclass
can add keys); the TLS keys (pika's ``ssl_options`` dict and RabbitMQ's ``cacertfile``,
``certfile``, ``keyfile``, ``verify``, ``server_name_indication``) are gathered first by
:class:`_TlsQuery` and turned into one :class:`ssl.SSLContext` at the end, so their order in
the URL does not matter.  An unknown key is an error that names the key; errors never quote
the URL itself (it may hold a password).  :mod:`amqp_core.parameters` re-exports the class.
"""

from __future__ import annotations

import ast
import enum
import ssl
import urllib.parse
from collections.abc import Callable
from typing import Any

from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.parameters import Parameters, SSLOptions

__all__ = ["URLParameters"]


class _Unset(enum.Enum):
    """No ``ssl_options`` key in the URL (None is a legitimate value: ``ssl_options=None``)."""

    UNSET = enum.auto()


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
        self._ssl_dict: dict[str, Any] | _Unset | None = _Unset.UNSET
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
        if not isinstance(self._ssl_dict, _Unset):
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
