"""examples/twisted_service.py, run as a program: a Twisted service that reconnects.

Theory of operation: the example runs in its own process (its own reactor) with
``--max-messages`` and ``--timeout`` so it always ends; ``Program`` (shared with the recovery
examples' tests) collects its output.  The test publishes with its own blocking connection,
breaks the example's connection -- the broker closes it, or a TCP proxy between the example
and the broker drops the stream -- and checks that the service reconnected and consumed every
message.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from blocking_helpers import amqp_url, params_for, unique
from test_examples_recover import Program

import amqp_core as pika
from amqp_core.testing.fault_proxy import FaultProxy

SCRIPT = "twisted_service.py"


def publish(broker: Any, queue: str, bodies: list[str]) -> None:
    connection = pika.BlockingConnection(params_for(broker))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body)
    finally:
        connection.close()


def delete_queue(broker: Any, queue: str) -> None:
    connection = pika.BlockingConnection(params_for(broker))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def start(url: str, queue: str, name: str, count: int) -> Program:
    return Program(SCRIPT, url, "--queue", queue, "--name", name, "--max-messages", str(count),
                   "--timeout", "60")


@pytest.mark.timeout(120)
def test_reconnects_after_the_broker_closes_the_connection(private_broker: Any) -> None:
    queue, name = unique("twsvc"), unique("twisted-example")
    program = start(private_broker.url, queue, name, 6)
    try:
        program.wait_for(lambda: program.count("consuming") == 1, "first consumer")
        publish(private_broker, queue, ["a", "b", "c"])
        program.wait_for(lambda: len(program.received()) == 3, "3 messages")
        pid = next(row["pid"] for row in private_broker.list_connections()
                   if name in row["client_properties"])
        private_broker.close_connection(pid, "closed by the twisted example test")
        program.wait_for(lambda: program.count("consuming") == 2, "a new consumer")
        publish(private_broker, queue, ["d", "e", "f"])
        assert program.finish(60) == 0
        assert program.received() == ["a", "b", "c", "d", "e", "f"]
        assert program.count("consumer stopped: ConnectionClosedByBroker") == 1
        assert program.count("done: 6 messages") == 1
    finally:
        program.kill()
        delete_queue(private_broker, queue)


@pytest.mark.timeout(120)
def test_reconnects_after_the_stream_is_dropped(broker: Any) -> None:
    queue, name = unique("twsvc"), unique("twisted-example")
    with FaultProxy(broker.host, broker.port) as proxy:
        program = start(amqp_url(proxy.port), queue, name, 4)
        try:
            program.wait_for(lambda: program.count("consuming") == 1, "first consumer")
            publish(broker, queue, ["one", "two"])
            program.wait_for(lambda: len(program.received()) == 2, "2 messages")
            time.sleep(0.3)  # let the acks out (printed before acked), so none is redelivered
            proxy.close_all()
            program.wait_for(lambda: program.count("consuming") == 2, "a new consumer")
            publish(broker, queue, ["three", "four"])
            assert program.finish(60) == 0
            assert program.received() == ["one", "two", "three", "four"]
            assert program.count("consumer stopped: StreamLostError") == 1
        finally:
            program.kill()
            delete_queue(broker, queue)
