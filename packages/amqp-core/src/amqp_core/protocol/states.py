"""Every rule that changes connection or channel state lives in this file.

Theory of operation: a state machine is a table ``(state, input) -> new
state``.  Inputs are the INDEX of a received method, or one of the local
command names below.  A lookup miss is the error: for a received method it is
the peer's protocol error (505 UNEXPECTED_FRAME), for a local command it is
the caller's (:class:`~amqp_core.exceptions.ConnectionWrongStateError` or
:class:`~amqp_core.exceptions.ChannelWrongStateError`).  Methods that do not
change state (deliveries, RPC replies, acks) are looked up in the
``*_STEADY`` sets only, so the hot path is one set membership test.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from .. import spec


class ConnectionState(enum.Enum):
    """Where the connection is in its life."""

    INIT = "INIT"  #: nothing sent yet
    AWAIT_START = "AWAIT_START"  #: protocol header sent
    AWAIT_TUNE = "AWAIT_TUNE"  #: Start-Ok sent (Secure may come first)
    AWAIT_OPEN_OK = "AWAIT_OPEN_OK"  #: Tune-Ok and Open sent
    OPEN = "OPEN"
    CLOSING = "CLOSING"  #: our Connection.Close sent
    CLOSED = "CLOSED"  #: terminal


class ChannelState(enum.Enum):
    """Where a channel is in its life."""

    OPENING = "OPENING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


# Local command names (inputs that are not received methods).
INITIATE: Final = "initiate"
LOCAL_CLOSE: Final = "local_close"
LOCAL_ABORT: Final = "local_abort"
STREAM_END: Final = "stream_end"
FAILURE: Final = "failure"

_C = ConnectionState
_LIVE = (_C.AWAIT_START, _C.AWAIT_TUNE, _C.AWAIT_OPEN_OK, _C.OPEN, _C.CLOSING)

CONNECTION_TRANSITIONS: Final[dict[tuple[ConnectionState, object], ConnectionState]] = {
    (_C.INIT, INITIATE): _C.AWAIT_START,
    (_C.AWAIT_START, spec.Connection.Start.INDEX): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, spec.Connection.Secure.INDEX): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, spec.Connection.Tune.INDEX): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_OPEN_OK, spec.Connection.OpenOk.INDEX): _C.OPEN,
    (_C.AWAIT_OPEN_OK, spec.Connection.Blocked.INDEX): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_OPEN_OK, spec.Connection.Unblocked.INDEX): _C.AWAIT_OPEN_OK,
    (_C.OPEN, spec.Connection.Blocked.INDEX): _C.OPEN,
    (_C.OPEN, spec.Connection.Unblocked.INDEX): _C.OPEN,
    (_C.OPEN, spec.Connection.UpdateSecretOk.INDEX): _C.OPEN,
    (_C.OPEN, LOCAL_CLOSE): _C.CLOSING,
    (_C.CLOSING, spec.Connection.CloseOk.INDEX): _C.CLOSED,
    # While closing, the peer may still be sending what it sent before our
    # Close; that is legal and ignored.
    (_C.CLOSING, spec.Connection.Blocked.INDEX): _C.CLOSING,
    (_C.CLOSING, spec.Connection.Unblocked.INDEX): _C.CLOSING,
    (_C.CLOSING, spec.Connection.UpdateSecretOk.INDEX): _C.CLOSING,
    (_C.CLOSING, LOCAL_CLOSE): _C.CLOSING,
    # Before the handshake completes a local close aborts the stream.
    (_C.INIT, LOCAL_ABORT): _C.CLOSED,
    (_C.AWAIT_START, LOCAL_ABORT): _C.CLOSED,
    (_C.AWAIT_TUNE, LOCAL_ABORT): _C.CLOSED,
    (_C.AWAIT_OPEN_OK, LOCAL_ABORT): _C.CLOSED,
}
for _state in _LIVE:
    # The peer may close at any time; the core answers Close-Ok.
    CONNECTION_TRANSITIONS[(_state, spec.Connection.Close.INDEX)] = _C.CLOSED
    CONNECTION_TRANSITIONS[(_state, STREAM_END)] = _C.CLOSED
    CONNECTION_TRANSITIONS[(_state, FAILURE)] = _C.CLOSED
CONNECTION_TRANSITIONS[(_C.INIT, FAILURE)] = _C.CLOSED
CONNECTION_TRANSITIONS[(_C.CLOSED, STREAM_END)] = _C.CLOSED
CONNECTION_TRANSITIONS[(_C.CLOSED, FAILURE)] = _C.CLOSED

#: connection states in which channel traffic may flow
CHANNEL_TRAFFIC_STATES: Final = frozenset({_C.OPEN, _C.CLOSING})

_H = ChannelState
CHANNEL_OPEN_OK: Final = spec.Channel.OpenOk.INDEX
CHANNEL_CLOSE: Final = spec.Channel.Close.INDEX
CHANNEL_CLOSE_OK: Final = spec.Channel.CloseOk.INDEX

CHANNEL_TRANSITIONS: Final[dict[tuple[ChannelState, object], ChannelState]] = {
    (_H.OPENING, CHANNEL_OPEN_OK): _H.OPEN,
    (_H.OPENING, CHANNEL_CLOSE): _H.CLOSED,
    (_H.OPEN, CHANNEL_CLOSE): _H.CLOSED,
    (_H.OPENING, LOCAL_CLOSE): _H.CLOSING,
    (_H.OPEN, LOCAL_CLOSE): _H.CLOSING,
    (_H.CLOSING, CHANNEL_OPEN_OK): _H.CLOSING,
    (_H.CLOSING, CHANNEL_CLOSE_OK): _H.CLOSED,
    (_H.CLOSING, CHANNEL_CLOSE): _H.CLOSED,
}

#: states in which a channel accepts commands from the application
CHANNEL_USABLE: Final = frozenset({_H.OPEN})

#: methods the broker may send unprompted on an open channel
CHANNEL_ASYNC_METHODS: Final = frozenset(
    {
        spec.Basic.Ack.INDEX,
        spec.Basic.Nack.INDEX,
        spec.Basic.Cancel.INDEX,
        spec.Channel.Flow.INDEX,
    }
)

#: methods that are followed by a content header and body
CONTENT_METHODS: Final = frozenset(
    {spec.Basic.Deliver.INDEX, spec.Basic.Return.INDEX, spec.Basic.GetOk.INDEX}
)


def _replies() -> dict[int, frozenset[int]]:
    """Map each client-sent synchronous method to the replies that answer it."""
    table: dict[int, frozenset[int]] = {}
    for class_ in (
        spec.Channel, spec.Exchange, spec.Queue, spec.Basic, spec.Tx, spec.Confirm, spec.Access,
    ):
        for name in dir(class_):
            method: Any = getattr(class_, name)
            if isinstance(method, type) and getattr(method, "synchronous", False):
                ok: Any = getattr(class_, name + "Ok", None)
                if ok is not None:
                    # getattr: isinstance() narrowed ``method`` to ``type`` for mypy
                    index = getattr(method, "INDEX")  # noqa: B009
                    table[int(index)] = frozenset({int(ok.INDEX)})
    table[spec.Basic.Get.INDEX] = frozenset({spec.Basic.GetOk.INDEX, spec.Basic.GetEmpty.INDEX})
    return table


#: client request INDEX -> reply INDEXes
RPC_REPLIES: Final = _replies()
#: every INDEX that is a reply to some request
ALL_RPC_REPLIES: Final = frozenset().union(*RPC_REPLIES.values())


def next_connection_state(state: ConnectionState, event: object) -> ConnectionState | None:
    """Look a transition up; None means "not allowed here"."""
    return CONNECTION_TRANSITIONS.get((state, event))


def next_channel_state(state: ChannelState, event: object) -> ChannelState | None:
    """Look a transition up; None means "not allowed here"."""
    return CHANNEL_TRANSITIONS.get((state, event))
