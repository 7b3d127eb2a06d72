"""The core ``Connection``'s connection-level state machine, bytes in and events out.

Handshake (protocol header, Start/StartOk, Secure/SecureOk, Tune/TuneOk, Open/OpenOk), close
from either side, close and EOF at every stage, Blocked/Unblocked, UpdateSecret, connection-level
protocol errors and the local errors raised before anything is queued.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from amqp_core import spec
from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.exceptions import (
    AuthenticationError,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    IncompatibleProtocolError,
    LocalProtocolError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteChannelError,
    RemoteCommandInvalid,
    RemoteFrameError,
    RemoteProtocolError,
    RemoteSyntaxError,
    RemoteUnexpectedFrame,
    StreamLostError,
)
from amqp_core.protocol import NEED_DATA, ConnectionState
from amqp_core.protocol import events as ev
from amqp_core.protocol.frames import (
    FRAME_HEADER,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    encode_method_frame,
)

if TYPE_CHECKING:
    from conftest import Pair


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + end


def raw_method(channel: int, class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    return raw_frame(1, channel, struct.pack(">HH", class_id, method_id) + arguments)


def start_frame() -> bytes:
    return encode_method_frame(0, spec.Connection.Start(mechanisms="PLAIN"))

# --------------------------------------------------------------------------- handshake


def test_initiate_queues_the_protocol_header_only(pair: Pair) -> None:
    assert pair.client.state is ConnectionState.INIT
    assert pair.client.next_event() is NEED_DATA
    pair.client.initiate()
    assert pair.client.bytes_to_send == 8
    assert pair.client.data_to_send() == PROTOCOL_HEADER
    assert pair.client.data_to_send() == b""
    assert pair.client.state is ConnectionState.AWAIT_START
    with pytest.raises(ConnectionWrongStateError):
        pair.client.initiate()
    assert pair.client.data_to_send() == b""


def test_handshake_three_ways(make_pair: Callable[..., Pair], how: str) -> None:
    pair = make_pair(
        credentials=PlainCredentials("user", "p\u00e4ss"),
        virtual_host="/vh",
        client_properties={"product": "tests", "capabilities": {"basic.nack": True}},
        locale="de_DE",
    )
    client, peer = pair.client, pair.peer
    client.initiate()
    assert [s.kind for s in pair.sent()] == ["protocol-header"]
    assert pair.deliver(peer.start(), how=how) == []
    ((channel, start_ok),) = pair.sent_methods()
    assert channel == 0
    assert start_ok == spec.Connection.StartOk(
        client_properties={"product": "tests", "capabilities": {"basic.nack": True}},
        mechanism="PLAIN",
        response=b"\x00user\x00p\xc3\xa4ss",
        locale="de_DE",
    )
    assert client.server_properties["product"] == "RabbitMQ"
    assert client.state is ConnectionState.AWAIT_TUNE
    assert pair.deliver(peer.tune(2047, 131072, 0), how=how) == []
    assert pair.sent_methods() == [
        (0, spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0)),
        (0, spec.Connection.Open(virtual_host="/vh")),
    ]
    assert client.state is ConnectionState.AWAIT_OPEN_OK
    open_ok = peer.method(0, spec.Connection.OpenOk(known_hosts="h1:5672"))
    assert pair.deliver(open_ok, how=how) == [
        ev.ConnectionOpened(
            server_properties=client.server_properties,
            channel_max=2047,
            frame_max=131072,
            heartbeat=0,
            known_hosts="h1:5672",
        )
    ]
    assert client.is_open and not client.is_closed
    assert client.known_hosts == "h1:5672"
    assert client.data_to_send() == b""


def test_handshake_in_one_chunk(pair: Pair) -> None:
    pair.client.initiate()
    pair.sent()
    events = pair.deliver(pair.peer.start() + pair.peer.tune(heartbeat=0) + pair.peer.open_ok())
    assert [type(e) for e in events] == [ev.ConnectionOpened]
    assert [type(m) for _, m in pair.sent_methods()] == [
        spec.Connection.StartOk, spec.Connection.TuneOk, spec.Connection.Open,
    ]


@pytest.mark.parametrize("header", [b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x0a"])
def test_version_mismatch(pair: Pair, header: bytes, how: str) -> None:
    pair.client.initiate()
    pair.sent()
    events = pair.deliver(header, how=how)
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert isinstance(events[0].error, IncompatibleProtocolError)
    assert str(tuple(header[4:])) in str(events[0].error)
    assert pair.client.is_closed
    assert pair.client.data_to_send() == b""
    assert pair.client.next_event() is NEED_DATA


def test_start_with_another_version_is_refused(pair: Pair) -> None:
    pair.client.initiate()
    pair.sent()
    error = pair.expect_protocol_error(
        pair.peer.start(major=0, minor=8), RemoteProtocolError, spec.NOT_IMPLEMENTED
    )
    assert "0-8" in str(error)


def test_external_credentials(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(credentials=ExternalCredentials())
    pair.client.initiate()
    pair.sent()
    pair.deliver(pair.peer.start(mechanisms="PLAIN EXTERNAL"))
    ((_, start_ok),) = pair.sent_methods()
    assert (start_ok.mechanism, start_ok.response) == ("EXTERNAL", b"")


def test_no_common_mechanism(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(credentials=PlainCredentials("u", "secret-pw"))
    pair.client.initiate()
    pair.sent()
    events = pair.deliver(pair.peer.start(mechanisms="EXTERNAL AMQPLAIN"))
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert isinstance(events[0].error, AuthenticationError)
    assert "PLAIN" in repr(events[0].error)
    assert "secret-pw" not in repr(events[0].error)
    assert pair.client.is_closed
    assert pair.client.data_to_send() == b""


def test_secure_is_answered_with_secure_ok(pair: Pair, how: str) -> None:
    pair.client.initiate()
    pair.sent()
    pair.deliver(pair.peer.start(), how=how)
    pair.sent()
    secure = pair.peer.method(0, spec.Connection.Secure(challenge=b"challenge"))
    assert pair.deliver(secure, how=how) == []
    assert pair.sent_methods() == [
        (0, spec.Connection.SecureOk(response=b"\x00guest\x00guest"))
    ]
    assert pair.client.state is ConnectionState.AWAIT_TUNE
    pair.deliver(pair.peer.tune(heartbeat=0), pair.peer.open_ok())
    assert pair.client.is_open


# --------------------------------------------------------------------------- tuning


@pytest.mark.parametrize(
    ("client_value", "server_value", "expected"),
    [
        (0, 0, 65535),  # no limit on either side: the protocol maximum
        (0, 2047, 2047),
        (100, 0, 100),
        (100, 2047, 100),
        (4000, 2047, 2047),
    ],
)
def test_channel_max_negotiation(
    make_pair: Callable[..., Pair], client_value: int, server_value: int, expected: int
) -> None:
    pair = make_pair(channel_max=client_value)
    opened = pair.handshake(channel_max=server_value)
    assert opened.channel_max == expected == pair.client.channel_max


@pytest.mark.parametrize(
    ("client_value", "server_value", "expected"),
    [
        (131072, 0, 131072),
        (131072, 131072, 131072),
        (131072, 8192, 8192),
        (8192, 131072, 8192),
        (4096, 4096, 4096),
    ],
)
def test_frame_max_negotiation(
    make_pair: Callable[..., Pair], client_value: int, server_value: int, expected: int
) -> None:
    pair = make_pair(frame_max=client_value)
    pair.client.initiate()
    pair.sent()
    pair.deliver(pair.peer.start(), pair.peer.tune(frame_max=server_value, heartbeat=0))
    tune_ok = pair.sent_methods()[1][1]
    assert tune_ok.frame_max == expected
    opened = pair.deliver(pair.peer.open_ok())[0]
    assert isinstance(opened, ev.ConnectionOpened) and opened.frame_max == expected


def proposal_doubler(proposal: int) -> int:
    return proposal * 2


@pytest.mark.parametrize(
    ("setting", "server_value", "expected"),
    [
        (None, 60, 60),  # None accepts the broker's proposal
        (None, 0, 0),
        (0, 60, 0),  # an int wins, even 0 (disabled) ...
        (30, 60, 30),
        (120, 60, 120),  # ... even above the broker's proposal (pika's rule)
        (30, 0, 30),
        (proposal_doubler, 60, 120),  # a callable gets the proposal
        (lambda proposal: 0, 60, 0),
    ],
)
def test_heartbeat_negotiation(
    make_pair: Callable[..., Pair], setting: Any, server_value: int, expected: int
) -> None:
    pair = make_pair(heartbeat=setting)
    pair.client.initiate()
    pair.sent()
    pair.deliver(pair.peer.start(), pair.peer.tune(heartbeat=server_value))
    assert pair.sent_methods()[1][1].heartbeat == expected
    opened = pair.deliver(pair.peer.open_ok())[0]
    assert isinstance(opened, ev.ConnectionOpened) and opened.heartbeat == expected
    assert (pair.client.get_timer() is None) == (expected == 0)


def test_heartbeat_callable_sees_the_proposal(make_pair: Callable[..., Pair]) -> None:
    seen: list[int] = []

    def choose(proposal: int) -> int:
        seen.append(proposal)
        return 5

    pair = make_pair(heartbeat=choose)
    pair.handshake(heartbeat=580)
    assert seen == [580]
    assert pair.client.heartbeat == 5


@pytest.mark.parametrize("bad", [None, -1, "5", 1.5, True])
def test_heartbeat_callable_returning_garbage(make_pair: Callable[..., Pair], bad: Any) -> None:
    pair = make_pair(heartbeat=lambda proposal: bad)
    pair.client.initiate()
    pair.sent()
    with pytest.raises(TypeError, match="heartbeat"):
        pair.deliver(pair.peer.start(), pair.peer.tune(heartbeat=60))


@pytest.mark.parametrize("frame_max", [1, 8, 9, 4095])
def test_broker_frame_max_under_the_protocol_minimum(pair: Pair, frame_max: int) -> None:
    pair.client.initiate()
    pair.sent()
    pair.deliver(pair.peer.start())
    pair.sent()
    pair.expect_protocol_error(
        pair.peer.tune(frame_max=frame_max), RemoteProtocolError, spec.NOT_ALLOWED
    )


def test_frames_larger_than_our_proposal_are_refused_before_tune(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair(frame_max=8192)
    pair.client.initiate()
    pair.sent()
    big = raw_frame(1, 0, b"x" * 9000)  # a method frame on channel 0, as Start would be
    pair.expect_protocol_error(big, RemoteFrameError, 501)


def test_negotiated_frame_max_is_enforced(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(frame_max=131072)
    pair.handshake(frame_max=4096)
    # detected from the header alone, before the payload arrives
    header_only = struct.pack(">BHI", 3, 1, 4096 - 8 + 1)
    pair.expect_protocol_error(header_only, RemoteFrameError, 501)


# --------------------------------------------------------------------------- close


def test_client_close(open_pair: Pair, how: str) -> None:
    client = open_pair.client
    client.close(320, "bye")
    assert open_pair.sent_methods() == [
        (0, spec.Connection.Close(reply_code=320, reply_text="bye", class_id=0, method_id=0))
    ]
    assert client.state is ConnectionState.CLOSING
    assert not client.is_open
    with pytest.raises(ConnectionWrongStateError):
        client.open_channel()
    client.close()  # closing again while closing is harmless and sends nothing
    assert client.data_to_send() == b""
    events = open_pair.deliver(open_pair.peer.method(0, spec.Connection.CloseOk()), how=how)
    assert events == [ev.ConnectionClosed(reply_code=200, reply_text="Normal shutdown",
                                          by_peer=False)]
    assert client.is_closed
    with pytest.raises(ConnectionWrongStateError):
        client.close()
    assert client.data_to_send() == b""
    assert client.next_event() is NEED_DATA


def test_default_close_reason(open_pair: Pair) -> None:
    open_pair.client.close()
    assert open_pair.sent_methods() == [
        (0, spec.Connection.Close(reply_code=200, reply_text="Normal shutdown", class_id=0,
                                  method_id=0))
    ]


def test_broker_close(open_pair: Pair, how: str) -> None:
    channel = open_pair.open_channel()
    close = spec.Connection.Close(
        reply_code=320, reply_text="CONNECTION_FORCED - shutdown", class_id=60, method_id=40
    )
    events = open_pair.deliver(open_pair.peer.method(0, close), how=how)
    assert events == [
        ev.ConnectionClosed(
            reply_code=320, reply_text="CONNECTION_FORCED - shutdown", by_peer=True,
            class_id=60, method_id=40,
        )
    ]
    assert open_pair.sent_methods() == [(0, spec.Connection.CloseOk())]
    assert open_pair.client.is_closed
    assert open_pair.client.channel_numbers == []
    with pytest.raises(ConnectionWrongStateError):
        open_pair.client.basic_publish(channel, "", "q", b"x")
    assert open_pair.client.data_to_send() == b""
    # whatever arrives afterwards is ignored
    assert open_pair.deliver(open_pair.peer.method(channel, spec.Basic.Ack())) == []


def test_both_sides_close_at_once(open_pair: Pair) -> None:
    open_pair.client.close()
    open_pair.sent()
    close = spec.Connection.Close(reply_code=320, reply_text="forced", class_id=0, method_id=0)
    events = open_pair.deliver(open_pair.peer.method(0, close))
    assert events == [ev.ConnectionClosed(reply_code=320, reply_text="forced", by_peer=True)]
    assert open_pair.sent_methods() == [(0, spec.Connection.CloseOk())]
    assert open_pair.client.is_closed


def test_traffic_in_flight_while_closing_is_accepted(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    open_pair.client.close()
    open_pair.sent()
    events = open_pair.deliver(
        open_pair.peer.deliver(channel, b"late"),
        open_pair.peer.method(0, spec.Connection.Blocked(reason="mem")),
        HEARTBEAT_FRAME,
        open_pair.peer.method(0, spec.Connection.CloseOk()),
    )
    assert [type(e) for e in events] == [ev.Delivery, ev.ConnectionClosed]


@pytest.mark.parametrize(
    ("stage", "error_type"),
    [
        ("AWAIT_START", IncompatibleProtocolError),
        ("AWAIT_TUNE", ProbableAuthenticationError),
        ("AWAIT_OPEN_OK", ProbableAccessDeniedError),
    ],
)
def test_broker_close_during_handshake(pair: Pair, stage: str, error_type: type) -> None:
    advance_to(pair, stage)
    close = spec.Connection.Close(
        reply_code=403, reply_text="ACCESS_REFUSED - Login was refused", class_id=10,
        method_id=11,
    )
    events = pair.deliver(pair.peer.method(0, close))
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert type(events[0].error) is error_type
    assert "403" in str(events[0].error) and "ACCESS_REFUSED" in str(events[0].error)
    assert pair.sent_methods() == [(0, spec.Connection.CloseOk())]
    assert pair.client.is_closed
    assert pair.client.next_event() is NEED_DATA


def advance_to(pair: Pair, stage: str) -> None:
    """Drive the handshake to ``stage`` and drain the client's output."""
    pair.client.initiate()
    pair.sent()
    if stage in ("AWAIT_TUNE", "AWAIT_OPEN_OK", "OPEN", "CLOSING"):
        pair.deliver(pair.peer.start())
    if stage in ("AWAIT_OPEN_OK", "OPEN", "CLOSING"):
        pair.deliver(pair.peer.tune(heartbeat=0))
    if stage in ("OPEN", "CLOSING"):
        pair.deliver(pair.peer.open_ok())
    if stage == "CLOSING":
        pair.client.close()
    pair.sent()
    assert pair.client.state.value == stage


