"""Errors from the real broker map to pika's exceptions, at the right level.

Theory of operation: connection-level failures (login, vhost, a broker-forced close, a
connection-level protocol error, a lost stream) reach the connection's open-error or close
callbacks and carry the broker's host and port; channel-level failures (404, 403, 405, 406) reach
only that channel's close callback, and the connection and its other channels keep working.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, SharedConnection, params_for, unique

import amqp_core as pika
from amqp_core import exceptions
from amqp_core.channel import Channel
from amqp_core.testing.fault_proxy import FaultProxy


@pytest.fixture(scope="module")
def shared(broker: Any) -> Iterator[SharedConnection]:
    connection = SharedConnection(broker)
    yield connection
    connection.close()


@pytest.fixture
def sh(shared: SharedConnection) -> Harness:
    shared.h.calls.clear()
    return shared.h


@pytest.fixture
def ch(shared: SharedConnection, sh: Harness) -> Iterator[Channel]:
    yield from shared.channels()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def users(broker: Any) -> dict[str, tuple[str, str]]:
    """Two users of the private node, as ``{"restricted": (name, password), "powerless": ...}``.

    ``restricted`` may publish and read on ``/`` but configure nothing; ``powerless`` has no
    permissions at all.  They are not deleted: the node is thrown away with the session, and
    every ``rabbitmqctl`` call costs about a second.
    """
    if not getattr(broker, "is_private", False):
        pytest.skip("needs rabbitmqctl on the private test broker")
    made = {kind: (unique(kind), secrets.token_hex(8)) for kind in ("restricted", "powerless")}
    for name, password in made.values():
        broker.add_user(name, password)
    name, _ = made["restricted"]
    broker.set_permissions(
        name, "/", configure="^no-queue-is-named-like-this", write=".*", read=".*"
    )
    return made


def expect_channel_error(h: Harness, ch: Channel, start: Any, code: int) -> Any:
    """Run ``start(callback)`` on ``ch``; the channel must close with ``code``, the callback not
    run."""
    closed, never = h.fresh("closed"), h.fresh("never")
    ch.add_on_close_callback(h.cb(closed))
    start(h.cb(never))
    closed_ch, reason = h.wait(closed)
    assert closed_ch is ch and ch.is_closed
    assert isinstance(reason, exceptions.ChannelClosedByBroker), repr(reason)
    assert reason.reply_code == code, repr(reason)
    assert h.count(never) == 0
    return reason


# ---------------------------------------------------------------- opening


def test_wrong_password(h: Harness, broker: Any) -> None:
    params = params_for(broker, credentials=pika.PlainCredentials("guest", "not-the-password"))
    conn = h.connect(params, name="c", expect_open=False)
    connection, error = h.last("c.open_error")
    assert connection is conn
    assert isinstance(error, exceptions.ProbableAuthenticationError), repr(error)
    assert (error.host, error.port) == (broker.host, broker.port)
    assert conn.is_closed and h.count("c.close") == 0 and h.count("c.open") == 0


def test_unknown_vhost(h: Harness, broker: Any) -> None:
    h.connect(params_for(broker, virtual_host=unique("no-such-vhost")), name="c", expect_open=False)
    _, error = h.last("c.open_error")
    assert isinstance(error, exceptions.ProbableAccessDeniedError), repr(error)
    assert (error.host, error.port) == (broker.host, broker.port)


def test_vhost_without_permissions(
    h: Harness, private_broker: Any, users: dict[str, tuple[str, str]]
) -> None:
    user, password = users["powerless"]
    params = params_for(private_broker, credentials=pika.PlainCredentials(user, password))
    h.connect(params, name="c", expect_open=False)
    _, error = h.last("c.open_error")
    assert isinstance(error, exceptions.ProbableAccessDeniedError), repr(error)


def test_access_refused_is_a_channel_error(
    h: Harness, private_broker: Any, users: dict[str, tuple[str, str]]
) -> None:
    user, password = users["restricted"]
    conn = h.connect(
        params_for(private_broker, credentials=pika.PlainCredentials(user, password)), name="c"
    )
    channel = h.channel(conn)
    reason = expect_channel_error(
        h, channel, lambda cb: channel.queue_declare(unique("forbidden"), callback=cb), 403
    )
    assert "ACCESS_REFUSED" in reason.reply_text
    assert conn.is_open
    # publishing is allowed for this user: the connection is still fully usable
    other = h.channel(conn)
    other.basic_publish("amq.fanout", "", b"allowed")
    h.call(other.basic_qos, prefetch_count=1)
    assert other.is_open and conn.is_open


# ---------------------------------------------------------------- channel-level errors


def test_passive_declare_of_missing_queue_is_404(
    sh: Harness, ch: Channel, shared: SharedConnection
) -> None:
    bystander = sh.channel(shared.conn)
    name = unique("missing")
    reason = expect_channel_error(
        sh, ch, lambda cb: ch.queue_declare(name, passive=True, callback=cb), 404
    )
    assert "NOT_FOUND" in reason.reply_text and name in reason.reply_text
    # the connection and the other channel are untouched
    assert shared.conn.is_open and bystander.is_open
    assert sh.call(bystander.queue_declare, "", exclusive=True).method.queue
    bystander.close()
    sh.wait(lambda: bystander.is_closed)


def test_missing_exchange_is_404(sh: Harness, ch: Channel) -> None:
    expect_channel_error(
        sh,
        ch,
        lambda cb: ch.exchange_declare(unique("nox"), "direct", passive=True, callback=cb),
        404,
    )


def test_inconsistent_redeclare_is_406(sh: Harness, ch: Channel, shared: SharedConnection) -> None:
    name = unique("redeclare")
    sh.call(ch.queue_declare, name, auto_delete=True)
    reason = expect_channel_error(
        sh, ch, lambda cb: ch.queue_declare(name, durable=True, callback=cb), 406
    )
    assert "PRECONDITION_FAILED" in reason.reply_text
    cleanup = sh.channel(shared.conn)
    sh.call(cleanup.queue_delete, name)
    cleanup.close()
    sh.wait(lambda: cleanup.is_closed)


def test_delete_if_empty_of_a_non_empty_queue_is_406(sh: Harness, ch: Channel) -> None:
    queue = sh.call(ch.queue_declare, "", exclusive=True).method.queue
    sh.call(ch.confirm_delivery, sh.cb("confirmed"))
    ch.basic_publish("", queue, b"keep me")
    sh.wait("confirmed")
    expect_channel_error(sh, ch, lambda cb: ch.queue_delete(queue, if_empty=True, callback=cb), 406)


def test_exclusive_queue_of_another_connection_is_405(
    h: Harness, broker: Any, sh: Harness, ch: Channel
) -> None:
    queue = sh.call(ch.queue_declare, unique("mine"), exclusive=True).method.queue
    other = h.connect(params_for(broker))
    stranger = h.channel(other)
    expect_channel_error(h, stranger, lambda cb: stranger.queue_declare(queue, callback=cb), 405)
    assert other.is_open


def test_second_consumer_on_an_exclusive_consumer_is_403(sh: Harness, ch: Channel) -> None:
    queue = sh.call(ch.queue_declare, "", exclusive=True).method.queue
    sh.call(ch.basic_consume, queue, sh.cb("msg"), exclusive=True)
    expect_channel_error(sh, ch, lambda cb: ch.basic_consume(queue, sh.cb("msg"), callback=cb), 403)
    assert ch.consumer_tags == []


def test_pending_requests_die_with_the_channel(sh: Harness, ch: Channel) -> None:
    missing = unique("missing")
    ch.add_on_close_callback(sh.cb("closed"))
    ch.queue_declare(missing, passive=True, callback=sh.cb("fails"))
    ch.queue_declare("", exclusive=True, callback=sh.cb("queued-behind"))
    ch.basic_qos(prefetch_count=1, callback=sh.cb("queued-behind"))
    _, reason = sh.wait("closed")
    assert reason.reply_code == 404
    sh.run_for(0.1)
    assert sh.count("fails") == 0 and sh.count("queued-behind") == 0


# ---------------------------------------------------------------- connection-level errors


def test_unknown_exchange_type_is_a_connection_error(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker), name="c")
    first, second = h.channel(conn), h.channel(conn)
    for channel in (first, second):
        channel.add_on_close_callback(h.cb(f"closed{channel.channel_number}"))
    first.exchange_declare(unique("x"), "no-such-type", callback=h.cb("never"))
    _, error = h.wait("c.close")
    assert isinstance(error, exceptions.ConnectionClosedByBroker), repr(error)
    assert error.reply_code == 503  # COMMAND_INVALID
    assert (error.host, error.port) == (broker.host, broker.port)
    for channel in (first, second):
        _, reason = h.last(f"closed{channel.channel_number}")
        assert reason is error
        assert channel.is_closed
    assert conn.is_closed and h.count("never") == 0


def test_flow_off_is_refused_by_rabbitmq_at_connection_level(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker), name="c")
    channel = h.channel(conn)
    channel.flow(False, callback=h.cb("never"))
    _, error = h.wait("c.close")
    assert isinstance(error, exceptions.ConnectionClosedByBroker)
    assert error.reply_code == 540  # NOT_IMPLEMENTED
    assert h.count("never") == 0


def test_broker_forced_close(h: Harness, private_broker: Any) -> None:
    conn = h.connect(params_for(private_broker), name="c")
    channel = h.channel(conn)
    channel.add_on_close_callback(h.cb("channel_closed"))
    private_broker.close_all_connections("test says goodbye")
    connection, error = h.wait("c.close", timeout=10.0)
    assert connection is conn
    assert isinstance(error, exceptions.ConnectionClosedByBroker), repr(error)
    assert error.reply_code == 320
    assert "test says goodbye" in error.reply_text
    assert (error.host, error.port) == (private_broker.host, private_broker.port)
    _, reason = h.last("channel_closed")
    assert reason is error
    assert conn.is_closed and channel.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.close()


def test_lost_stream(h: Harness, broker: Any) -> None:
    with FaultProxy(broker.host, broker.port) as proxy:
        conn = h.connect(params_for(broker, port=proxy.port), name="c")
        channel = h.channel(conn)
        channel.add_on_close_callback(h.cb("channel_closed"))
        proxy.close_all()  # both sockets closed (FIN) under the client's feet
    _, error = h.wait("c.close", timeout=5.0)
    assert isinstance(error, exceptions.StreamLostError), repr(error)
    assert (error.host, error.port) == ("127.0.0.1", proxy.port)
    _, reason = h.last("channel_closed")
    assert reason is error
