"""Live scenarios against a real broker for adapters without a loop (``BlockingConnection``).

Theory of operation: the same behaviours as :mod:`amqp_core.testing.scenarios`,
through pika's blocking API: the test's thread drives the connection, every
wait is ``process_data_events`` with a time limit inside a bounded loop.  The
tests take ``amqp_blocking_adapter`` (parametrized by the kit's plugin over
the selected adapters without a loop: ``blocking``); ``amqp_blocking_connect``
opens the adapter's connection and closes it afterwards.  Import them with::

    from amqp_core.testing.blocking_scenarios import *
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from .. import exceptions, spec
from ..credentials import PlainCredentials
from .client import unique_name
from .scenarios import CLOSE_BOUND, force_close_connection

__all__ = [
    "test_blocking_broker_forced_close_is_connection_closed_by_broker",
    "test_blocking_close_then_use_raises",
    "test_blocking_confirms_and_unroutable_mandatory",
    "test_blocking_publish_get_consume_ack",
    "test_blocking_threadsafe_acks_from_other_threads",
    "test_blocking_wrong_password_is_a_probable_authentication_error",
]

pytestmark = pytest.mark.amqp_live

#: Bound on each wait of these scenarios, in seconds.
TIMEOUT = 10.0


def _pump_until(connection: Any, predicate: Callable[[], Any], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {predicate}")
        connection.process_data_events(time_limit=0.05)


def test_blocking_publish_get_consume_ack(amqp_blocking_connect: Callable[..., Any]) -> None:
    connection = amqp_blocking_connect()
    channel = connection.channel()
    queue = channel.queue_declare(unique_name("kit-bq"), exclusive=True).method.queue
    for index in range(5):
        channel.basic_publish("", queue, b"b%d" % index,
                              spec.BasicProperties(headers={"i": index}))
    method, properties, body = channel.basic_get(queue)
    deadline = time.monotonic() + TIMEOUT
    while method is None and time.monotonic() < deadline:  # the broker enqueues asynchronously
        connection.process_data_events(time_limit=0.02)
        method, properties, body = channel.basic_get(queue)
    assert body == b"b0" and properties.headers == {"i": 0}
    channel.basic_ack(method.delivery_tag)
    bodies = []
    for method, _properties, body in channel.consume(queue, inactivity_timeout=TIMEOUT):
        assert method is not None, "no message within the inactivity timeout"
        bodies.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(bodies) == 4:
            break
    channel.cancel()
    assert bodies == [b"b1", b"b2", b"b3", b"b4"]
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_blocking_confirms_and_unroutable_mandatory(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    connection = amqp_blocking_connect()
    channel = connection.channel()
    channel.confirm_delivery()
    queue = channel.queue_declare(unique_name("kit-bq"), exclusive=True).method.queue
    for index in range(10):
        channel.basic_publish("", queue, b"%d" % index)  # returns once confirmed
    assert channel.queue_declare(queue, passive=True).method.message_count == 10
    with pytest.raises(exceptions.UnroutableError) as info:
        channel.basic_publish("", unique_name("nowhere"), b"lost", mandatory=True)
    assert [message.body for message in info.value.messages] == [b"lost"]
    assert channel.is_open


def test_blocking_close_then_use_raises(amqp_blocking_connect: Callable[..., Any]) -> None:
    connection = amqp_blocking_connect()
    channel = connection.channel()
    connection.close()
    assert connection.is_closed and channel.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.channel()


def test_blocking_broker_forced_close_is_connection_closed_by_broker(
    amqp_blocking_connect: Callable[..., Any], amqp_private_broker: Any
) -> None:
    name = unique_name("kit-bforced")
    connection = amqp_blocking_connect(client_properties={"connection_name": name})
    force_close_connection(amqp_private_broker, name)  # returns once rabbitmqctl has closed it
    started = time.monotonic()
    with pytest.raises(exceptions.ConnectionClosedByBroker) as info:
        _pump_until(connection, lambda: False)
    assert time.monotonic() - started <= CLOSE_BOUND
    assert type(info.value) is exceptions.ConnectionClosedByBroker
    assert info.value.reply_code == 320
    assert connection.is_closed


def test_blocking_wrong_password_is_a_probable_authentication_error(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    started = time.monotonic()
    with pytest.raises(exceptions.ProbableAuthenticationError) as info:
        amqp_blocking_connect(credentials=PlainCredentials("guest", "not-the-password"))
    assert time.monotonic() - started <= CLOSE_BOUND
    assert type(info.value) is exceptions.ProbableAuthenticationError


def test_blocking_threadsafe_acks_from_other_threads(
    amqp_blocking_connect: Callable[..., Any],
) -> None:
    connection = amqp_blocking_connect()
    channel = connection.channel()
    queue = channel.queue_declare(unique_name("kit-bq"), exclusive=True).method.queue
    count = 20
    for index in range(count):
        channel.basic_publish("", queue, b"%d" % index)
    acked: list[int] = []
    workers: list[threading.Thread] = []
    main = threading.get_ident()
    wrong_thread: list[int] = []

    def ack(tag: int) -> None:
        if threading.get_ident() != main:
            wrong_thread.append(tag)
        channel.basic_ack(tag)
        acked.append(tag)

    def on_message(_ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        tag = method.delivery_tag
        worker = threading.Thread(
            target=lambda: connection.add_callback_threadsafe(lambda: ack(tag)), daemon=True)
        workers.append(worker)
        worker.start()

    channel.basic_consume(queue, on_message)
    _pump_until(connection, lambda: len(acked) == count)
    for worker in workers:
        worker.join(5.0)
    assert sorted(acked) == list(range(1, count + 1)) and not wrong_thread
    channel.close()
    other = connection.channel()
    assert other.queue_declare(queue, passive=True).method.message_count == 0