@pytest.mark.parametrize(
    ("stage", "error_type"),
    [
        ("AWAIT_START", IncompatibleProtocolError),
        ("AWAIT_TUNE", ProbableAuthenticationError),
        ("AWAIT_OPEN_OK", ProbableAccessDeniedError),
        ("OPEN", StreamLostError),
        ("CLOSING", StreamLostError),
    ],
)
@pytest.mark.parametrize("partial", [b"", b"\x01\x00"], ids=["clean", "mid-frame"])
def test_eof_at_each_stage(pair: Pair, stage: str, error_type: type, partial: bytes) -> None:
    advance_to(pair, stage)
    pair.client.receive_data(partial)
    pair.client.receive_data(b"")
    events = pair.drain()
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert type(events[0].error) is error_type
    assert pair.client.is_closed
    assert pair.client.get_timer() is None
    assert pair.client.next_event() is NEED_DATA


def test_eof_before_initiate(pair: Pair) -> None:
    pair.client.receive_data(b"")
    events = pair.drain()
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert isinstance(events[0].error, StreamLostError)


def test_eof_after_the_peers_header_prefix(pair: Pair) -> None:
    advance_to(pair, "AWAIT_START")
    events = pair.deliver(b"AMQ")
    assert events == []
    pair.client.receive_data(b"")
    (event,) = pair.drain()
    assert isinstance(event, ev.ConnectionFailed)
    assert isinstance(event.error, IncompatibleProtocolError)


