"""The client's half of the AMQP 0-9-1 handshake as pure negotiation: methods in, methods out.

Theory of operation: :class:`Handshake` holds what the client asks for (credentials, virtual
host, client properties, its channel_max / frame_max / heartbeat proposals, locale).  The
connection hands it the broker's ``Connection.Start``, ``Secure`` and ``Tune`` and queues the
methods it returns; the negotiated limits come back in :class:`Tuned`.  Nothing here queues
bytes, keeps connection state or knows about time, so each rule (version check, "0 means no
limit", a frame_max under the protocol minimum, the heartbeat callable) is testable alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import spec
from ..amqp_object import Method
from ..exceptions import (
    IncompatibleProtocolError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteProtocolError,
)
from .states import ConnectionState

__all__ = ["Handshake", "HeartbeatSetting", "Tuned", "handshake_error", "negotiate"]

#: seconds, None to accept the broker's proposal, or ``(proposal) -> seconds``
HeartbeatSetting = int | None | Callable[[int], int]


def negotiate(client: int | None, server: int | None) -> int:
    """0 means "no limit": take the other side's value; otherwise the smaller."""
    client = client or 0
    server = server or 0
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


def handshake_error(state: ConnectionState, reply_code: int, reply_text: str) -> Exception:
    """The exception for a ``Connection.Close`` received during the handshake (pika's names):
    while authenticating, while opening the virtual host, or before either."""
    detail = f"({reply_code}) {reply_text}"
    if state is ConnectionState.AWAIT_TUNE:
        return ProbableAuthenticationError(detail)
    if state is ConnectionState.AWAIT_OPEN_OK:
        return ProbableAccessDeniedError(detail)
    return IncompatibleProtocolError(detail)


@dataclass(frozen=True, slots=True)
class Tuned:
    """The outcome of ``Connection.Tune``: the negotiated limits and the two methods to send."""

    channel_max: int
    frame_max: int
    heartbeat: int
    tune_ok: Method
    open: Method


class Handshake:
    """What the client proposes, and its answers to the broker's handshake methods.

    :param credentials: object with ``response_for(start) -> (mechanism, response)``
    :param virtual_host: the vhost to open
    :param client_properties: the Start-Ok client properties table
    :param channel_max: our proposal (0 = no limit)
    :param frame_max: our proposal
    :param heartbeat: see :data:`HeartbeatSetting`
    :param locale: the Start-Ok locale
    """

    __slots__ = ("_channel_max", "_client_properties", "_frame_max", "_heartbeat", "_locale",
                 "_start", "_virtual_host", "credentials")

    def __init__(
        self,
        *,
        credentials: Any,
        virtual_host: str,
        client_properties: Mapping[str, Any] | None,
        channel_max: int,
        frame_max: int,
        heartbeat: HeartbeatSetting,
        locale: str,
    ) -> None:
        self.credentials = credentials
        self._virtual_host = virtual_host
        self._client_properties = dict(client_properties or {})
        self._channel_max = channel_max
        self._frame_max = frame_max
        self._heartbeat = heartbeat
        self._locale = locale
        self._start: Any = None

    def start_ok(self, start: Any) -> Method | None:
        """The answer to ``Connection.Start``; None when the credentials offer no mechanism
        the broker accepts.

        :raises RemoteProtocolError: the broker speaks another protocol version (540)
        """
        if (start.version_major, start.version_minor) != (0, 9):
            raise RemoteProtocolError(
                spec.NOT_IMPLEMENTED,
                f"broker speaks {start.version_major}-{start.version_minor}, not 0-9",
            )
        self._start = start
        mechanism, response = self.credentials.response_for(start)
        if mechanism is None:
            return None
        return spec.Connection.StartOk(
            client_properties=self._client_properties,
            mechanism=mechanism,
            response=response,
            locale=self._locale,
        )

    def secure_ok(self) -> Method:
        """The answer to ``Connection.Secure``: no supported mechanism uses challenges, so it
        is our response again."""
        _mechanism, response = self.credentials.response_for(self._start)
        return spec.Connection.SecureOk(response=response)

    def tune(self, tune: Any) -> Tuned:
        """Negotiate the limits from ``Connection.Tune``.

        :raises RemoteProtocolError: a frame_max under the protocol minimum (530, RabbitMQ's
            answer to the same fault from a client)
        :raises TypeError: the heartbeat callable returned something else than an int >= 0
        """
        if 0 < tune.frame_max < spec.FRAME_MIN_SIZE:
            # accepting it would make a frame_max of 8 or less drop every body
            raise RemoteProtocolError(
                spec.NOT_ALLOWED,
                f"broker proposed frame_max={tune.frame_max} < {spec.FRAME_MIN_SIZE} min size",
            )
        channel_max = negotiate(self._channel_max, tune.channel_max) or 65535
        frame_max = negotiate(self._frame_max, tune.frame_max)
        setting = self._heartbeat
        if callable(setting):
            heartbeat = setting(tune.heartbeat)
            if not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat < 0:
                raise TypeError(
                    f"the heartbeat callable must return an int >= 0, not {heartbeat!r}"
                )
        elif setting is None:
            heartbeat = tune.heartbeat
        else:
            heartbeat = setting
        return Tuned(
            channel_max=channel_max,
            frame_max=frame_max,
            heartbeat=heartbeat,
            tune_ok=spec.Connection.TuneOk(
                channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat
            ),
            open=spec.Connection.Open(virtual_host=self._virtual_host),
        )
