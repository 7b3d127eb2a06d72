"""Every exception the library raises, under pika's names and hierarchy.

Theory of operation: a pika user catches ``pika.exceptions.X``; here the same
name lives in ``amqp_core.exceptions`` with the same base classes, the same
attributes (``reply_code``, ``reply_text``, ``messages``) and the same ``repr``
shapes.  As on pika's main branch, every connection-level error accepts
keyword-only ``host`` and ``port`` so an application can tell which broker of
several failed.

Two classes are ours: :class:`LocalProtocolError` (the caller asked for
something illegal; raised before anything is encoded) and
:class:`RemoteProtocolError` (the peer broke the protocol; the core has queued
``Connection.Close`` with the reply code before raising).  The pika-named
errors that mean the same thing inherit from them, so either spelling can be
caught.
"""

from __future__ import annotations

from typing import Any


class AMQPError(Exception):
    """Base of every AMQP error."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: An unspecified AMQP error has occurred; {self.args}"


def _where(host: str | None, port: int | None) -> str:
    if host is None and port is None:
        return ""
    return f" [{host}:{port}]"


class AMQPConnectionError(AMQPError):
    """Base of errors that end (or prevent) a connection.

    :param args: pika-style positional details
    :param host: the broker host this error concerns, when known
    :param port: the broker port this error concerns, when known
    """

    def __init__(self, *args: Any, host: str | None = None, port: int | None = None) -> None:
        super().__init__(*args)
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        if len(self.args) == 2:
            text = f"{self.__class__.__name__}: ({self.args[0]}) {self.args[1]}"
        else:
            text = f"{self.__class__.__name__}: {self.args}"
        return text + _where(self.host, self.port)


class ConnectionOpenAborted(AMQPConnectionError):
    """Client closed the connection while it was being opened."""


class StreamLostError(AMQPConnectionError):
    """The transport (TCP/TLS stream) was lost."""


class IncompatibleProtocolError(AMQPConnectionError):
    """The peer does not speak AMQP 0-9-1 (or closed before the handshake)."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: The protocol returned by the server is not "
            f"supported: {self.args}" + _where(self.host, self.port)
        )


class AuthenticationError(AMQPConnectionError):
    """No SASL mechanism could be agreed."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: Server and client could not negotiate use of the "
            f"{self.args[0] if self.args else '?'} authentication mechanism"
            + _where(self.host, self.port)
        )


class ProbableAuthenticationError(AMQPConnectionError):
    """The broker dropped us at the stage where it checks credentials."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: Client was disconnected at a connection stage "
            f"indicating a probable authentication error: {self.args}"
            + _where(self.host, self.port)
        )


class ProbableAccessDeniedError(AMQPConnectionError):
    """The broker dropped us at the stage where it checks vhost access."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: Client was disconnected at a connection stage "
            f"indicating a probable denial of access to the specified virtual host: "
            f"{self.args}" + _where(self.host, self.port)
        )


class NoFreeChannels(AMQPConnectionError):
    """Every channel number up to the negotiated channel_max is in use."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: The connection has run out of free channels"


class LocalProtocolError(AMQPError):
    """The caller asked for something the protocol or the current state forbids.

    Raised before anything is encoded or sent.
    """


class ConnectionWrongStateError(AMQPConnectionError, LocalProtocolError):
    """The connection is in the wrong state for the requested operation."""

    def __repr__(self) -> str:
        if self.args:
            return super().__repr__()
        return (
            f"{self.__class__.__name__}: The connection is in wrong state for the "
            "requested operation."
        )


class ConnectionClosed(AMQPConnectionError):
    """The connection was closed; carries the AMQP reply code and text.

    :param reply_code: AMQP reply code (or an internal negative one)
    :param reply_text: human-readable reason
    """

    def __init__(
        self,
        reply_code: int,
        reply_text: str,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(int(reply_code), str(reply_text), host=host, port=port)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: ({self.reply_code}) {self.reply_text!r}"
            + _where(self.host, self.port)
        )

    @property
    def reply_code(self) -> int:
        """The AMQP reply code."""
        return int(self.args[0])

    @property
    def reply_text(self) -> str:
        """The reason given with the close."""
        return str(self.args[1])


class ConnectionClosedByBroker(ConnectionClosed):
    """The broker sent Connection.Close."""


class ConnectionClosedByClient(ConnectionClosed):
    """The application closed the connection."""


class ConnectionBlockedTimeout(AMQPConnectionError):
    """The broker kept the connection blocked longer than blocked_connection_timeout."""


class AMQPHeartbeatTimeout(AMQPConnectionError):
    """The peer went silent for longer than the heartbeat allows."""


class RemoteProtocolError(AMQPConnectionError):
    """The peer broke the protocol.

    The core has already queued ``Connection.Close`` with :attr:`reply_code`
    (501 frame error, 502 syntax error, 505 unexpected frame ...) when this is raised,
    unless :attr:`sends_close` is False.

    :param reply_code: the AMQP hard-error code that names the fault
    :param reply_text: what was wrong
    :param sends_close: whether the fault is answered with ``Connection.Close``; False for
        those after which the spec (4.2.3) wants the connection closed "without sending any
        further data": a bad frame-end octet, an unknown frame type
    """

    def __init__(
        self,
        reply_code: int,
        reply_text: str,
        *,
        host: str | None = None,
        port: int | None = None,
        sends_close: bool = True,
    ) -> None:
        super().__init__(int(reply_code), str(reply_text), host=host, port=port)
        self.sends_close = sends_close

    @property
    def reply_code(self) -> int:
        """The AMQP hard-error code for the fault."""
        return int(self.args[0])

    @property
    def reply_text(self) -> str:
        """What the peer did wrong."""
        return str(self.args[1])