def test_frames_before_eof_are_still_parsed(open_pair: Pair) -> None:
    open_pair.client.receive_data(open_pair.peer.method(0, spec.Connection.Blocked(reason="r")))
    open_pair.client.receive_data(b"")
    events = open_pair.drain()
    assert [type(e) for e in events] == [ev.ConnectionBlocked, ev.ConnectionFailed]


def test_eof_after_clean_close(open_pair: Pair) -> None:
    open_pair.client.close()
    open_pair.deliver(open_pair.peer.method(0, spec.Connection.CloseOk()))
    open_pair.client.receive_data(b"")
    assert open_pair.client.next_event() is NEED_DATA


@pytest.mark.parametrize("stage", ["INIT", "AWAIT_START", "AWAIT_TUNE", "AWAIT_OPEN_OK"])
def test_local_close_during_handshake_aborts(pair: Pair, stage: str) -> None:
    if stage != "INIT":
        advance_to(pair, stage)
    pair.client.close()
    assert pair.client.data_to_send() == b""
    events = pair.drain()
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed)
    assert isinstance(events[0].error, ConnectionOpenAborted)
    assert pair.client.is_closed
    with pytest.raises(ConnectionWrongStateError):
        pair.client.close()


# --------------------------------------------------------------------------- Blocked, UpdateSecret


