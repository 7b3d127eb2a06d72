"""Protocol scenarios through an adapter's connection class, against a scripted peer.

Theory of operation: no RabbitMQ is needed.  Each test starts a
:class:`~amqp_core.testing.peer.ScriptedPeer` (``amqp_peer``) on 127.0.0.1
and drives the adapter's own connection class through ``amqp_client`` (a
:class:`~amqp_core.testing.client.KitClient` on the adapter's loop): open,
publish, consume, confirm, get, returns, close from either side, heartbeats
and their timeout, malformed frames, a lost stream.  What the client sent is
read from the peer's records; what it reported is read from the recorded
callbacks.  Import them with::

    from amqp_core.testing.protocol_tests import *
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from .. import exceptions, spec
from .client import KitClient
from .peer import PeerConnection, ScriptedPeer, raw_frame

__all__ = [
    "test_peer_basic_get",
    "test_peer_broker_close_is_connection_closed_by_broker",
    "test_peer_client_close_is_connection_closed_by_client",
    "test_peer_confirms_ack_and_nack",
    "test_peer_connection_refused_is_an_open_error",
    "test_peer_consume_delivers_in_order_and_acks_reach_the_peer",
    "test_peer_heartbeats_flow_then_a_silent_peer_times_out",
    "test_peer_malformed_frame_is_a_remote_protocol_error",
    "test_peer_mandatory_unroutable_is_returned",
    "test_peer_open_negotiates_the_peer_s_limits",
    "test_peer_publish_arrives_intact",
    "test_peer_refused_login_is_a_probable_authentication_error",
    "test_peer_reset_is_stream_lost",
    "test_peer_threadsafe_acks_from_other_threads",
]

Peer = Any  # the amqp_peer fixture: a ScriptedPeer factory


def _open(client: KitClient, peer: ScriptedPeer, **overrides: Any) -> tuple[Any, PeerConnection]:
    connection = client.connect(peer.parameters(**overrides))
    accepted = peer.connection(0)
    assert accepted is not None
    return connection, accepted


def test_peer_open_negotiates_the_peer_s_limits(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer(frame_max=65536, channel_max=100)
    connection, accepted = _open(amqp_client, peer)
    assert connection.is_open
    assert connection.frame_max == 65536
    assert connection.channel_max == 100
    assert connection.heartbeat == 0
    properties = accepted.client_properties
    assert isinstance(properties.get("capabilities"), dict), properties
    assert amqp_client.count(f"{connection.kit_name}.open") == 1
    assert [type(m) for _c, m in accepted.methods()] == [
        spec.Connection.StartOk, spec.Connection.TuneOk, spec.Connection.Open]


def test_peer_client_close_is_connection_closed_by_client(
    amqp_client: KitClient, amqp_peer: Peer
) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    closed = amqp_client.fresh("channel.close")
    channel.add_on_close_callback(amqp_client.cb(closed))
    connection.close()
    error = amqp_client.wait_closed(connection)
    assert isinstance(error, exceptions.ConnectionClosedByClient), repr(error)
    assert error.reply_code == 200
    assert amqp_client.count(closed) == 1 and channel.is_closed
    amqp_client.wait(lambda: accepted.is_closed, 5.0)
    closes = accepted.methods(spec.Connection.Close)
    assert [m.reply_code for _c, m in closes] == [200]
    amqp_client.run_for(0.05)
    assert amqp_client.count(f"{connection.kit_name}.close") == 1


def test_peer_publish_arrives_intact(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer(frame_max=16384)  # the large body spans many frames
    connection, accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    large = bytes(range(256)) * 1200  # 300 KiB
    properties = spec.BasicProperties(content_type="text/plain", headers={"k": "v"},
                                      delivery_mode=2)
    channel.basic_publish("", "first", b"hello", properties)
    channel.basic_publish("amq.direct", "second", b"")
    channel.basic_publish("", "third", large)
    amqp_client.wait(lambda: len(accepted.messages()) == 3, 10.0)
    first, second, third = accepted.messages()
    assert (first.method.routing_key, first.body) == ("first", b"hello")
    assert first.properties.content_type == "text/plain"
    assert first.properties.headers == {"k": "v"} and first.properties.delivery_mode == 2
    assert (second.method.exchange, second.body) == ("amq.direct", b"")
    assert third.body == large, "a body split over many frames arrived changed"
    assert {m.channel for m in (first, second, third)} == {channel.channel_number}


def test_peer_consume_delivers_in_order_and_acks_reach_the_peer(
    amqp_client: KitClient, amqp_peer: Peer
) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    declared = amqp_client.call(channel.queue_declare, "work")
    assert declared.method.queue == "work"
    for index in range(5):
        channel.basic_publish("", "work", b"m%d" % index)
    amqp_client.wait(lambda: len(accepted.messages()) == 5, 5.0)

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        amqp_client.cb("message")(ch, method, properties, body)
        ch.basic_ack(method.delivery_tag)

    consumed = amqp_client.fresh("consume_ok")
    tag = channel.basic_consume("work", on_message, callback=amqp_client.cb(consumed))
    amqp_client.wait(consumed)
    amqp_client.wait("message", count=5)
    bodies = [args[3] for args in amqp_client.calls["message"]]
    assert bodies == [b"m%d" % i for i in range(5)], bodies
    assert all(args[1].consumer_tag == tag for args in amqp_client.calls["message"])
    amqp_client.wait(lambda: accepted.count(spec.Basic.Ack) == 5, 5.0)
    assert [m.delivery_tag for _c, m in accepted.methods(spec.Basic.Ack)] == [1, 2, 3, 4, 5]


def test_peer_confirms_ack_and_nack(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer(nack_sequence_numbers=frozenset({2}))
    connection, _accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    selected = amqp_client.fresh("select_ok")
    channel.confirm_delivery(amqp_client.cb("confirm"), callback=amqp_client.cb(selected))
    amqp_client.wait(selected)
    for index in range(3):
        channel.basic_publish("", "anywhere", b"c%d" % index)
    amqp_client.wait("confirm", count=3)
    confirms = sorted((frame.method.delivery_tag, type(frame.method).__name__)
                      for (frame,) in amqp_client.calls["confirm"])
    assert confirms == [(1, "Ack"), (2, "Nack"), (3, "Ack")], confirms


def test_peer_mandatory_unroutable_is_returned(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer()
    connection, _accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    channel.add_on_return_callback(amqp_client.cb("returned"))
    channel.basic_publish("", "no-such-queue", b"lost", mandatory=True)
    returned_channel, method, properties, body = amqp_client.wait("returned")
    assert returned_channel is channel
    assert method.reply_code == 312 and method.routing_key == "no-such-queue"
    assert body == b"lost"
    assert isinstance(properties, spec.BasicProperties)


def test_peer_basic_get(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    amqp_client.call(channel.queue_declare, "box")
    channel.basic_publish("", "box", b"one")
    channel.basic_publish("", "box", b"two")
    amqp_client.wait(lambda: len(accepted.messages()) == 2, 5.0)
    channel.basic_get("box", amqp_client.cb("got"))
    _ch, method, _properties, body = amqp_client.wait("got")
    assert body == b"one" and method.message_count == 1
    channel.basic_ack(method.delivery_tag)
    amqp_client.wait(lambda: accepted.count(spec.Basic.Ack) == 1, 5.0)


def test_peer_broker_close_is_connection_closed_by_broker(
    amqp_client: KitClient, amqp_peer: Peer
) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    accepted.close_connection(320, "CONNECTION_FORCED - closed by the kit")
    error = amqp_client.wait_closed(connection, 5.0)
    assert isinstance(error, exceptions.ConnectionClosedByBroker), repr(error)
    assert error.reply_code == 320
    amqp_client.wait(lambda: accepted.count(spec.Connection.CloseOk) == 1, 5.0)


def test_peer_heartbeats_flow_then_a_silent_peer_times_out(
    amqp_client: KitClient, amqp_peer: Peer
) -> None:
    peer = amqp_peer(heartbeat=1)
    connection, accepted = _open(amqp_client, peer)
    assert connection.heartbeat == 1
    amqp_client.run_for(1.7)  # longer than the 1.5 intervals after which silence is fatal
    assert connection.is_open, "the connection closed although the peer sent heartbeats"
    assert accepted.heartbeats >= 2, f"the client sent {accepted.heartbeats} heartbeats in 1.7 s"
    accepted.go_silent()
    silent_since = time.monotonic()
    error = amqp_client.wait_closed(connection, 6.0)
    waited = time.monotonic() - silent_since
    assert isinstance(error, exceptions.AMQPHeartbeatTimeout), repr(error)
    # dead after 1.5-2 intervals without a byte; the peer's last one came <= 0.5 s before
    assert 0.9 <= waited <= 4.0, f"the heartbeat timeout came after {waited:.2f} s"
    amqp_client.wait(lambda: accepted.is_closed, 5.0)


@pytest.mark.parametrize("malformed", ["bad-frame-end", "unknown-frame-type", "oversized-frame",
                                       "unknown-method"])
def test_peer_malformed_frame_is_a_remote_protocol_error(
    amqp_client: KitClient, amqp_peer: Peer, malformed: str
) -> None:
    peer = amqp_peer(frame_max=8192)
    connection, accepted = _open(amqp_client, peer)
    data = {
        "bad-frame-end": raw_frame(1, 0, b"\x00\x0a\x00\x33", end=b"\x00"),
        "unknown-frame-type": raw_frame(9, 0, b"xyz"),
        "oversized-frame": raw_frame(3, 1, b"x" * 9000),
        "unknown-method": raw_frame(1, 0, b"\x00\x63\x00\x63"),
    }[malformed]
    accepted.send(data)
    sent = time.monotonic()
    error = amqp_client.wait_closed(connection, 5.0)
    assert time.monotonic() - sent < 1.0, "the protocol error took more than a second"
    assert isinstance(error, exceptions.RemoteProtocolError), repr(error)
    amqp_client.wait(lambda: accepted.is_closed, 5.0)
    codes = [m.reply_code for _c, m in accepted.methods(spec.Connection.Close)]
    if malformed in ("bad-frame-end", "unknown-frame-type"):
        assert codes == [] and not error.sends_close  # spec 4.2.3: nothing more is sent
    else:
        assert codes == [error.reply_code] and codes[0] in (501, 502, 503, 505), codes


def test_peer_reset_is_stream_lost(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    accepted.drop()
    error = amqp_client.wait_closed(connection, 5.0)
    assert isinstance(error, exceptions.StreamLostError), repr(error)


def test_peer_refused_login_is_a_probable_authentication_error(
    amqp_client: KitClient, amqp_peer: Peer
) -> None:
    peer = amqp_peer(refuse_login=True)
    connection = amqp_client.open(peer.parameters())
    error = amqp_client.wait_open_error(connection, 10.0)
    assert isinstance(error, exceptions.ProbableAuthenticationError), repr(error)
    assert amqp_client.count(f"{connection.kit_name}.open") == 0


def test_peer_connection_refused_is_an_open_error(amqp_client: KitClient) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from ..parameters import ConnectionParameters

    connection = amqp_client.open(ConnectionParameters(host="127.0.0.1", port=port,
                                                       connection_attempts=1))
    error = amqp_client.wait_open_error(connection, 10.0)
    assert isinstance(error, exceptions.AMQPConnectionError), repr(error)
    assert amqp_client.count(f"{connection.kit_name}.close") == 0


def test_peer_threadsafe_acks_from_other_threads(amqp_client: KitClient, amqp_peer: Peer) -> None:
    peer = amqp_peer()
    connection, accepted = _open(amqp_client, peer)
    channel = amqp_client.channel(connection)
    amqp_client.call(channel.queue_declare, "threads")
    count = 20
    for index in range(count):
        channel.basic_publish("", "threads", b"%d" % index)
    workers: list[threading.Thread] = []

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        tag = method.delivery_tag

        def ack_from_thread() -> None:
            connection.add_callback_threadsafe(lambda: ch.basic_ack(tag))

        worker = threading.Thread(target=ack_from_thread, daemon=True)
        workers.append(worker)
        worker.start()

    channel.basic_consume("threads", on_message)
    amqp_client.wait(lambda: accepted.count(spec.Basic.Ack) == count, 10.0)
    for worker in workers:
        worker.join(5.0)
    tags = sorted(m.delivery_tag for _c, m in accepted.methods(spec.Basic.Ack))
    assert tags == list(range(1, count + 1)), tags