class AMQPChannelError(AMQPError):
    """Base of channel-level errors."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: {self.args!r}"


class ChannelWrongStateError(AMQPChannelError, LocalProtocolError):
    """The channel is in the wrong state for the requested operation."""


class ChannelClosed(AMQPChannelError):
    """The channel was closed; carries the AMQP reply code and text."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(int(reply_code), str(reply_text))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        """The AMQP reply code."""
        return int(self.args[0])

    @property
    def reply_text(self) -> str:
        """The reason given with the close."""
        return str(self.args[1])


class ChannelClosedByBroker(ChannelClosed):
    """The broker sent Channel.Close (a soft error such as 404 or 406)."""


class ChannelClosedByClient(ChannelClosed):
    """The application closed the channel."""


class DuplicateConsumerTag(AMQPChannelError, LocalProtocolError):
    """The consumer tag is already in use on this channel."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: The consumer tag specified already exists for "
            f"this channel: {self.args[0] if self.args else ''}"
        )


class ConsumerCancelled(AMQPChannelError):
    """The broker cancelled the consumer (Basic.Cancel from the broker)."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: Server cancelled consumer"


class UnroutableError(AMQPChannelError):
    """Messages published with ``mandatory`` came back as unroutable.

    :param messages: the returned messages
    """

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned")
        self.messages = messages

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: {len(self.messages)} unroutable messages "
            "returned by broker"
        )


class NackError(AMQPChannelError):
    """The broker negatively acknowledged published messages.

    :param messages: the nacked messages
    """

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} message(s) NACKed")
        self.messages = messages

    def __repr__(self) -> str:
        count = len(self.messages)
        return f"{self.__class__.__name__}: {count} unroutable messages returned by broker"


class InvalidChannelNumber(LocalProtocolError):
    """A channel number outside 1..channel_max, or one already in use."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: An invalid channel number has been specified: "
            f"{self.args[0] if self.args else ''}"
        )


class ProtocolSyntaxError(AMQPError):
    """Something could not be encoded or decoded as AMQP."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: An unspecified protocol syntax error occurred"


class UnexpectedFrameError(ProtocolSyntaxError):
    """A frame arrived out of sequence."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: Received a frame out of sequence: {self.args!r}"


class ProtocolVersionMismatch(ProtocolSyntaxError):
    """The peer answered with another protocol version."""

    def __repr__(self) -> str:
        first = self.args[0] if self.args else None
        second = self.args[1] if len(self.args) > 1 else None
        return (
            f"{self.__class__.__name__}: Protocol versions did not match: "
            f"{first!r} vs {second!r}"
        )


class BodyTooLongError(ProtocolSyntaxError):
    """A content body was longer than its header announced."""

    def __repr__(self) -> str:
        received = self.args[0] if self.args else 0
        expected = self.args[1] if len(self.args) > 1 else 0
        return (
            f"{self.__class__.__name__}: Received too many bytes for a message delivery: "
            f"Received {received}, expected {expected}"
        )


class InvalidFrameError(ProtocolSyntaxError):
    """A frame could not be parsed."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: Invalid frame received: {self.args!r}"


class InvalidFieldTypeException(ProtocolSyntaxError):
    """A field table carried a type tag this library does not know."""

    def __repr__(self) -> str:
        kind = self.args[0] if self.args else ""
        return f"{self.__class__.__name__}: Unsupported field kind {kind}"


class UnsupportedAMQPFieldException(ProtocolSyntaxError):
    """A Python value cannot be encoded into a field table (the message names the key)."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: Unsupported field kind {self.args!r}"


class MethodNotImplemented(AMQPError):
    """The requested AMQP method is not implemented."""


class ChannelError(Exception):
    """Generic channel misuse (pika's name)."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: An unspecified error occurred with the Channel"


class ReentrancyError(Exception):
    """A blocking call was made from inside a callback of the same connection."""


class ShortStringTooLong(AMQPError):
    """An AMQP short string holds at most 255 bytes when encoded."""

    def __repr__(self) -> str:
        first = str(self.args[0]) if self.args else ""
        return (
            f"{self.__class__.__name__}: AMQP Short String can contain up to 255 bytes: "
            f"{first[:300]}"
        )


class DuplicateGetOkCallback(ChannelError):
    """``basic_get`` was called again before the previous one completed."""

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}: basic_get can only be called again after the "
            "callback for the previous basic_get is executed"
        )


class RemoteFrameError(RemoteProtocolError, InvalidFrameError):
    """A malformed or oversized frame from the peer (501 FRAME_ERROR)."""


class RemoteSyntaxError(RemoteProtocolError, ProtocolSyntaxError):
    """A method or property list from the peer could not be decoded (502 SYNTAX_ERROR)."""


class RemoteCommandInvalid(RemoteProtocolError, ProtocolSyntaxError):
    """The peer sent an unknown class/method or an invalid command (503 COMMAND_INVALID)."""


class RemoteChannelError(RemoteProtocolError, ProtocolSyntaxError):
    """The peer used a channel that is not open (504 CHANNEL_ERROR)."""


class RemoteUnexpectedFrame(RemoteProtocolError, UnexpectedFrameError):
    """The peer sent a frame out of sequence (505 UNEXPECTED_FRAME)."""


class RemoteBodyTooLong(RemoteProtocolError, BodyTooLongError):
    """A content body was longer than its header announced (505 UNEXPECTED_FRAME, spec
    4.2.6: badly-formatted content), or its header announced more than allowed (501)."""