def test_blocked_and_unblocked(open_pair: Pair, how: str) -> None:
    blocked = open_pair.peer.method(0, spec.Connection.Blocked(reason="low on memory"))
    assert open_pair.deliver(blocked, how=how) == [ev.ConnectionBlocked(reason="low on memory")]
    assert open_pair.client.blocked
    unblocked = open_pair.peer.method(0, spec.Connection.Unblocked())
    assert open_pair.deliver(unblocked, how=how) == [ev.ConnectionUnblocked()]
    assert not open_pair.client.blocked
    assert open_pair.client.data_to_send() == b""


def test_blocked_before_open_ok(pair: Pair) -> None:
    advance_to(pair, "AWAIT_OPEN_OK")
    events = pair.deliver(
        pair.peer.method(0, spec.Connection.Blocked(reason="disk")), pair.peer.open_ok()
    )
    assert [type(e) for e in events] == [ev.ConnectionBlocked, ev.ConnectionOpened]
    assert pair.client.blocked


def test_update_secret(open_pair: Pair, how: str) -> None:
    open_pair.client.update_secret("new-token", "rotation")
    assert open_pair.sent_methods() == [
        (0, spec.Connection.UpdateSecret(new_secret=b"new-token", reason="rotation"))
    ]
    events = open_pair.deliver(
        open_pair.peer.method(0, spec.Connection.UpdateSecretOk()), how=how
    )
    assert events == [ev.UpdateSecretOk()]


