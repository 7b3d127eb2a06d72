"""Live scenarios against a real broker, through an adapter's callback API (``Channel``).

Theory of operation: each test opens the adapter's connection class on its
loop (``amqp_client``) to the broker of ``amqp_broker`` (``--amqp-url``,
``--amqp-private-broker``, or a project's own fixture; skipped without one)
and checks one behaviour end to end: open, channel, declare, publish,
consume and ack, ``basic_get``, publisher confirms, mandatory returns,
channel errors, close, a broker-forced close (needs ``rabbitmqctl``: private
broker only), a wrong password, and acks sent from other threads through
``add_callback_threadsafe``.  Queues are exclusive and uniquely named, so
tests never see each other's messages.  Import them with::

    from amqp_core.testing.scenarios import *
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from .. import exceptions, spec
from ..credentials import PlainCredentials
from .client import KitClient, unique_name
from .harness import LoopTimeout

__all__ = [
    "force_close_connection",
    "test_live_basic_get",
    "test_live_broker_forced_close_is_connection_closed_by_broker",
    "test_live_channel_error_closes_only_that_channel",
    "test_live_close_is_connection_closed_by_client",
    "test_live_confirms_ack_every_publish",
    "test_live_mandatory_unroutable_is_returned",
    "test_live_open_declare_publish_consume_ack",
    "test_live_threadsafe_acks_from_other_threads",
    "test_live_wrong_password_is_a_probable_authentication_error",
]

pytestmark = pytest.mark.amqp_live

Params = Callable[..., Any]


#: Bound on learning of a broker-side close or a refused login, in seconds.
CLOSE_BOUND = 5.0


def force_close_connection(broker: Any, connection_name: str) -> None:
    """Make a private broker close the client connection named ``connection_name`` (320).

    One ``rabbitmqctl eval`` (each ``rabbitmqctl`` call costs a second or more); when the
    node refuses it, ``list_connections`` then ``close_connection``.

    :param broker: a :class:`~amqp_core.testing.broker.PrivateBroker`
    :param connection_name: the ``connection_name`` client property of the connection
    :raises AssertionError: no such connection (fallback path)
    """
    from .broker import BrokerError

    codes = ",".join(str(ord(char)) for char in connection_name)  # no quotes through the CLI
    expression = (
        "[rabbit_networking:close_connection(P, atom_to_list('closed by the amqp_core kit')) "
        "|| P <- rabbit_networking:connections(), "
        f"lists:keymember(list_to_binary([{codes}]), 3, proplists:get_value(client_properties, "
        "rabbit_networking:connection_info(P, [client_properties]), []))]."
    )
    try:
        output = broker.ctl("eval", expression)
    except BrokerError:
        output = ""
    if "ok" in output:
        return
    rows = [row for row in broker.list_connections()
            if connection_name in row["client_properties"]]
    assert len(rows) == 1, f"the broker lists {len(rows)} connections named {connection_name}"
    broker.close_connection(rows[0]["pid"], "closed by the amqp_core kit")


def _declare(client: KitClient, channel: Any, name: str | None = None) -> str:
    queue = name or unique_name("kit-q")
    reply = client.call(channel.queue_declare, queue, exclusive=True)
    assert reply.method.queue == queue
    return queue


def _wait_ready(client: KitClient, channel: Any, queue: str, count: int,
                timeout: float = 5.0) -> None:
    """Poll a passive declare until ``queue`` holds ``count`` ready messages (the broker
    enqueues asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = client.call(channel.queue_declare, queue, passive=True).method.message_count
        if ready == count:
            return
        if time.monotonic() > deadline:
            raise LoopTimeout(f"{queue} holds {ready} ready messages, not {count}")
        client.run_for(0.02)


def test_live_open_declare_publish_consume_ack(amqp_client: KitClient, amqp_params: Params) -> None:
    connection = amqp_client.connect(amqp_params())
    assert connection.is_open and connection.publisher_confirms
    channel = amqp_client.channel(connection)
    queue = _declare(amqp_client, channel)
    properties = spec.BasicProperties(content_type="application/octet-stream",
                                      headers={"n": 1})
    for index in range(10):
        channel.basic_publish("", queue, b"m%d" % index, properties)

    def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
        amqp_client.cb("message")(ch, method, props, body)
        ch.basic_ack(method.delivery_tag)

    amqp_client.call(channel.basic_qos, prefetch_count=5)
    consumed = amqp_client.fresh("consume_ok")
    channel.basic_consume(queue, on_message, callback=amqp_client.cb(consumed))
    amqp_client.wait(consumed)
    amqp_client.wait("message", count=10)
    bodies = [args[3] for args in amqp_client.calls["message"]]
    assert bodies == [b"m%d" % i for i in range(10)], bodies
    assert amqp_client.calls["message"][0][2].headers == {"n": 1}
    declared = amqp_client.call(channel.queue_declare, queue, passive=True).method
    assert declared.message_count == 0 and declared.consumer_count == 1


def test_live_basic_get(amqp_client: KitClient, amqp_params: Params) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    queue = _declare(amqp_client, channel)
    channel.basic_publish("", queue, b"first")
    channel.basic_publish("", queue, b"second")
    _wait_ready(amqp_client, channel, queue, 2)
    channel.basic_get(queue, amqp_client.cb("got"))
    _ch, method, _properties, body = amqp_client.wait("got")
    assert body == b"first" and method.message_count == 1
    channel.basic_ack(method.delivery_tag)
    _wait_ready(amqp_client, channel, queue, 1)


def test_live_confirms_ack_every_publish(amqp_client: KitClient, amqp_params: Params) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    queue = _declare(amqp_client, channel)
    acked: set[int] = set()
    nacked: list[int] = []
    last = [0]

    def on_confirm(frame: Any) -> None:
        method = frame.method
        tags = range(last[0] + 1, method.delivery_tag + 1) if method.multiple else [
            method.delivery_tag]
        target = acked if isinstance(method, spec.Basic.Ack) else None
        for tag in tags:
            if target is not None:
                target.add(tag)
            else:
                nacked.append(tag)
        last[0] = max(last[0], method.delivery_tag)
        amqp_client.harness.notify()

    amqp_client.call(channel.confirm_delivery, on_confirm)
    count = 50
    for index in range(count):
        channel.basic_publish("", queue, b"c%d" % index)
    amqp_client.wait(lambda: len(acked) + len(nacked) == count, 10.0)
    assert acked == set(range(1, count + 1)) and not nacked
    _wait_ready(amqp_client, channel, queue, count)


def test_live_mandatory_unroutable_is_returned(amqp_client: KitClient, amqp_params: Params) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    channel.add_on_return_callback(amqp_client.cb("returned"))
    amqp_client.call(channel.confirm_delivery, amqp_client.cb("confirm"))
    routing_key = unique_name("nowhere")
    channel.basic_publish("", routing_key, b"unroutable", mandatory=True)
    returned_channel, method, _properties, body = amqp_client.wait("returned")
    assert returned_channel is channel
    assert method.reply_code == 312 and method.routing_key == routing_key
    assert body == b"unroutable"
    (confirm,) = amqp_client.wait("confirm")
    assert isinstance(confirm.method, spec.Basic.Ack)  # RabbitMQ acks returned messages


def test_live_channel_error_closes_only_that_channel(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    closed = amqp_client.fresh("channel.close")
    channel.add_on_close_callback(amqp_client.cb(closed))
    channel.queue_declare(unique_name("missing"), passive=True, callback=amqp_client.cb("never"))
    closed_channel, reason = amqp_client.wait(closed)
    assert closed_channel is channel and channel.is_closed
    assert isinstance(reason, exceptions.ChannelClosedByBroker) and reason.reply_code == 404
    assert amqp_client.count("never") == 0
    assert connection.is_open
    other = amqp_client.channel(connection)
    _declare(amqp_client, other)


def test_live_close_is_connection_closed_by_client(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    closed = amqp_client.fresh("channel.close")
    channel.add_on_close_callback(amqp_client.cb(closed))
    connection.close()
    error = amqp_client.wait_closed(connection)
    assert isinstance(error, exceptions.ConnectionClosedByClient) and error.reply_code == 200
    assert amqp_client.count(closed) == 1 and channel.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.close()


def test_live_broker_forced_close_is_connection_closed_by_broker(
    amqp_client: KitClient, amqp_params: Params, amqp_private_broker: Any
) -> None:
    name = unique_name("kit-forced")
    connection = amqp_client.connect(amqp_params(client_properties={"connection_name": name}))
    force_close_connection(amqp_private_broker, name)  # returns once rabbitmqctl has closed it
    started = time.monotonic()
    error = amqp_client.wait_closed(connection, CLOSE_BOUND + 5.0)
    assert time.monotonic() - started <= CLOSE_BOUND
    assert type(error) is exceptions.ConnectionClosedByBroker, repr(error)
    assert error.reply_code == 320


def test_live_wrong_password_is_a_probable_authentication_error(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    parameters = amqp_params(credentials=PlainCredentials("guest", "not-the-password"))
    started = time.monotonic()
    connection = amqp_client.open(parameters)
    error = amqp_client.wait_open_error(connection, CLOSE_BOUND + 5.0)
    assert time.monotonic() - started <= CLOSE_BOUND
    assert type(error) is exceptions.ProbableAuthenticationError, repr(error)
    assert amqp_client.count(f"{connection.kit_name}.open") == 0


def test_live_threadsafe_acks_from_other_threads(
    amqp_client: KitClient, amqp_params: Params
) -> None:
    connection = amqp_client.connect(amqp_params())
    channel = amqp_client.channel(connection)
    queue = _declare(amqp_client, channel)
    count = 30
    for index in range(count):
        channel.basic_publish("", queue, b"t%d" % index)
    acked: list[int] = []
    threads: set[int] = set()
    workers: list[threading.Thread] = []

    def ack_on_loop(ch: Any, tag: int) -> None:
        threads.add(threading.get_ident())
        ch.basic_ack(tag)
        acked.append(tag)
        amqp_client.harness.notify()

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        tag = method.delivery_tag
        worker = threading.Thread(
            target=lambda: connection.add_callback_threadsafe(lambda: ack_on_loop(ch, tag)),
            daemon=True)
        workers.append(worker)
        worker.start()

    channel.basic_consume(queue, on_message)
    amqp_client.wait(lambda: len(acked) == count, 10.0)
    for worker in workers:
        worker.join(5.0)
    assert sorted(acked) == list(range(1, count + 1))
    assert threads == {amqp_client.harness.loop_thread_id}
    # the acks reached the broker: closing the channel requeues nothing
    closed = amqp_client.fresh("channel.close")
    channel.add_on_close_callback(amqp_client.cb(closed))
    channel.close()
    amqp_client.wait(closed)
    other = amqp_client.channel(connection)
    declared = amqp_client.call(other.queue_declare, queue, passive=True).method
    assert declared.message_count == 0, f"{declared.message_count} messages were not acked"
