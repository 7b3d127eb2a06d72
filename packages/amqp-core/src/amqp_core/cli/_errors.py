"""Exit codes and the one-line error report of the ``amqp-core`` command.

Theory of operation: every command raises; only :func:`amqp_core.cli.main`
catches, and it asks :func:`classify` for two things: the process exit code
and one line of text saying what went wrong.  The classification follows the
exception hierarchy of :mod:`amqp_core.exceptions` (pika's): anything that
ends or prevents the connection is :data:`EXIT_CONNECTION`, anything the
broker refused on a channel (Channel.Close, a nacked or returned message) is
:data:`EXIT_CHANNEL`, a bad command line is :data:`EXIT_USAGE`, the rest is
:data:`EXIT_FAILURE`.  The line never holds a newline and never quotes a
password (the URL is never part of it; only ``host:port`` is).
"""

from __future__ import annotations

import re
from typing import Final

from ..adapters.utils.connection_workflow import (
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorException,
    AMQPConnectorPhaseErrorBase,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
    AMQPConnectorTransportSetupError,
)
from ..exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    AMQPHeartbeatTimeout,
    AuthenticationError,
    ChannelClosed,
    ChannelClosedByBroker,
    ConnectionBlockedTimeout,
    ConnectionClosed,
    ConnectionClosedByBroker,
    IncompatibleProtocolError,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
    UnroutableError,
)
from ..plugins import AdapterLoadError, AdapterNotFoundError

__all__ = [
    "EXIT_CHANNEL",
    "EXIT_CONNECTION",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "UsageError",
    "classify",
    "one_line",
]

#: Success.
EXIT_OK: Final = 0
#: Any failure not listed below (a broken adapter, a bench run that failed, an I/O error ...).
EXIT_FAILURE: Final = 1
#: A bad command line: unknown option, missing argument, bad ``KEY=VALUE`` or URL, unknown adapter.
EXIT_USAGE: Final = 2
#: The connection could not be opened or was lost: refused, TLS, authentication, vhost, timeout.
EXIT_CONNECTION: Final = 3
#: The broker refused an operation on a channel (404, 406, 403 ...), or nacked / returned a message.
EXIT_CHANNEL: Final = 4
#: Interrupted by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130


class CliError(Exception):
    """An error the command reports as one line, with its exit code.

    :param message: what went wrong (one line)
    :param exit_code: the process exit code
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        #: The process exit code.
        self.exit_code = exit_code


class UsageError(CliError):
    """A bad command line (exit code :data:`EXIT_USAGE`); never names a broker.

    :param message: what is wrong with the arguments
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines included) folded into one space."""
    return _SPACES.sub(" ", text).strip()


def _detail(error: BaseException) -> str:
    """The most useful text an exception carries."""
    if isinstance(error, ChannelClosed | ConnectionClosed):
        return f"{error.reply_code} {error.reply_text}"
    if isinstance(error, AMQPConnectorPhaseErrorBase):
        return _detail(error.exception)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    args = [arg for arg in error.args if arg not in (None, "")]
    if len(args) == 1 and isinstance(args[0], BaseException):
        return _detail(args[0])
    if len(args) == 1:
        text = str(args[0])
    else:
        text = str(error)
    text = text.strip()
    # the core writes handshake closes as "(403) ACCESS_REFUSED - ..."
    match = re.fullmatch(r"\((\d+)\) (.*)", text, re.DOTALL)
    if match:
        text = f"{match.group(1)} {match.group(2)}"
    return text or type(error).__name__


def _connection_error(error: AMQPConnectionError) -> str:
    if isinstance(error, ProbableAuthenticationError | AuthenticationError):
        return f"authentication failed: {_detail(error)}"
    if isinstance(error, ProbableAccessDeniedError):
        return f"access to the virtual host was refused: {_detail(error)}"
    if isinstance(error, IncompatibleProtocolError):
        return f"the peer does not speak AMQP 0-9-1: {_detail(error)}"
    if isinstance(error, ConnectionClosedByBroker):
        return f"the broker closed the connection: {_detail(error)}"
    if isinstance(error, AMQPHeartbeatTimeout):
        return f"heartbeat timeout: {_detail(error)}"
    if isinstance(error, ConnectionBlockedTimeout):
        return f"the broker blocked the connection for too long: {_detail(error)}"
    if isinstance(error, StreamLostError):
        return f"connection lost: {_detail(error)}"
    cause = error.args[0] if len(error.args) == 1 else None
    if isinstance(cause, AMQPConnectorException):
        return _connector_error(cause)
    return f"connection error: {_detail(error)}"


def _connector_error(error: AMQPConnectorException) -> str:
    if isinstance(error, AMQPConnectorSocketConnectError):
        return f"cannot connect: {_detail(error)}"
    if isinstance(error, AMQPConnectorTransportSetupError):
        return f"TLS setup failed: {_detail(error)}"
    if isinstance(error, AMQPConnectorStackTimeout):
        return f"timed out opening the connection: {_detail(error)}"
    if isinstance(error, AMQPConnectorAMQPHandshakeError):
        return f"AMQP handshake failed: {_detail(error)}"
    return f"cannot connect: {_detail(error)}"


def _channel_error(error: AMQPChannelError) -> str:
    if isinstance(error, ChannelClosedByBroker):
        return f"the broker closed the channel: {_detail(error)}"
    if isinstance(error, UnroutableError):
        count = len(error.messages)
        return f"{count} message(s) returned as unroutable (mandatory publish)"
    if isinstance(error, NackError):
        count = len(error.messages)
        return f"the broker nacked {count} message(s)"
    if isinstance(error, ChannelClosed):
        return f"channel closed: {_detail(error)}"
    return f"channel error: {_detail(error)}"


def classify(error: BaseException, target: str | None = None) -> tuple[int, str]:
    """The exit code and the one-line message for ``error``.

    :param error: what a command raised
    :param target: ``host:port`` of the broker in use (appended to broker errors), or None
    :returns: ``(exit_code, message)``; the message has no ``amqp-core: error:`` prefix
    """
    code = EXIT_FAILURE
    broker_related = True
    if isinstance(error, UsageError):
        code, text, broker_related = EXIT_USAGE, str(error), False
    elif isinstance(error, CliError):
        code, text = error.exit_code, str(error)
    elif isinstance(error, AdapterNotFoundError):
        code, text, broker_related = EXIT_USAGE, str(error), False
    elif isinstance(error, AdapterLoadError):
        text, broker_related = str(error), False
    elif isinstance(error, AMQPConnectionError):
        code, text = EXIT_CONNECTION, _connection_error(error)
    elif isinstance(error, AMQPConnectorException):
        code, text = EXIT_CONNECTION, _connector_error(error)
    elif isinstance(error, AMQPChannelError):
        code, text = EXIT_CHANNEL, _channel_error(error)
    elif isinstance(error, AMQPError):
        text = f"{type(error).__name__}: {_detail(error)}"
    elif isinstance(error, TimeoutError):
        text = f"timed out: {_detail(error)}"
    elif isinstance(error, OSError):
        name = f": {error.filename}" if error.filename else ""
        text, broker_related = f"{_detail(error)}{name}", error.filename is None
    else:
        text = f"{type(error).__name__}: {_detail(error)}"
    text = one_line(text)
    if broker_related and target:
        text = f"{text} ({target})"
    return code, text