def test_update_secret_before_open(pair: Pair) -> None:
    advance_to(pair, "AWAIT_TUNE")
    with pytest.raises(ConnectionWrongStateError):
        pair.client.update_secret("s", "r")
    assert pair.client.data_to_send() == b""


# --------------------------------------------------------------------------- local errors


@pytest.mark.parametrize("stage", ["INIT", "AWAIT_START", "AWAIT_TUNE", "AWAIT_OPEN_OK",
                                   "CLOSING", "CLOSED"])
def test_commands_need_an_open_connection(pair: Pair, stage: str) -> None:
    if stage == "CLOSED":
        advance_to(pair, "CLOSING")
        pair.deliver(pair.peer.method(0, spec.Connection.CloseOk()))
    elif stage != "INIT":
        advance_to(pair, stage)
    client = pair.client
    commands: list[Callable[[], object]] = [
        lambda: client.open_channel(),
        lambda: client.open_channel(1),
        lambda: client.close_channel(1),
        lambda: client.send_method(1, spec.Basic.Qos(prefetch_count=1)),
        lambda: client.basic_publish(1, "", "q", b"body"),
        lambda: client.basic_ack(1, 1),
        lambda: client.basic_nack(1, 1),
        lambda: client.basic_reject(1, 1),
        lambda: client.update_secret("s", "r"),
    ]
    for command in commands:
        with pytest.raises(ConnectionWrongStateError) as info:
            command()
        assert isinstance(info.value, LocalProtocolError)
        assert client.data_to_send() == b""


