"""The sans-I/O core against the misbehaving peer's bytes (``amqp_core.testing.misbehaviour``).

The kit runs the same faults through every adapter; here the core alone is fed them whole and
one byte at a time, to pin down what the adapters rely on: the exact exception and reply code,
the Connection.Close queued (or, for a peer that never spoke AMQP, nothing at all), and that an
announced size is refused as soon as its header is complete, with nothing buffered beyond it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from amqp_core import spec
from amqp_core.exceptions import IncompatibleProtocolError, RemoteProtocolError
from amqp_core.protocol import NEED_DATA
from amqp_core.protocol import events as ev
from amqp_core.testing.misbehaviour import (
    AFTER_OPEN,
    FRAME_MAX,
    GREETINGS,
    UNBOUNDED,
    Misbehaviour,
    content_header,
    deliver,
)

if TYPE_CHECKING:
    from conftest import Pair

MakePair = Callable[..., Any]


def _open_pair(make_pair: MakePair) -> tuple[Pair, int]:
    pair = make_pair()
    pair.handshake(frame_max=FRAME_MAX)
    return pair, pair.open_channel()


def _feed_until_error(pair: Pair, data: bytes, how: str) -> tuple[RemoteProtocolError, int]:
    """Feed ``data``; return the protocol error and how many bytes had been fed."""
    client = pair.client
    chunks = [data] if how == "whole" else [data[i : i + 1] for i in range(len(data))]
    fed = 0
    for chunk in chunks:
        client.receive_data(chunk)
        fed += len(chunk)
        try:
            for _ in range(1000):
                if client.next_event() is NEED_DATA:
                    break
        except RemoteProtocolError as error:
            return error, fed
    raise AssertionError(f"no protocol error after {fed} bytes")


def _check_close(pair: Pair, error: RemoteProtocolError, case: Misbehaviour) -> None:
    assert type(error) is case.error, repr(error)
    assert error.reply_code == case.reply_code
    assert error.sends_close is case.sends_close
    if not case.sends_close:
        assert pair.client.data_to_send() == b"", "data was sent after a fatal framing error"
        assert pair.client.is_closed
        return
    methods = pair.sent_methods()
    assert len(methods) == 1, methods
    channel, close = methods[0]
    assert channel == 0 and isinstance(close, spec.Connection.Close)
    assert close.reply_code == case.reply_code
    assert pair.client.is_closed


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize("case", AFTER_OPEN, ids=[c.name for c in AFTER_OPEN])
def test_fault_after_open(make_pair: MakePair, case: Misbehaviour, how: str) -> None:
    pair, channel = _open_pair(make_pair)
    error, _fed = _feed_until_error(pair, case.build(channel), how)
    _check_close(pair, error, case)


@pytest.mark.parametrize("case", UNBOUNDED, ids=[c.name for c in UNBOUNDED])
def test_announced_size_is_refused_from_the_header_alone(
    make_pair: MakePair, case: Misbehaviour
) -> None:
    pair, channel = _open_pair(make_pair)
    data = case.build(channel)
    error, fed = _feed_until_error(pair, data, "bytewise")
    assert fed == len(data), "refused before the header was complete"
    _check_close(pair, error, case)
    assert pair.buffered() <= len(data)


def test_body_of_max_body_size_plus_one_is_refused(make_pair: MakePair) -> None:
    pair = make_pair(max_body_size=1000)
    pair.handshake(frame_max=FRAME_MAX)
    channel = pair.open_channel()
    ok = pair.deliver(deliver(channel) + content_header(channel, 1000)
                      + pair.peer.raw_frame(3, channel, b"x" * 1000))
    assert [type(e) for e in ok] == [ev.Delivery]
    case = UNBOUNDED[1]
    error, _fed = _feed_until_error(pair, deliver(channel, 2) + content_header(channel, 1001),
                                    "whole")
    _check_close(pair, error, case)


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize("case", GREETINGS, ids=[c.name for c in GREETINGS])
def test_garbage_instead_of_connection_start(
    make_pair: MakePair, case: Misbehaviour, how: str
) -> None:
    pair = make_pair()
    pair.client.initiate()
    assert [s.kind for s in pair.sent()] == ["protocol-header"]
    data = case.build(0)
    if case.sends_close:  # AMQP framing, broken content: a protocol error + Close
        error, _fed = _feed_until_error(pair, data, how)
        _check_close(pair, error, case)
        return
    events = pair.deliver(data, how=how)
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionFailed), events
    error = events[0].error
    assert type(error) is IncompatibleProtocolError, repr(error)
    assert "does not speak AMQP" in str(error)
    assert pair.client.is_closed
    assert pair.client.data_to_send() == b"", "something was sent to a peer that is not AMQP"


@pytest.mark.parametrize("prefix", [b"H", b"AMQX", b"\x01\x00\x05", b"\x08"])
def test_garbage_is_refused_at_its_first_impossible_byte(
    make_pair: MakePair, prefix: bytes
) -> None:
    pair = make_pair()
    pair.client.initiate()
    pair.sent()
    for index in range(len(prefix) - 1):
        assert pair.deliver(prefix[index : index + 1]) == []
    events = pair.deliver(prefix[-1:])
    assert [type(e) for e in events] == [ev.ConnectionFailed]
    assert isinstance(events[0].error, IncompatibleProtocolError)
    assert pair.client.data_to_send() == b""


def test_nothing_queued_is_sent_after_a_fatal_framing_error(make_pair: MakePair) -> None:
    pair, channel = _open_pair(make_pair)
    pair.client.basic_ack(channel, 1)  # queued, not yet taken by the driver
    case = next(c for c in AFTER_OPEN if c.name == "bad-frame-end")
    error, _fed = _feed_until_error(pair, case.build(channel), "whole")
    assert not error.sends_close
    assert pair.client.data_to_send() == b""
