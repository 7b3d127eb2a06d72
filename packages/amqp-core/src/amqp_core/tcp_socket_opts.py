"""TCP socket options: the ``tcp_options`` dict and ``TCP_NODELAY``.

Theory of operation: an application names TCP options by pika's keys
(``TCP_KEEPIDLE``, ``TCP_KEEPINTVL``, ``TCP_KEEPCNT``, ``TCP_USER_TIMEOUT``)
with integer values.  :func:`validate_tcp_options` checks such a dict when it
is given to the connection parameters, so a typo fails at configuration time
rather than at connect time; :func:`apply_tcp_options` turns it into
``setsockopt`` calls on a freshly connected socket, switching ``SO_KEEPALIVE``
on first whenever a keepalive tuning knob is present (the knobs do nothing
without it).  A key this module knows but the running platform lacks is
logged and skipped, so one configuration can serve several systems; a key it
does not know at all is an error.

:func:`set_nodelay` disables Nagle's algorithm: AMQP sends many small frames
and waits for small replies, and Nagle plus delayed ACKs would add tens of
milliseconds to every synchronous round trip.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Mapping

__all__ = [
    "KEEPALIVE_OPTIONS",
    "SUPPORTED_TCP_OPTIONS",
    "apply_tcp_options",
    "set_nodelay",
    "validate_tcp_options",
]

LOGGER = logging.getLogger(__name__)

#: Options that tune TCP keepalive; any of them turns ``SO_KEEPALIVE`` on.
KEEPALIVE_OPTIONS = frozenset({"TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"})

#: Every key accepted in a ``tcp_options`` dict.
SUPPORTED_TCP_OPTIONS = frozenset(KEEPALIVE_OPTIONS | {"TCP_USER_TIMEOUT"})

# Linux's number for TCP_USER_TIMEOUT (include/uapi/linux/tcp.h), used when the
# Python build does not export the constant.
_LINUX_TCP_USER_TIMEOUT = 18


def _option_number(name: str) -> int | None:
    """Return the ``setsockopt`` number for ``name`` here, or None if unavailable."""
    number = getattr(socket, name, None)
    if isinstance(number, int):
        return number
    if name == "TCP_USER_TIMEOUT" and sys.platform.startswith("linux"):
        return _LINUX_TCP_USER_TIMEOUT
    if name == "TCP_KEEPIDLE":
        # macOS calls the idle time TCP_KEEPALIVE.
        alias = getattr(socket, "TCP_KEEPALIVE", None)
        if isinstance(alias, int):
            return alias
    return None


def validate_tcp_options(tcp_options: Mapping[str, int] | None) -> dict[str, int] | None:
    """Check a ``tcp_options`` mapping and return a plain-dict copy of it.

    :param tcp_options: None, or a mapping of option name to integer value
    :returns: None, or a new ``dict`` with the same items
    :raises TypeError: when ``tcp_options`` is not a mapping, or a value is not an int
    :raises ValueError: when a key is unknown (the message names it) or a value is
        out of range
    """
    if tcp_options is None:
        return None
    if not isinstance(tcp_options, Mapping):
        raise TypeError(f"tcp_options must be a dict or None, but got {tcp_options!r}")
    checked: dict[str, int] = {}
    for key, value in tcp_options.items():
        if key not in SUPPORTED_TCP_OPTIONS:
            raise ValueError(
                f"tcp_options: unsupported TCP option {key!r}; supported options are "
                f"{', '.join(sorted(SUPPORTED_TCP_OPTIONS))}"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"tcp_options[{key!r}] must be an int, but got {value!r}")
        minimum = 1 if key in KEEPALIVE_OPTIONS else 0
        if value < minimum:
            raise ValueError(f"tcp_options[{key!r}] must be >= {minimum}, but got {value!r}")
        checked[key] = value
    return checked


def apply_tcp_options(sock: socket.socket, tcp_options: Mapping[str, int] | None) -> None:
    """Set the options of a ``tcp_options`` mapping on ``sock``.

    ``SO_KEEPALIVE`` is enabled first when any keepalive option is present.  An
    option known here but missing on this platform is logged and skipped.

    :param sock: a TCP socket (connected or not)
    :param tcp_options: None or a mapping of pika-style option name to int value
    :raises TypeError: when a value is not an int
    :raises ValueError: when a key is unknown, or the kernel rejects a value
        (the message names the key)
    """
    options = validate_tcp_options(tcp_options)
    if not options:
        return
    if KEEPALIVE_OPTIONS.intersection(options):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for key, value in options.items():
        number = _option_number(key)
        if number is None:
            LOGGER.warning("TCP option %s is not available on this platform; ignored", key)
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, number, value)
        except OSError as exc:
            raise ValueError(f"tcp_options[{key!r}]={value!r} rejected by the OS: {exc}") from exc


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle's algorithm on a TCP socket (no-op for non-IP sockets).

    :param sock: the socket to configure
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