# --------------------------------------------------------------------------- protocol errors


CONNECTION_LEVEL_ERRORS: list[tuple[str, bytes, type[Exception], int]] = [
    (
        "start-again",
        start_frame(),
        RemoteUnexpectedFrame,
        505,
    ),
    ("tune-again", encode_method_frame(0, spec.Connection.Tune()), RemoteUnexpectedFrame, 505),
    ("close-ok-unasked", encode_method_frame(0, spec.Connection.CloseOk()), RemoteUnexpectedFrame,
     505),
    ("client-only-method", encode_method_frame(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response=b"", locale="")),
     RemoteUnexpectedFrame, 505),
    ("update-secret-from-broker", encode_method_frame(0, spec.Connection.UpdateSecret(
        new_secret=b"s", reason="r")), RemoteUnexpectedFrame, 505),
    ("channel-method-on-channel-0", encode_method_frame(0, spec.Channel.OpenOk()),
     RemoteUnexpectedFrame, 505),
    ("unknown-class", raw_method(0, 99, 10), RemoteCommandInvalid, 503),
    ("unknown-method", raw_method(0, 10, 99), RemoteCommandInvalid, 503),
    ("truncated-arguments", raw_method(0, 10, 50, b"\x01"), RemoteSyntaxError, 502),
    ("method-frame-too-short", raw_frame(1, 0, b"\x00\x0a"), RemoteFrameError, 501),
    # a bad frame-end and an unknown frame type end the connection without a Close (spec
    # 4.2.3): see test_protocol_misbehaviour.py
    ("heartbeat-on-channel-1", raw_frame(8, 1, b""), RemoteFrameError, 501),
    ("frame-too-large", struct.pack(">BHI", 3, 0, 200_000), RemoteFrameError, 501),
    ("header-without-channel", raw_frame(2, 9, b"\x00" * 14), RemoteChannelError, 504),
]


@pytest.mark.parametrize(
    ("data", "error_type", "reply_code"),
    [case[1:] for case in CONNECTION_LEVEL_ERRORS],
    ids=[case[0] for case in CONNECTION_LEVEL_ERRORS],
)
def test_connection_level_protocol_errors(
    open_pair: Pair, data: bytes, error_type: type[Exception], reply_code: int
) -> None:
    error = open_pair.expect_protocol_error(data, error_type, reply_code)
    assert isinstance(error, RemoteProtocolError)


@pytest.mark.parametrize("stage", ["AWAIT_TUNE", "AWAIT_OPEN_OK"])
def test_protocol_error_during_handshake_queues_close(pair: Pair, stage: str) -> None:
    advance_to(pair, stage)
    pair.expect_protocol_error(raw_method(0, 10, 99), RemoteCommandInvalid, 503)


def test_protocol_error_mid_stream_keeps_earlier_events(open_pair: Pair) -> None:
    blocked = open_pair.peer.method(0, spec.Connection.Blocked(reason="r"))
    open_pair.client.receive_data(blocked + raw_method(0, 99, 1))
    assert open_pair.client.next_event() == ev.ConnectionBlocked(reason="r")
    with pytest.raises(RemoteCommandInvalid):
        open_pair.client.next_event()
